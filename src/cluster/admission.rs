//! Admission: the cluster's capacity state shared by every worker.
//!
//! Hot path. A request takes a bucket token and a backend slot in one short critical section
//! (no I/O, no `.await`, no allocation while the lock is held) and returns both when its
//! [`Grant`] drops. When nothing is free it waits in its bucket's FIFO queue; whoever frees
//! capacity, on any worker, hands it straight to the queue head (token passing), so a newcomer
//! never overtakes a waiting request. The Cluster actor is the only one that reshapes the state
//! ([`Admission::set_backends`], [`Admission::configure`]).

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::oneshot;

use super::backend::{Backend, BackendId};
use super::buckets::{BucketKey, BucketTree, ROOT};
use super::scheduler::{self, Candidate};
use crate::config::{BucketConfig, Role, SchedulerKind};
use crate::stats::TrafficStats;

/// How one backend takes part in admission, as decided by the control plane.
#[derive(Debug, Clone)]
pub struct SlotSpec {
    pub backend: Arc<Backend>,
    pub role: Role,
    /// 0 = unlimited.
    pub capacity: u32,
    /// Enabled and healthy.
    pub usable: bool,
    /// Healthy (a disabled but healthy backend still takes pinned requests).
    pub healthy: bool,
}

/// Why a pinned request could not be admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinRefused {
    /// Unknown, removed, offline, or disabled when that is not allowed.
    Unavailable,
    /// At capacity, or the cluster is.
    Full,
}

/// Queue and scheduling settings of the cluster.
#[derive(Debug, Clone, Copy)]
pub struct AdmissionSettings {
    pub scheduler: SchedulerKind,
    pub queue_limit: usize,
    pub enqueue_on_unavailable: bool,
}

/// A bucket's shares, tokens and counters, for readers.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BucketState {
    pub name: String,
    pub parent: Option<String>,
    pub rate: f64,
    pub ceil: f64,
    /// Absolute assured and ceiling tokens; `None` = unlimited.
    pub assured: Option<u32>,
    pub ceiling: Option<u32>,
    /// Tokens held by the bucket and its descendants, and how many of them are borrowed.
    pub in_use: u32,
    pub borrowed: u32,
    pub queued: u32,
    pub queued_max: u32,
    pub queued_total: u64,
    /// Generated 503/504 answers and tokens granted.
    pub dropped: u64,
    pub served: u64,
}

/// The result of asking for capacity.
pub enum Admit {
    /// A token and a backend slot; returned when dropped.
    Granted(Grant),
    /// Waiting in the queue; see [`Ticket::wait`].
    Queued(Ticket),
    /// No backend is available and the cluster does not queue in that case.
    Unavailable,
    /// The queue is at its limit.
    QueueFull,
}

/// Capacity state of one cluster.
pub struct Admission {
    state: Mutex<State>,
    /// Cluster-level counters.
    pub stats: TrafficStats,
}

struct Slot {
    spec: SlotSpec,
    in_flight: u32,
    /// Removed from the cluster; kept until its last request finishes.
    draining: bool,
}

impl Candidate for Slot {
    fn role(&self) -> Role {
        self.spec.role
    }
    fn usable(&self) -> bool {
        self.spec.usable && !self.draining
    }
    fn capacity(&self) -> u32 {
        self.spec.capacity
    }
    fn in_flight(&self) -> u32 {
        self.in_flight
    }
}

struct Waiter {
    id: u64,
    tx: oneshot::Sender<Grant>,
}

struct State {
    settings: AdmissionSettings,
    slots: Vec<Slot>,
    buckets: BucketTree<Waiter>,
    /// Round-robin positions for active, standby and backup.
    cursors: [usize; 3],
    next_waiter: u64,
}

fn role_index(role: Role) -> usize {
    match role {
        Role::Active => 0,
        Role::Standby => 1,
        Role::Backup => 2,
    }
}

impl State {
    /// Whether any active or standby backend is usable (otherwise backups take over).
    fn primary_usable(&self) -> bool {
        self.slots
            .iter()
            .any(|s| s.usable() && s.spec.role != Role::Backup)
    }

    fn any_usable(&self) -> bool {
        self.slots.iter().any(Candidate::usable)
    }

    /// Whether a slot's capacity is part of the root tokens: usable and of the roles in
    /// service (active and standby, or the backups when none of those is usable).
    fn in_service(&self, slot: &Slot, primary_usable: bool) -> bool {
        slot.usable() && (slot.spec.role != Role::Backup) == primary_usable
    }

    /// Root tokens: the capacity of the slots in service (an unlimited one makes it
    /// unlimited), plus the requests still running on slots out of service — those hold
    /// tokens until they finish, and must not shrink what the slots in service may take.
    fn recompute_tokens(&mut self) {
        let primary = self.primary_usable();
        let mut total: Option<u32> = Some(0);
        for s in &self.slots {
            let add = if self.in_service(s, primary) {
                s.spec.capacity
            } else {
                s.in_flight
            };
            total = match (total, add) {
                (None, _) => None,
                (Some(_), 0) if self.in_service(s, primary) => None,
                (Some(t), c) => Some(t.saturating_add(c)),
            };
        }
        self.buckets.resize(total);
    }

    /// Active first, standby on overflow, backup only when no active/standby is usable. A
    /// backend in `avoid` (one this request already failed on) counts as unusable.
    fn pick(&mut self, avoid: &[BackendId]) -> Option<usize> {
        let kind = self.settings.scheduler;
        let slots = &self.slots;
        let avoided = |i: usize| !avoid.is_empty() && avoid.contains(&slots[i].spec.backend.id);
        for role in [Role::Active, Role::Standby] {
            let cursor = &mut self.cursors[role_index(role)];
            if let Some(i) = scheduler::pick(kind, slots, role, cursor, avoided) {
                return Some(i);
            }
        }
        let primary_usable = (0..slots.len()).any(|i| {
            let s = &slots[i];
            s.usable() && s.spec.role != Role::Backup && !avoided(i)
        });
        if primary_usable {
            return None;
        }
        let cursor = &mut self.cursors[role_index(Role::Backup)];
        scheduler::pick(kind, slots, Role::Backup, cursor, avoided)
    }

    /// Takes a token of the bucket at `index` and a slot (not one of `avoid`), recording both.
    /// Returns the slot.
    fn take(&mut self, index: usize, stats: &TrafficStats, avoid: &[BackendId]) -> Option<usize> {
        if !self.buckets.can_take(index) {
            return None;
        }
        let i = self.pick(avoid)?;
        self.buckets.take(index);
        let slot = &mut self.slots[i];
        slot.in_flight += 1;
        slot.spec.backend.stats.in_flight.inc();
        stats.in_flight.inc();
        Some(i)
    }

    /// Returns what [`State::take`] took.
    fn put(&mut self, bucket: BucketKey, backend: BackendId, stats: &TrafficStats) {
        if let Some(index) = self.buckets.index_of(bucket) {
            self.buckets.put(index);
        }
        stats.in_flight.dec();
        let Some(i) = self.slots.iter().position(|s| s.spec.backend.id == backend) else {
            return;
        };
        // A finished request of a slot out of service gives its token back for good.
        let counted = self.in_service(&self.slots[i], self.primary_usable());
        let slot = &mut self.slots[i];
        slot.in_flight = slot.in_flight.saturating_sub(1);
        slot.spec.backend.stats.in_flight.dec();
        if slot.draining && slot.in_flight == 0 {
            self.slots.remove(i);
        }
        if !counted {
            self.recompute_tokens();
        }
    }
}

impl Admission {
    pub fn new(settings: AdmissionSettings) -> Arc<Admission> {
        Arc::new(Admission {
            state: Mutex::new(State {
                settings,
                slots: Vec::new(),
                buckets: BucketTree::default(),
                cursors: [0; 3],
                next_waiter: 0,
            }),
            stats: TrafficStats::default(),
        })
    }

    /// Asks for a token of `bucket` (the root when unknown) and a backend slot.
    pub fn acquire(self: &Arc<Self>, bucket: BucketKey) -> Admit {
        self.acquire_avoiding(bucket, &[])
    }

    /// [`Admission::acquire`] for a retry: the backends in `avoid` (those the request already
    /// failed on) are not chosen; a backup takes over when they were the only primaries, and
    /// when no other backend is usable the answer is `Unavailable`. A request that has to
    /// queue may still be served by one of them.
    pub fn acquire_avoiding(self: &Arc<Self>, bucket: BucketKey, avoid: &[BackendId]) -> Admit {
        let mut st = self.state.lock();
        let index = st.buckets.index_of(bucket).unwrap_or(0);
        let bucket = st.buckets.get(index).key;
        if !avoid.is_empty()
            && !st
                .slots
                .iter()
                .any(|s| s.usable() && !avoid.contains(&s.spec.backend.id))
        {
            // Nothing left to try that this request has not failed on.
            return Admit::Unavailable;
        }
        if st.buckets.queue_len(index) == 0 {
            if let Some(i) = st.take(index, &self.stats, avoid) {
                let backend = st.slots[i].spec.backend.clone();
                drop(st);
                return Admit::Granted(Grant::new(self.clone(), bucket, backend));
            }
        }
        if !st.any_usable() && !st.settings.enqueue_on_unavailable {
            return Admit::Unavailable;
        }
        if st.buckets.queue_len(index) >= st.settings.queue_limit {
            return Admit::QueueFull;
        }
        let (tx, rx) = oneshot::channel();
        let id = st.next_waiter;
        st.next_waiter += 1;
        st.buckets.enqueue(index, Waiter { id, tx });
        self.stats.queued.inc();
        drop(st);
        Admit::Queued(Ticket {
            admission: self.clone(),
            id,
            rx: Some(rx),
        })
    }

    /// Replaces the slot table (control plane). Slots of backends that are gone but still
    /// have requests in flight stay, draining, until those finish. Queued requests are then
    /// served with whatever capacity appeared, as many as fit.
    pub fn set_backends(self: &Arc<Self>, specs: Vec<SlotSpec>) {
        let mut st = self.state.lock();
        let old = std::mem::take(&mut st.slots);
        let mut slots: Vec<Slot> = specs
            .into_iter()
            .map(|spec| {
                let in_flight = old
                    .iter()
                    .find(|o| o.spec.backend.id == spec.backend.id)
                    .map_or(0, |o| o.in_flight);
                Slot {
                    spec,
                    in_flight,
                    draining: false,
                }
            })
            .collect();
        for o in old {
            if o.in_flight > 0 && !slots.iter().any(|s| s.spec.backend.id == o.spec.backend.id) {
                slots.push(Slot { draining: true, ..o });
            }
        }
        st.slots = slots;
        st.recompute_tokens();
        self.dispatch(&mut st);
    }

    /// Takes a token of the root bucket and a slot on one given backend: one attempt, no
    /// queue. `allow_disabled` admits a disabled but healthy backend (client-side routing
    /// lets an operator try it before enabling it).
    pub fn acquire_pinned(
        self: &Arc<Self>,
        backend: BackendId,
        allow_disabled: bool,
    ) -> Result<Grant, PinRefused> {
        let mut st = self.state.lock();
        let i = st
            .slots
            .iter()
            .position(|s| s.spec.backend.id == backend)
            .ok_or(PinRefused::Unavailable)?;
        let slot = &st.slots[i];
        if slot.draining || !slot.spec.healthy || !(slot.spec.usable || allow_disabled) {
            return Err(PinRefused::Unavailable);
        }
        if slot.spec.capacity != 0 && slot.in_flight >= slot.spec.capacity {
            return Err(PinRefused::Full);
        }
        let in_service = st.in_service(slot, st.primary_usable());
        if in_service && !st.buckets.can_take(ROOT as usize) {
            return Err(PinRefused::Full);
        }
        st.buckets.take(ROOT as usize);
        let slot = &mut st.slots[i];
        slot.in_flight += 1;
        slot.spec.backend.stats.in_flight.inc();
        self.stats.in_flight.inc();
        let backend = slot.spec.backend.clone();
        if !in_service {
            // Capacity outside the cluster's: count the request so the books stay exact.
            st.recompute_tokens();
        }
        drop(st);
        Ok(Grant::new(self.clone(), ROOT, backend))
    }

    /// Updates queue and scheduling settings (control plane).
    pub fn configure(self: &Arc<Self>, settings: AdmissionSettings) {
        let mut st = self.state.lock();
        st.settings = settings;
        self.dispatch(&mut st);
    }

    /// Whether the backend still has a slot (active or draining).
    pub fn has_slot(&self, backend: BackendId) -> bool {
        self.state
            .lock()
            .slots
            .iter()
            .any(|s| s.spec.backend.id == backend)
    }

    /// Root bucket tokens (`None` = unlimited) and tokens in use.
    pub fn capacity(&self) -> (Option<u32>, u32) {
        let st = self.state.lock();
        let root = st.buckets.get(ROOT as usize);
        (root.ceiling, root.used)
    }

    /// Replaces the bucket tree below the root (control plane); see [`BucketTree::rebuild`].
    pub fn set_buckets(self: &Arc<Self>, config: &[BucketConfig]) {
        let mut st = self.state.lock();
        st.buckets.rebuild(config);
        self.dispatch(&mut st);
    }

    /// The key of the bucket named `name`.
    pub fn bucket_key(&self, name: &str) -> Option<BucketKey> {
        let st = self.state.lock();
        st.buckets.by_name(name).map(|i| st.buckets.get(i).key)
    }

    /// Counts a generated 503/504 against `bucket`.
    pub fn record_dropped(&self, bucket: BucketKey) {
        let mut st = self.state.lock();
        if let Some(i) = st.buckets.index_of(bucket) {
            st.buckets.record_dropped(i);
        }
    }

    /// Every bucket's shares, tokens and counters, root first.
    pub fn buckets(&self) -> Vec<BucketState> {
        let st = self.state.lock();
        let nodes = st.buckets.nodes();
        nodes
            .iter()
            .map(|b| BucketState {
                name: b.name.clone(),
                parent: b.parent_index().map(|p| nodes[p].name.clone()),
                rate: b.rate,
                ceil: b.ceil,
                assured: b.assured,
                ceiling: b.ceiling,
                in_use: b.used,
                borrowed: b.borrowed(),
                queued: b.queue.len() as u32,
                queued_max: b.queued_max,
                queued_total: b.queued_total,
                dropped: b.dropped,
                served: b.served,
            })
            .collect()
    }

    fn release(self: &Arc<Self>, bucket: BucketKey, backend: BackendId, failed: bool) {
        let mut st = self.state.lock();
        st.put(bucket, backend, &self.stats);
        if failed {
            // Passive health: stop choosing it now; the Backend actor decides when it returns.
            if let Some(s) = st.slots.iter_mut().find(|s| s.spec.backend.id == backend) {
                s.spec.usable = false;
            }
            st.recompute_tokens();
        }
        self.dispatch(&mut st);
    }

    /// Hands free capacity to queued requests, oldest first, as many as fit.
    fn dispatch(self: &Arc<Self>, st: &mut State) {
        while let Some(index) = st.buckets.next_waiting() {
            let Some(i) = st.take(index, &self.stats, &[]) else {
                break;
            };
            let backend = st.slots[i].spec.backend.clone();
            let bucket = st.buckets.get(index).key;
            let Some(waiter) = st.buckets.dequeue(index) else {
                break;
            };
            self.stats.queued.dec();
            let grant = Grant::new(self.clone(), bucket, backend);
            // A refused grant (the waiter just left) is disarmed before it drops: we hold the lock.
            if let Err(mut refused) = waiter.tx.send(grant) {
                refused.admission = None;
                st.put(bucket, refused.backend.id, &self.stats);
            }
        }
    }

    /// Takes a waiter out of its queue; false when it was already served.
    fn withdraw(&self, id: u64) -> bool {
        let mut st = self.state.lock();
        let removed = st.buckets.remove_waiter(|w| w.id == id).is_some();
        if removed {
            self.stats.queued.dec();
        }
        removed
    }
}

/// A bucket token plus a backend slot. Dropping it returns both and serves the queue.
pub struct Grant {
    /// `None` once disarmed (capacity already returned).
    admission: Option<Arc<Admission>>,
    bucket: BucketKey,
    backend: Arc<Backend>,
}

impl Grant {
    fn new(admission: Arc<Admission>, bucket: BucketKey, backend: Arc<Backend>) -> Grant {
        Grant {
            admission: Some(admission),
            bucket,
            backend,
        }
    }

    /// The chosen backend.
    pub fn backend(&self) -> &Arc<Backend> {
        &self.backend
    }

    /// Returns the capacity now (a tunnel exempt from capacity); the grant still names its
    /// backend.
    pub fn release(&mut self) {
        if let Some(a) = self.admission.take() {
            a.release(self.bucket, self.backend.id, false);
        }
    }

    /// Returns the capacity after a failed attempt and stops scheduling this backend until
    /// the control plane marks it usable again.
    pub fn fail(mut self) {
        if let Some(a) = self.admission.take() {
            a.release(self.bucket, self.backend.id, true);
        }
    }
}

impl Drop for Grant {
    fn drop(&mut self) {
        if let Some(a) = self.admission.take() {
            a.release(self.bucket, self.backend.id, false);
        }
    }
}

/// A place in a bucket queue.
pub struct Ticket {
    admission: Arc<Admission>,
    id: u64,
    rx: Option<oneshot::Receiver<Grant>>,
}

impl Ticket {
    /// Waits for a grant up to `timeout`. `None` on timeout (or when the cluster went away).
    pub async fn wait(mut self, timeout: Duration) -> Option<Grant> {
        let rx = self.rx.as_mut()?;
        let outcome = tokio::time::timeout(timeout, rx).await;
        match outcome {
            Ok(Ok(grant)) => {
                self.rx = None;
                Some(grant)
            }
            Ok(Err(_)) => None,
            Err(_elapsed) => {
                if self.admission.withdraw(self.id) {
                    None
                } else {
                    // Served in the instant the timer fired: take the grant rather than waste it.
                    self.rx.take().and_then(|mut rx| rx.try_recv().ok())
                }
            }
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.rx.is_some() {
            self.admission.withdraw(self.id);
        }
    }
}

#[cfg(test)]
mod tests;
