//! Whether the request being served on a client connection goes on when the client leaves:
//! a flag the connection's guard (`listener`) shares with that request (`proxy`), through the
//! connection's data. Set for a request of a cluster with `on_client_abort: ignore`; cleared
//! by the guard when the request is over.
//!
//! Hot path, one worker thread per connection: an `Rc<Cell>`, no locks.

use std::cell::Cell;
use std::rc::Rc;

/// The flag of one client connection.
#[derive(Clone, Default)]
pub struct ThroughAbort(Rc<Cell<bool>>);

impl ThroughAbort {
    /// The request being served goes on to its end if the client leaves.
    pub fn set(&self) {
        self.0.set(true);
    }

    /// Whether the request being served goes on if the client leaves.
    pub fn is_set(&self) -> bool {
        self.0.get()
    }

    /// The request is over; returns whether the flag was set.
    pub fn clear(&self) -> bool {
        self.0.replace(false)
    }
}
