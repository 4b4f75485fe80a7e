//! The worker arbiters that control-plane actors are spread over, round-robin.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use actix::ArbiterHandle;

/// A shared, round-robin list of arbiters (actix-web's worker threads).
#[derive(Clone)]
pub struct Arbiters {
    handles: Arc<Vec<ArbiterHandle>>,
    next: Arc<AtomicUsize>,
}

impl Arbiters {
    /// At least one handle is required.
    pub fn new(handles: Vec<ArbiterHandle>) -> Arbiters {
        assert!(!handles.is_empty(), "at least one arbiter");
        Arbiters {
            handles: Arc::new(handles),
            next: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The next arbiter in turn.
    pub fn next(&self) -> ArbiterHandle {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        self.handles[i].clone()
    }
}
