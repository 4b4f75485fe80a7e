//! A per-worker pool of idle keep-alive connections, keyed by backend.
//!
//! Hot path, single-threaded: each worker owns its pool (a `thread_local!` in the forwarder),
//! so checkout and checkin are a `RefCell` borrow, never a lock or a cross-thread hop.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

use crate::cluster::backend::BackendId;

/// Idle connections kept per backend and worker.
pub const MAX_IDLE_PER_BACKEND: usize = 256;

/// An idle connection is dropped rather than reused after this long (backends commonly close
/// idle keep-alive connections after 5–75 s; reusing one they are closing costs a retry).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(4);

/// Idle connections of type `C` by backend.
pub struct Pool<C> {
    idle: RefCell<HashMap<BackendId, Vec<(C, Instant)>>>,
}

impl<C> Default for Pool<C> {
    fn default() -> Self {
        Pool {
            idle: RefCell::new(HashMap::new()),
        }
    }
}

impl<C> Pool<C> {
    /// The most recently used idle connection to `backend` that is younger than
    /// [`IDLE_TIMEOUT`]; older ones are dropped on the way.
    pub fn take(&self, backend: BackendId) -> Option<C> {
        let mut idle = self.idle.borrow_mut();
        let list = idle.get_mut(&backend)?;
        while let Some((conn, since)) = list.pop() {
            if since.elapsed() < IDLE_TIMEOUT {
                return Some(conn);
            }
        }
        None
    }

    /// Keeps `conn` for reuse, unless the backend already has enough idle ones.
    pub fn put(&self, backend: BackendId, conn: C) {
        let mut idle = self.idle.borrow_mut();
        let list = idle.entry(backend).or_default();
        if list.len() < MAX_IDLE_PER_BACKEND {
            list.push((conn, Instant::now()));
        }
    }
}

/// The idle connections of one backend across all workers, and the signal that asks a worker
/// to close one.
///
/// Some applications (php-fpm) bind a worker process to each open connection, idle or not: a
/// connection pooled on one director worker can keep another director worker's new connection
/// waiting in the application's backlog. A worker about to open a connection while others hold
/// idle ones asks one of them to close it.
///
/// Both directions of the race are covered: a worker opening a connection first announces it
/// ([`begin_fresh`](Self::begin_fresh)) and then looks for idle connections elsewhere; a worker
/// pooling a connection first counts it ([`enter`](Self::enter)) and then looks for fresh
/// connections waiting ([`fresh_waiting`](Self::fresh_waiting)) — with sequentially consistent
/// counters at least one of the two sees the other.
#[derive(Debug, Default)]
pub struct IdleShare {
    count: std::sync::atomic::AtomicUsize,
    fresh: std::sync::atomic::AtomicUsize,
    release: tokio::sync::Notify,
}

impl IdleShare {
    /// Idle connections in all workers' pools.
    pub fn count(&self) -> usize {
        self.count.load(SeqCst)
    }

    /// A connection went idle in some pool.
    pub fn enter(&self) {
        self.count.fetch_add(1, SeqCst);
    }

    /// An idle connection left its pool (reused or closed).
    pub fn leave(&self) {
        self.count.fetch_sub(1, SeqCst);
    }

    /// A new connection is being opened and has not been answered yet.
    pub fn begin_fresh(&self) {
        self.fresh.fetch_add(1, SeqCst);
    }

    /// The new connection was answered (or failed).
    pub fn end_fresh(&self) {
        self.fresh.fetch_sub(1, SeqCst);
    }

    /// New connections waiting for their first answer.
    pub fn fresh_waiting(&self) -> usize {
        self.fresh.load(SeqCst)
    }

    /// Asks one worker holding an idle connection to close it.
    pub fn request_release(&self) {
        self.release.notify_one();
    }

    /// Waits for a release request.
    pub async fn release_requested(&self) {
        self.release.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_in_first_out_per_backend() {
        let pool = Pool::default();
        pool.put(1, "a");
        pool.put(1, "b");
        pool.put(2, "c");
        assert_eq!(pool.take(1), Some("b"));
        assert_eq!(pool.take(1), Some("a"));
        assert_eq!(pool.take(1), None);
        assert_eq!(pool.take(2), Some("c"));
        assert_eq!(pool.take(2), None);
    }
}
