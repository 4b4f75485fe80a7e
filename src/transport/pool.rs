//! A per-worker pool of idle keep-alive connections, keyed by backend.
//!
//! Hot path, single-threaded: each worker owns its pool (a `thread_local!` in the forwarder),
//! so checkout and checkin are a `RefCell` borrow, never a lock or a cross-thread hop.

use std::cell::RefCell;
use std::collections::HashMap;
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
