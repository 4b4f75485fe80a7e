//! The FastCGI keep-alive pool: per worker (no lock, no cross-thread hop on checkout), plus
//! the cross-worker rule of [`IdleShare`]: open connections to a backend stay within its
//! capacity, so idle connections pooled by one worker never hold the php-fpm processes another
//! worker's new connection needs.
//!
//! Hot path for `take`, `put` and `connected`; the release watchers are small per-worker tasks.

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

/// Marks a connection open in its backend's [`IdleShare`] for as long as it lives; keep it in
/// the connection.
#[derive(Debug)]
pub struct OpenConnection(Arc<IdleShare>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.closed();
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

    /// Keeps `conn` for reuse by this worker — unless more connections to `backend` are open
    /// than it serves at once: then `conn` is closed, which frees the process it held for a
    /// connection waiting elsewhere.
    pub fn put(&'static self, backend: &Backend, conn: C) {
        // Counted idle before the limit is checked, while a worker that opens a connection
        // counts it before it looks for idle ones: with sequentially consistent counters at
        // least one of the two sees the other, so an idle connection over the limit is always
        // closed by one side.
        backend.idle.enter();
        let idle = Idle {
            conn: Some(conn),
            share: backend.idle.clone(),
        };
        if backend.idle.over_limit() {
            return;
        }
        self.pool.put(backend.id, idle);
        if self.watched.borrow_mut().insert(backend.id) {
            let (id, share) = (backend.id, backend.idle.clone());
            actix_rt::spawn(self.serve_releases(id, share));
        }
    }

    /// Call when a new connection to `backend` was opened (this worker had no idle one); the
    /// guard goes into the connection. Beyond the backend's capacity, another worker is asked
    /// to close an idle connection.
    pub fn connected(&self, backend: &Backend) -> OpenConnection {
        backend.idle.opened();
        if backend.idle.over_limit() && backend.idle.idle() > 0 {
            backend.idle.request_release();
        }
        OpenConnection(backend.idle.clone())
    }

    /// Closes one of this worker's idle connections to `id` per release request; passes the
    /// request on when it has none but others still do.
    async fn serve_releases(&'static self, id: BackendId, share: Arc<IdleShare>) {
        loop {
            share.release_requested().await;
            match self.pool.take(id) {
                Some(idle) => drop(idle),
                None if share.idle() > 0 && share.over_limit() => {
                    share.request_release();
                    // Let another worker's watcher take it.
                    tokio::task::yield_now().await;
                }
                None => {}
            }
        }
    }
}
