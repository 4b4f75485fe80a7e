//! Zero-copy file sending to a client connection: the seam between a response body that
//! serves a file (X-Sendfile) and the connection that writes it.
//!
//! A [`FileSink`] is shared by one client connection and its requests (it is connection data,
//! like the guard's state). A body hands it a span of an open file; the connection writes
//! that span with `sendfile(2)` — page cache to socket, no copy through user space — right
//! after the bytes it was given before, and the body waits until it is done. The body only
//! hands over spans whose pages are already in memory ([`is_resident`]): `sendfile` reads
//! the disk synchronously, so a cold span is read on the blocking pool as before, which also
//! warms the page cache for the next span.
//!
//! Hot path, one worker thread per connection: `Rc`/`RefCell`, no locks.

use std::cell::RefCell;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

/// Bytes one span hands over at most (between two residency checks).
pub const SPAN: u64 = 2 * 1024 * 1024;

/// Bytes a connection sends in one go before it lets other connections of its worker run.
const BUDGET_PER_POLL: usize = 1024 * 1024;

/// The span being sent, or how it ended.
struct Job {
    file: Arc<File>,
    offset: u64,
    remaining: u64,
    /// `Some` once the span is sent (or failed); the body takes it.
    outcome: Option<io::Result<()>>,
    /// The body's task, woken when the outcome is there.
    waker: Option<Waker>,
}

/// One client connection's file sender (cheap to clone: a reference count).
#[derive(Clone, Default)]
pub struct FileSink(Rc<RefCell<Option<Job>>>);

impl std::fmt::Debug for FileSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FileSink")
    }
}

impl FileSink {
    /// Body side: sends `len` bytes of `file` from `offset` after everything the connection
    /// was given before. The first call hands the span over and returns `Pending`; later
    /// calls return `Pending` until the connection has sent it all, then its outcome.
    pub fn poll_send(
        &self,
        cx: &mut Context<'_>,
        file: &Arc<File>,
        offset: u64,
        len: u64,
    ) -> Poll<io::Result<()>> {
        let mut slot = self.0.borrow_mut();
        match slot.as_mut() {
            None => {
                *slot = Some(Job {
                    file: file.clone(),
                    offset,
                    remaining: len,
                    outcome: None,
                    waker: Some(cx.waker().clone()),
                });
                Poll::Pending
            }
            Some(job) if job.outcome.is_some() => {
                let outcome = job.outcome.take().unwrap_or(Ok(()));
                *slot = None;
                Poll::Ready(outcome)
            }
            Some(job) => {
                if !job.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    job.waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }

    /// Body side: forgets a span not sent yet (the body is gone; the connection is closing).
    pub fn cancel(&self) {
        self.0.borrow_mut().take();
    }

    /// Connection side: sends what is handed over, with `send(cx, file, offset, len)` writing at
    /// most `len` bytes of `file` at `offset` to the socket. `Ready(Ok)` when nothing is left
    /// to send; `Pending` when the socket is full (`send` registered for writability) or after
    /// a budget's worth of bytes (the task is woken again); an error fails the connection.
    pub fn drive(
        &self,
        cx: &mut Context<'_>,
        mut send: impl FnMut(&mut Context<'_>, &File, u64, usize) -> Poll<io::Result<usize>>,
    ) -> Poll<io::Result<()>> {
        let mut slot = self.0.borrow_mut();
        let Some(job) = slot.as_mut().filter(|job| job.outcome.is_none()) else {
            return Poll::Ready(Ok(()));
        };
        let mut sent = 0;
        while job.remaining > 0 {
            if sent >= BUDGET_PER_POLL {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let want = usize::try_from(job.remaining)
                .unwrap_or(usize::MAX)
                .min(BUDGET_PER_POLL);
            match send(cx, &job.file, job.offset, want) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0)) => {
                    let shrank = io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("file shrank while being served: ended at offset {}", job.offset),
                    );
                    let reason = shrank.to_string();
                    job.finish(Err(shrank));
                    return Poll::Ready(Err(io::Error::other(reason)));
                }
                Poll::Ready(Ok(n)) => {
                    job.offset += n as u64;
                    job.remaining -= n as u64;
                    sent += n;
                }
                Poll::Ready(Err(e)) => {
                    job.finish(Err(io::Error::new(e.kind(), e.to_string())));
                    return Poll::Ready(Err(e));
                }
            }
        }
        job.finish(Ok(()));
        Poll::Ready(Ok(()))
    }
}

impl Job {
    fn finish(&mut self, outcome: io::Result<()>) {
        self.outcome = Some(outcome);
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }
}

/// `sendfile(2)`: up to `len` bytes of `file` at `offset` to the socket `socket`.
/// `WouldBlock` when the socket is full.
pub fn send_file(socket: RawFd, file: &File, offset: u64, len: usize) -> io::Result<usize> {
    let mut off = libc::off_t::try_from(offset).map_err(io::Error::other)?;
    // SAFETY: both descriptors are open for the duration of the call; `off` is a valid
    // pointer to an `off_t` the kernel advances.
    let n = unsafe { libc::sendfile(socket, file.as_raw_fd(), &mut off, len) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// Whether the pages of `file` holding its first and last byte in `offset..offset + len` are
/// in memory, so that sending the span will not wait on the disk (a `preadv2` with
/// `RWF_NOWAIT` of one byte at each end; a partly cached span may still read a few pages).
pub fn is_resident(file: &File, offset: u64, len: u64) -> bool {
    len == 0 || (byte_is_resident(file, offset) && byte_is_resident(file, offset + len - 1))
}

fn byte_is_resident(file: &File, offset: u64) -> bool {
    let Ok(offset) = libc::off_t::try_from(offset) else {
        return false;
    };
    let mut byte = 0u8;
    let iov = libc::iovec {
        iov_base: (&mut byte as *mut u8).cast(),
        iov_len: 1,
    };
    // SAFETY: `iov` points at one writable byte that outlives the call.
    let n = unsafe { libc::preadv2(file.as_raw_fd(), &iov, 1, offset, libc::RWF_NOWAIT) };
    n == 1
}

#[cfg(test)]
mod tests;
