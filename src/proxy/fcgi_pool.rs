//! The FastCGI keep-alive pool: per worker (no lock, no cross-thread hop on checkout), plus
//! the cross-worker rule of [`IdleShare`]: before opening a connection while other workers hold
//! idle ones to the same backend, ask one of them to close its idle connection, so idle
//! connections never hold all of a php-fpm pool's processes.
//!
//! Hot path for `take` and `put`; the release watchers are small per-worker tasks.

use std::cell::RefCell;
use std::collections::HashSet;
use std::sync::Arc;

use crate::cluster::backend::{Backend, BackendId};
use crate::transport::pool::{IdleShare, Pool};

/// An idle connection, counted in its backend's [`IdleShare`] while it is pooled.
struct Idle<C> {
    conn: Option<C>,
    share: Arc<IdleShare>,
}

impl<C> Drop for Idle<C> {
    fn drop(&mut self) {
        self.share.leave();
    }
}

/// A new connection waiting for its first answer; ends the wait when dropped.
pub struct FreshGuard(Arc<IdleShare>);

impl Drop for FreshGuard {
    fn drop(&mut self) {
        self.0.end_fresh();
    }
}

/// A per-worker pool of connections of type `C` with cross-worker release.
pub struct SharedIdlePool<C: 'static> {
    pool: Pool<Idle<C>>,
    watched: RefCell<HashSet<BackendId>>,
}

impl<C: 'static> Default for SharedIdlePool<C> {
    fn default() -> Self {
        SharedIdlePool {
            pool: Pool::default(),
            watched: RefCell::new(HashSet::new()),
        }
    }
}

impl<C: 'static> SharedIdlePool<C> {
    /// An idle connection to `backend` from this worker's pool.
    pub fn take(&self, backend: &Backend) -> Option<C> {
        self.pool.take(backend.id).and_then(|mut idle| idle.conn.take())
    }

    /// Keeps `conn` for reuse by this worker — unless another worker's new connection waits
    /// for an answer: then `conn` is closed, which frees the application process it held.
    pub fn put(&'static self, backend: &Backend, conn: C) {
        backend.idle.enter();
        let idle = Idle {
            conn: Some(conn),
            share: backend.idle.clone(),
        };
        if backend.idle.fresh_waiting() > 0 {
            return;
        }
        self.pool.put(backend.id, idle);
        if self.watched.borrow_mut().insert(backend.id) {
            let (id, share) = (backend.id, backend.idle.clone());
            actix_rt::spawn(self.serve_releases(id, share));
        }
    }

    /// Call before opening a new connection to `backend`; keep the guard until the connection
    /// is answered. When other workers hold idle connections to it (this worker has none, or
    /// it would have used one), one of them is closed.
    pub fn before_connect(&self, backend: &Backend) -> FreshGuard {
        backend.idle.begin_fresh();
        if backend.idle.count() > 0 {
            backend.idle.request_release();
        }
        FreshGuard(backend.idle.clone())
    }

    /// Closes one of this worker's idle connections to `id` per release request; passes the
    /// request on when it has none but others still do.
    async fn serve_releases(&'static self, id: BackendId, share: Arc<IdleShare>) {
        loop {
            share.release_requested().await;
            match self.pool.take(id) {
                Some(idle) => drop(idle),
                None if share.count() > 0 => {
                    share.request_release();
                    // Let another worker's watcher take it.
                    tokio::task::yield_now().await;
                }
                None => {}
            }
        }
    }
}
