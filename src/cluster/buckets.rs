//! The cluster's bucket tree (HTB partitioning): token counts, borrowing and per-bucket FIFO
//! queues.
//!
//! Pure state, owned by the admission lock; no clock, no I/O. The root holds the cluster
//! capacity. A child has an assured share (`rate`) and a maximum share (`ceil`) of its
//! parent: `assured = floor(parent.assured × rate)`, `ceiling = floor(parent.ceiling × ceil)`.
//! A request may take a token when every bucket on its path to the root is below its ceiling
//! (the root's ceiling is the capacity). Borrowing is work-conserving: idle assured tokens of
//! one bucket may be used by others. A freed token goes first to a waiting bucket that is
//! owed tokens, however deep in the tree (its own requests hold less than its assured share
//! not reserved for its children), then to a subtree below its assured share, then
//! round-robin to children that may borrow, with each bucket's own queue taking part in that
//! round-robin — so a bucket with demand gets its assured share back as soon as tokens free
//! up, and no queue starves. An unlimited cluster (an unlimited backend) makes every bucket
//! unlimited.

use std::collections::VecDeque;

use crate::config::BucketConfig;

/// Identifies a bucket across tree edits; the root is [`ROOT`].
pub type BucketKey = u32;

/// The root bucket's key (and index).
pub const ROOT: BucketKey = 0;

/// One bucket.
#[derive(Debug)]
pub struct Bucket<W> {
    pub key: BucketKey,
    pub name: String,
    parent: Option<usize>,
    children: Vec<usize>,
    /// Share of the parent: assured and maximum.
    pub rate: f64,
    pub ceil: f64,
    /// Absolute tokens; `None` = unlimited.
    pub assured: Option<u32>,
    pub ceiling: Option<u32>,
    /// Tokens held by this bucket's requests and its descendants'.
    pub used: u32,
    /// Tokens held by requests classified into this bucket itself.
    own: u32,
    /// Requests waiting here (FIFO).
    pub queue: VecDeque<W>,
    /// Requests waiting here and in descendants.
    waiting: u32,
    /// Round-robin position among children.
    cursor: usize,
    /// Highest queue length seen, requests ever queued, tokens ever granted, generated errors.
    pub queued_max: u32,
    pub queued_total: u64,
    pub served: u64,
    pub dropped: u64,
}

impl<W> Bucket<W> {
    fn new(key: BucketKey, name: &str, parent: Option<usize>, rate: f64, ceil: f64) -> Self {
        Bucket {
            key,
            name: name.to_owned(),
            parent,
            children: Vec::new(),
            rate,
            ceil,
            assured: Some(0),
            ceiling: Some(0),
            used: 0,
            own: 0,
            queue: VecDeque::new(),
            waiting: 0,
            cursor: 0,
            queued_max: 0,
            queued_total: 0,
            served: 0,
            dropped: 0,
        }
    }

    fn below_assured(&self) -> bool {
        self.assured.is_none_or(|a| self.used < a)
    }

    fn below_ceiling(&self) -> bool {
        self.ceiling.is_none_or(|c| self.used < c)
    }

    /// Tokens used beyond the assured share.
    pub fn borrowed(&self) -> u32 {
        self.assured.map_or(0, |a| self.used.saturating_sub(a))
    }

    /// The parent's index in the tree; `None` for the root.
    pub fn parent_index(&self) -> Option<usize> {
        self.parent
    }
}

/// The passes of the dequeue order, see [`BucketTree::next_waiting`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    Owed,
    Deficit,
    Any,
}

/// The tree of buckets of one cluster; index 0 is the root.
#[derive(Debug)]
pub struct BucketTree<W> {
    nodes: Vec<Bucket<W>>,
    capacity: Option<u32>,
    next_key: BucketKey,
    /// Keys of deleted buckets and the bucket that took over their tokens and queue.
    aliases: Vec<(BucketKey, BucketKey)>,
    /// Index of every key ever issued (deleted ones lead to their heir); `usize::MAX` = none.
    by_key: Vec<usize>,
}

impl<W> Default for BucketTree<W> {
    fn default() -> Self {
        BucketTree {
            nodes: vec![Bucket::new(ROOT, "root", None, 1.0, 1.0)],
            capacity: Some(0),
            next_key: ROOT + 1,
            aliases: Vec::new(),
            by_key: vec![0],
        }
    }
}

impl<W> BucketTree<W> {
    /// Buckets in tree order (root first, then depth-first in configuration order).
    pub fn nodes(&self) -> &[Bucket<W>] {
        &self.nodes
    }

    pub fn get(&self, index: usize) -> &Bucket<W> {
        &self.nodes[index]
    }

    /// The index of the bucket with `key`, following deleted buckets to their heir.
    pub fn index_of(&self, key: BucketKey) -> Option<usize> {
        self.by_key
            .get(key as usize)
            .copied()
            .filter(|&i| i != usize::MAX)
    }

    /// Rebuilds the key table from the nodes and the aliases of deleted buckets.
    fn index_keys(&mut self) {
        self.by_key = vec![usize::MAX; self.next_key as usize];
        for (i, n) in self.nodes.iter().enumerate() {
            self.by_key[n.key as usize] = i;
        }
        // An alias may lead to another deleted bucket: follow the chain to a live one.
        for _ in 0..self.aliases.len() {
            for &(old, heir) in &self.aliases {
                let target = self.by_key[heir as usize];
                if target != usize::MAX {
                    self.by_key[old as usize] = target;
                }
            }
        }
    }

    pub fn by_name(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    /// Sets the cluster capacity (`None` = unlimited) and recomputes every bucket's tokens.
    pub fn resize(&mut self, capacity: Option<u32>) {
        self.capacity = capacity;
        for i in 0..self.nodes.len() {
            let (assured, ceiling) = match self.nodes[i].parent {
                None => (capacity, capacity),
                Some(p) => {
                    let (pa, pc) = (self.nodes[p].assured, self.nodes[p].ceiling);
                    let n = &self.nodes[i];
                    (pa.map(|t| share(t, n.rate)), pc.map(|t| share(t, n.ceil)))
                }
            };
            self.nodes[i].assured = assured;
            self.nodes[i].ceiling = ceiling;
        }
    }

    /// Whether a request of bucket `index` may take a token now: every bucket on the path to
    /// the root is below its ceiling.
    pub fn can_take(&self, index: usize) -> bool {
        self.path(index).all(|i| self.nodes[i].below_ceiling())
    }

    pub fn take(&mut self, index: usize) {
        self.nodes[index].own += 1;
        self.nodes[index].served += 1;
        let mut at = Some(index);
        while let Some(i) = at {
            self.nodes[i].used += 1;
            at = self.nodes[i].parent;
        }
    }

    pub fn put(&mut self, index: usize) {
        let n = &mut self.nodes[index];
        n.own = n.own.saturating_sub(1);
        let mut at = Some(index);
        while let Some(i) = at {
            self.nodes[i].used = self.nodes[i].used.saturating_sub(1);
            at = self.nodes[i].parent;
        }
    }

    /// Appends a waiter to bucket `index`.
    pub fn enqueue(&mut self, index: usize, waiter: W) {
        let n = &mut self.nodes[index];
        n.queue.push_back(waiter);
        n.queued_total += 1;
        n.queued_max = n.queued_max.max(n.queue.len() as u32);
        self.adjust_waiting(index, true);
    }

    /// Removes the head waiter of bucket `index`.
    pub fn dequeue(&mut self, index: usize) -> Option<W> {
        let w = self.nodes[index].queue.pop_front()?;
        self.adjust_waiting(index, false);
        Some(w)
    }

    /// Removes the first waiter matching `pred`, wherever it waits.
    pub fn remove_waiter(&mut self, mut pred: impl FnMut(&W) -> bool) -> Option<W> {
        let (i, pos) = self
            .nodes
            .iter()
            .enumerate()
            .find_map(|(i, n)| n.queue.iter().position(&mut pred).map(|p| (i, p)))?;
        let w = self.nodes[i].queue.remove(pos)?;
        self.adjust_waiting(i, false);
        Some(w)
    }

    fn adjust_waiting(&mut self, index: usize, up: bool) {
        let mut at = Some(index);
        while let Some(i) = at {
            let w = &mut self.nodes[i].waiting;
            *w = if up { *w + 1 } else { w.saturating_sub(1) };
            at = self.nodes[i].parent;
        }
    }

    /// Requests waiting in bucket `index` itself.
    pub fn queue_len(&self, index: usize) -> usize {
        self.nodes[index].queue.len()
    }

    /// Requests waiting anywhere.
    pub fn queued(&self) -> usize {
        self.nodes[0].waiting as usize
    }

    /// Counts a generated 503/504 against bucket `index`.
    pub fn record_dropped(&mut self, index: usize) {
        self.nodes[index].dropped += 1;
    }

    /// The bucket whose queue head should get the next free token, if any may take one; see
    /// the module docs for the order.
    pub fn next_waiting(&mut self) -> Option<usize> {
        self.pick_in(0)
    }

    /// Serves `index`'s subtree in three passes: first a bucket that is owed tokens, however
    /// deep (its own requests hold less than its assured share not reserved for its
    /// children); then a child subtree below its assured share, from any of its waiters (so a
    /// parent's own requests may use a reservation its children leave idle); then
    /// round-robin among the children that may borrow and the bucket's own queue, which
    /// takes part as one more member so that it never starves.
    fn pick_in(&mut self, index: usize) -> Option<usize> {
        if self.nodes[index].waiting == 0 || !self.nodes[index].below_ceiling() {
            return None;
        }
        [Pass::Owed, Pass::Deficit, Pass::Any]
            .into_iter()
            .find_map(|pass| self.round_robin(index, pass))
    }

    /// One round over the children of `index` and (as the last member) its own queue.
    fn round_robin(&mut self, index: usize, pass: Pass) -> Option<usize> {
        if !self.nodes[index].below_ceiling() {
            return None;
        }
        let n = self.nodes[index].children.len();
        for k in 0..=n {
            let pos = (self.nodes[index].cursor + k) % (n + 1);
            let found = if pos == n {
                let node = &self.nodes[index];
                let own = !node.queue.is_empty()
                    && match pass {
                        Pass::Owed => self.own_below_assured(index),
                        Pass::Deficit => false,
                        Pass::Any => true,
                    };
                (own && self.can_take(index)).then_some(index)
            } else {
                let child = self.nodes[index].children[pos];
                let c = &self.nodes[child];
                match pass {
                    Pass::Owed if self.owed(child) => self.round_robin(child, Pass::Owed),
                    Pass::Deficit if c.waiting > 0 && c.below_assured() => self.pick_in(child),
                    Pass::Any if c.waiting > 0 => self.pick_in(child),
                    _ => None,
                }
            };
            if found.is_some() {
                self.nodes[index].cursor = (pos + 1) % (n + 1);
                return found;
            }
        }
        None
    }

    /// Whether `index`'s subtree holds a waiting bucket below its assured share.
    fn owed(&self, index: usize) -> bool {
        let n = &self.nodes[index];
        n.waiting > 0
            && n.below_ceiling()
            && ((!n.queue.is_empty() && self.own_below_assured(index))
                || n.children.iter().any(|&c| self.owed(c)))
    }

    /// Whether the bucket's own requests hold less than its assured tokens not reserved for
    /// its children (all of them for a leaf).
    fn own_below_assured(&self, index: usize) -> bool {
        let n = &self.nodes[index];
        let Some(assured) = n.assured else { return true };
        let reserved: u32 = n
            .children
            .iter()
            .map(|&c| self.nodes[c].assured.unwrap_or(0))
            .sum();
        n.own < assured.saturating_sub(reserved)
    }

    fn path(&self, index: usize) -> impl Iterator<Item = usize> + '_ {
        std::iter::successors(Some(index), |&i| self.nodes[i].parent)
    }

    /// Replaces the children of the root with `config` (control plane). Buckets that keep
    /// their name keep their key, tokens in use and queue; a deleted bucket's tokens and
    /// queued requests pass to its nearest surviving ancestor.
    pub fn rebuild(&mut self, config: &[BucketConfig]) {
        let old = std::mem::take(&mut self.nodes);
        self.nodes.push(Bucket::new(ROOT, "root", None, 1.0, 1.0));
        self.add_children(0, config, &old);
        // For each old bucket, its old ancestors' names, nearest first.
        let lineage: Vec<Vec<String>> = (0..old.len())
            .map(|i| {
                std::iter::successors(old[i].parent, |&p| old[p].parent)
                    .map(|p| old[p].name.clone())
                    .collect()
            })
            .collect();
        for (mut o, ancestors) in old.into_iter().zip(lineage) {
            let heir = self
                .by_name(&o.name)
                .or_else(|| ancestors.iter().find_map(|name| self.by_name(name)))
                .unwrap_or(0);
            if self.nodes[heir].key != o.key {
                self.aliases.push((o.key, self.nodes[heir].key));
            }
            let h = &mut self.nodes[heir];
            h.own += o.own;
            h.queue.append(&mut o.queue);
            h.cursor = h.cursor.max(o.cursor);
            if h.name == o.name {
                (h.queued_max, h.queued_total, h.served, h.dropped) =
                    (o.queued_max, o.queued_total, o.served, o.dropped);
            }
        }
        self.recount();
        self.index_keys();
        self.resize(self.capacity);
    }

    fn add_children(&mut self, parent: usize, config: &[BucketConfig], old: &[Bucket<W>]) {
        for c in config {
            let key = match old.iter().find(|o| o.name == c.name) {
                Some(o) => o.key,
                None => {
                    self.next_key += 1;
                    self.next_key - 1
                }
            };
            let index = self.nodes.len();
            self.nodes
                .push(Bucket::new(key, &c.name, Some(parent), c.rate, c.ceil));
            self.nodes[parent].children.push(index);
            self.add_children(index, &c.children, old);
        }
    }

    /// Recomputes `used` and `waiting` bottom-up from `own` and the queues.
    fn recount(&mut self) {
        for i in (0..self.nodes.len()).rev() {
            let (used, waiting) = self.nodes[i].children.iter().fold(
                (self.nodes[i].own, self.nodes[i].queue.len() as u32),
                |(u, w), &c| (u + self.nodes[c].used, w + self.nodes[c].waiting),
            );
            self.nodes[i].used = used;
            self.nodes[i].waiting = waiting;
            let n = self.nodes[i].children.len().max(1);
            self.nodes[i].cursor %= n;
        }
    }
}

/// `floor(tokens × fraction)`, exact for fractions written with a few decimals.
fn share(tokens: u32, fraction: f64) -> u32 {
    // The epsilon keeps 10 × 0.7 at 7 despite binary floating point.
    ((f64::from(tokens) * fraction) + 1e-9).floor() as u32
}

/// Checks a bucket tree for runtime changes: names unique (and not `root`),
/// `0 <= rate <= ceil <= 1`, siblings' rates summing to at most 1. Errors name the bucket.
pub fn validate_tree(buckets: &[BucketConfig]) -> Result<(), Vec<String>> {
    let mut errors = Vec::new();
    let mut names = Vec::new();
    check_level("root", buckets, &mut names, &mut errors);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn check_level<'a>(
    parent: &str,
    buckets: &'a [BucketConfig],
    names: &mut Vec<&'a str>,
    errors: &mut Vec<String>,
) {
    let mut sum = 0.0;
    for b in buckets {
        let name = b.name.as_str();
        if name == "root" || name.is_empty() {
            errors.push(format!("bucket name `{name}` is reserved or empty"));
        } else if names.contains(&name) {
            errors.push(format!("bucket `{name}` exists twice in the cluster"));
        }
        names.push(name);
        let valid = b.rate.is_finite() && b.ceil.is_finite();
        if !(valid && 0.0 <= b.rate && b.rate <= b.ceil && b.ceil <= 1.0) {
            errors.push(format!(
                "bucket `{name}`: need 0 <= rate <= ceil <= 1, got rate {} and ceil {}",
                b.rate, b.ceil
            ));
        }
        sum += b.rate;
        check_level(name, &b.children, names, errors);
    }
    if sum > 1.0 + 1e-9 {
        errors.push(format!(
            "the rates of the children of bucket `{parent}` sum to {sum}, more than 1"
        ));
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod props;
