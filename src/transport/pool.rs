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

/// The connections of one backend across all workers: how many are open, how many of them are
/// idle in some worker's pool, how many the backend can serve at once, and the signal that asks
/// a worker to close an idle one.
///
/// Some applications (php-fpm) bind a worker process to each open connection, idle or not. With
/// a backend's `capacity` equal to its process count, admission keeps the requests in flight
/// within it; but an idle connection pooled on one director worker still holds a process that
/// another director worker's new connection would wait for in the application's backlog. So
/// open connections are kept within the limit: a worker that opens one beyond it asks another
/// worker to close an idle one, and a connection finishing while the limit is exceeded is
/// closed instead of pooled. Within the limit nothing is closed.
#[derive(Debug, Default)]
pub struct IdleShare {
    idle: std::sync::atomic::AtomicUsize,
    open: std::sync::atomic::AtomicUsize,
    /// The backend's capacity; 0 = unlimited (no connection is ever closed for it).
    limit: std::sync::atomic::AtomicUsize,
    release: tokio::sync::Notify,
}

impl IdleShare {
    /// Idle connections in all workers' pools.
    pub fn idle(&self) -> usize {
        self.idle.load(SeqCst)
    }

    /// A connection went idle in some pool.
    pub fn enter(&self) {
        self.idle.fetch_add(1, SeqCst);
    }

    /// An idle connection left its pool (reused or closed).
    pub fn leave(&self) {
        self.idle.fetch_sub(1, SeqCst);
    }

    /// A connection was opened; it counts until [`closed`](Self::closed).
    pub fn opened(&self) {
        self.open.fetch_add(1, SeqCst);
    }

    pub fn closed(&self) {
        self.open.fetch_sub(1, SeqCst);
    }

    /// Sets the backend's capacity (0 = unlimited).
    pub fn set_limit(&self, limit: u32) {
        self.limit.store(limit as usize, SeqCst);
    }

    /// More connections are open than the backend serves at once.
    pub fn over_limit(&self) -> bool {
        let limit = self.limit.load(SeqCst);
        limit > 0 && self.open.load(SeqCst) > limit
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
