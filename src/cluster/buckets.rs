//! The cluster's bucket tree: token counts and per-bucket FIFO queues.
//!
//! For now the tree holds only the root bucket, whose token count is the cluster capacity
//! (`None` = unlimited). Classful children (rate/ceil, borrowing) hang off the same shape.
//! Pure state, owned by the admission lock.

use std::collections::VecDeque;

/// Index of a bucket in its tree; the root is always [`ROOT`].
pub type BucketId = usize;

/// The root bucket.
pub const ROOT: BucketId = 0;

/// One bucket: tokens, tokens in use and the requests waiting for one.
#[derive(Debug)]
pub struct Bucket<W> {
    pub name: String,
    /// Tokens this bucket may hand out; `None` = unlimited.
    pub tokens: Option<u32>,
    pub in_use: u32,
    pub queue: VecDeque<W>,
}

/// The tree of buckets of one cluster.
#[derive(Debug)]
pub struct BucketTree<W> {
    nodes: Vec<Bucket<W>>,
}

impl<W> Default for BucketTree<W> {
    fn default() -> Self {
        BucketTree {
            nodes: vec![Bucket {
                name: "root".to_owned(),
                tokens: Some(0),
                in_use: 0,
                queue: VecDeque::new(),
            }],
        }
    }
}

impl<W> BucketTree<W> {
    /// Sets the cluster capacity (the root's tokens).
    pub fn resize(&mut self, capacity: Option<u32>) {
        self.nodes[ROOT].tokens = capacity;
    }

    pub fn get(&self, id: BucketId) -> &Bucket<W> {
        &self.nodes[id]
    }

    pub fn get_mut(&mut self, id: BucketId) -> &mut Bucket<W> {
        &mut self.nodes[id]
    }

    /// Whether `id` could take one token now.
    pub fn can_take(&self, id: BucketId) -> bool {
        let b = &self.nodes[id];
        b.tokens.is_none_or(|t| b.in_use < t)
    }

    pub fn take(&mut self, id: BucketId) {
        self.nodes[id].in_use += 1;
    }

    pub fn put(&mut self, id: BucketId) {
        let b = &mut self.nodes[id];
        b.in_use = b.in_use.saturating_sub(1);
    }

    /// The bucket whose queue head should be served next, if any may take a token.
    pub fn next_waiting(&self) -> Option<BucketId> {
        (!self.nodes[ROOT].queue.is_empty() && self.can_take(ROOT)).then_some(ROOT)
    }

    /// Requests waiting in all buckets.
    pub fn queued(&self) -> usize {
        self.nodes.iter().map(|b| b.queue.len()).sum()
    }
}
