//! The request path's clock: the monotonic time read once per poll of a connection's task
//! instead of at every timestamp the poll takes.
//!
//! A proxied request took fourteen clock readings (its start and the latency it records, the
//! backend's read deadline, the pool's idle marks and distrust check, the connection guard's
//! deadlines and activity), nearly all within one or two polls of its connection's task.
//! Each `Instant::now()` is a vDSO call (about 16 ns on the benchmark VM), so the listener
//! wraps every connection's future in [`PerPoll`]: it reads the clock when a poll starts and
//! [`now`] returns that reading until the poll returns, the way HAProxy's event loop
//! refreshes its `now` once per turn. A timestamp is then early by at most the time the poll
//! has run so far (microseconds).
//! Outside such a poll (actors, timers, tests) [`now`] reads the clock itself.
//!
//! The value is a tokio [`Instant`], so a test that pauses tokio's clock sees paused time.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::time::Instant;

thread_local! {
    /// The clock reading of the poll running on this thread, if a [`PerPoll`] started one.
    static POLL_STARTED: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// The current time: the reading taken when this thread's running [`PerPoll`] poll began,
/// or the clock itself outside one.
#[inline]
pub fn now() -> Instant {
    POLL_STARTED.with(Cell::get).unwrap_or_else(Instant::now)
}

/// [`now`] as a `std` instant.
#[inline]
pub fn now_std() -> std::time::Instant {
    now().into_std()
}

/// The time from `since` to [`now_std`], zero if `since` is later (a reading taken by the
/// clock itself during a poll can be later than the poll's own).
#[inline]
pub fn elapsed_std(since: std::time::Instant) -> std::time::Duration {
    now_std().saturating_duration_since(since)
}

pin_project_lite::pin_project! {
    /// A future whose every poll reads the clock once, for [`now`] to return during it.
    pub struct PerPoll<F> {
        #[pin]
        inner: F,
    }
}

impl<F: Future> PerPoll<F> {
    pub fn new(inner: F) -> PerPoll<F> {
        PerPoll { inner }
    }
}

impl<F: Future> Future for PerPoll<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // Restored after the poll (and if it panics), so polls nest.
        struct Restore(Option<Instant>);
        impl Drop for Restore {
            fn drop(&mut self) {
                POLL_STARTED.with(|c| c.set(self.0));
            }
        }
        let _restore = Restore(POLL_STARTED.with(|c| c.replace(Some(Instant::now()))));
        self.project().inner.poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn outside_a_poll_the_clock_is_read_each_time() {
        let a = now();
        std::thread::sleep(Duration::from_millis(2));
        assert!(now() >= a + Duration::from_millis(2));
    }

    #[test]
    fn inside_a_poll_every_reading_is_the_polls_start_and_the_next_poll_reads_again() {
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut polls = 0;
        let mut readings = Vec::new();
        {
            let mut fut = PerPoll::new(std::future::poll_fn(|cx| {
                let first = now();
                std::thread::sleep(Duration::from_millis(2));
                assert_eq!(now(), first, "one reading per poll");
                readings.push(first);
                polls += 1;
                if polls == 2 {
                    return Poll::Ready(());
                }
                cx.waker().wake_by_ref();
                Poll::Pending
            }));
            assert!(Pin::new(&mut fut).poll(&mut cx).is_pending());
            assert!(Pin::new(&mut fut).poll(&mut cx).is_ready());
        }
        assert!(
            readings[1] >= readings[0] + Duration::from_millis(2),
            "{readings:?}"
        );
        // After the poll the thread reads the clock again.
        let after = now();
        std::thread::sleep(Duration::from_millis(2));
        assert!(now() > after);
    }
}
