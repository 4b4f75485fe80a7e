//! A worker's graceful stop, as its HTTP/1 connections see it.
//!
//! actix-http asks for one future per connection that resolves when the server starts
//! stopping, and polls it on every poll of the connection, so twice per proxied request.
//! actix-server's signal is a watch channel: polling its `changed()` each time cost about 350
//! instructions per request (callgrind). Here one task per worker waits for that signal, sets
//! a flag of the worker's thread and wakes the worker's connections; a connection's future
//! only reads the flag and, the first time, leaves its waker in the worker's list.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use actix_server::GracefulShutdownSignal;
use slab::Slab;

thread_local! {
    /// This worker's server has started its graceful stop.
    static STOPPING: Cell<bool> = const { Cell::new(false) };
    /// A task waits for the server's signal on this worker.
    static WATCHING: Cell<bool> = const { Cell::new(false) };
    /// The wakers of the connections waiting for the stop.
    static WAITING: RefCell<Slab<Waker>> = const { RefCell::new(Slab::new()) };
}

/// A future that resolves once the server `signal` belongs to starts its graceful stop. Called
/// on a worker of that server (each server runs its own worker threads); the first call on a
/// worker starts the task that waits for the signal there.
pub(super) fn stopped(signal: &GracefulShutdownSignal) -> Stopped {
    if !WATCHING.replace(true) {
        let signal = signal.clone();
        actix_rt::spawn(async move {
            signal.notified().await;
            STOPPING.set(true);
            // Woken, not polled here: each connection sees the flag on its next poll.
            WAITING.with(|waiting| waiting.borrow().iter().for_each(|(_, waker)| waker.wake_by_ref()));
        });
    }
    Stopped { slot: None }
}

/// See [`stopped`].
pub(super) struct Stopped {
    /// This connection's place in the worker's list of waiting connections.
    slot: Option<usize>,
}

impl Future for Stopped {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if STOPPING.get() {
            return Poll::Ready(());
        }
        WAITING.with(|waiting| {
            let mut waiting = waiting.borrow_mut();
            match self.slot {
                Some(slot) if waiting[slot].will_wake(cx.waker()) => {}
                Some(slot) => waiting[slot] = cx.waker().clone(),
                None => self.slot = Some(waiting.insert(cx.waker().clone())),
            }
        });
        Poll::Pending
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        if let Some(slot) = self.slot {
            // The list may be gone already when the worker's thread ends.
            let _ = WAITING.try_with(|waiting| waiting.borrow_mut().try_remove(slot));
        }
    }
}
