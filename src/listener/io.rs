//! The connection guard: an IO wrapper around each accepted client stream that enforces the
//! head deadline on every request, the idle keep-alive timeout, the send (write-stall)
//! timeout and the head size limits, beneath actix-http's HTTP/1 dispatcher.
//!
//! Hot path. actix-http times only the first request's head, and clears its keep-alive timer
//! as soon as a byte of the next request arrives; this wrapper owns all of that timing. It
//! learns where requests begin and end from the [`ConnState`] it shares with them (see
//! `conn`): while a request is served ("busy") there is no head deadline and bytes are not
//! scanned (pipelining); otherwise the connection is idle (until a byte arrives) or reading a
//! head. An expired deadline or a refused head makes the next read or write fail, which makes
//! actix-http drop the connection — and with it the response body, the backend connection and
//! the admission grant that body holds. Refusals (`414`, `431`, and `408` for a head that
//! started but did not finish in time) are written here, straight to the socket, followed by a
//! short lingering close so that the client reads them before the connection goes.

use std::fs::File;
use std::future::Future;
use std::io;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio::time::{sleep_until, Instant, Sleep};

use super::conn::{ConnHandle, ConnState, GuardSettings};
use super::head_scan::{HeadScan, Verdict};
use crate::clock;
use crate::transport::file_sink::send_file;

/// Where the connection is between requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for or reading a request head, since the accept or its first byte.
    Head { since: Instant },
    /// Between requests, since the last response ended or last made progress.
    Idle { since: Instant },
    /// A request is being served.
    Busy,
}

/// Which limit ended the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expired {
    Head,
    Idle,
    Send,
}

impl Expired {
    fn reason(self) -> &'static str {
        match self {
            Expired::Head => "request head timed out",
            Expired::Idle => "idle keep-alive connection timed out",
            Expired::Send => "client did not read the response in time",
        }
    }
}

/// Director's own answer being written before the connection closes.
struct Closing {
    answer: &'static [u8],
    written: usize,
    shut_down: bool,
    /// Bytes read and dropped after the answer (lingering close).
    drained: usize,
    until: Instant,
    reason: &'static str,
}

/// How long, and for how many bytes, the rest of a refused request is read and dropped
/// after the answer, so that closing does not reset the connection under the answer.
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 256 * 1024;

/// An accepted client stream under the connection guard.
pub struct GuardedIo<T> {
    io: T,
    conn: Rc<ConnState>,
    phase: Phase,
    /// `ConnState`'s count of started requests when last looked at.
    seen_requests: u64,
    scan: HeadScan,
    /// Bytes were passed on without being scanned (read while busy, or after a head's end):
    /// the next head may start in their middle.
    unscanned: bool,
    /// Since when writes to the client make no progress.
    stalled_since: Option<Instant>,
    timer: Pin<Box<Sleep>>,
    armed: Instant,
    closing: Option<Closing>,
    /// The client's end of the stream came while a request that goes on without the client
    /// was served: actix-http sees it once that request is over.
    end_held: bool,
    /// The client's end came right behind a complete request head that is not being served
    /// yet: it is passed on one wake-up later, once actix-http has handed that request to its
    /// handler, whose cluster decides what the end means (`on_client_abort`).
    end_deferred: bool,
    /// A write to the client failed while such a request was served: what follows is dropped.
    client_gone: bool,
}

impl<T> GuardedIo<T> {
    /// Wraps a stream accepted just now.
    pub fn new(io: T, settings: GuardSettings) -> GuardedIo<T> {
        let now = clock::now();
        let deadline = now + settings.client_timeout;
        GuardedIo {
            io,
            conn: Rc::new(ConnState::new(settings)),
            phase: Phase::Head { since: now },
            seen_requests: 0,
            scan: HeadScan::new(),
            unscanned: false,
            stalled_since: None,
            timer: Box::pin(sleep_until(deadline)),
            armed: deadline,
            closing: None,
            end_held: false,
            end_deferred: false,
            client_gone: false,
        }
    }

    /// The stream beneath the guard.
    pub(super) fn stream(&self) -> &T {
        &self.io
    }

    /// What the connection's requests get as connection data.
    pub(super) fn handle(&self) -> ConnHandle {
        ConnHandle(self.conn.clone())
    }

    fn settings(&self) -> &GuardSettings {
        &self.conn.settings
    }

    /// Follows the requests: busy while one is served, idle once it ended.
    fn sync_phase(&mut self) {
        let (busy, started) = self.conn.activity();
        if busy {
            self.phase = Phase::Busy;
        } else if self.phase == Phase::Busy || started != self.seen_requests {
            // A request ended (maybe one that started and ended between two polls).
            self.phase = Phase::Idle {
                since: self.conn.idle_since(),
            };
        }
        self.seen_requests = started;
    }

    /// The earliest deadline in force.
    fn deadline(&self) -> Option<(Instant, Expired)> {
        let settings = self.settings();
        let phase = match self.phase {
            Phase::Head { since } => Some((since + settings.client_timeout, Expired::Head)),
            // A stalled write is the send timeout's business; keep-alive off is actix-http's.
            Phase::Idle { since } if self.stalled_since.is_none() && !settings.keep_alive.is_zero() => {
                Some((since + settings.keep_alive, Expired::Idle))
            }
            Phase::Idle { .. } | Phase::Busy => None,
        };
        let send = self
            .stalled_since
            .map(|since| (since + settings.send_timeout, Expired::Send));
        match (phase, send) {
            (Some(a), Some(b)) => Some(if b.0 < a.0 { b } else { a }),
            (a, b) => a.or(b),
        }
    }

    /// Arms the timer for the earliest deadline (or the lingering close's end) so that the
    /// connection task wakes up when it passes.
    fn arm(&mut self, cx: &mut Context<'_>) {
        let deadline = match &self.closing {
            Some(closing) => Some(closing.until),
            None => self.deadline().map(|(at, _)| at),
        };
        let Some(deadline) = deadline else { return };
        if deadline != self.armed {
            self.timer.as_mut().reset(deadline);
            self.armed = deadline;
        }
        let fired = self.timer.as_mut().poll(cx).is_ready();
        self.conn.armed_for((!fired).then_some(deadline));
        if fired {
            cx.waker().wake_by_ref();
        }
    }

    /// The bytes just read: starts a head when idle, scans heads, refuses oversized ones.
    fn on_bytes(&mut self, bytes: &[u8], now: Instant) -> Result<(), &'static [u8]> {
        match self.phase {
            Phase::Busy => {
                self.unscanned = true;
                return Ok(());
            }
            // Empty lines between requests (RFC 9112 lets servers ignore them) start no
            // head, and do not extend the idle time either.
            Phase::Idle { .. } if bytes.iter().all(|&b| b == b'\r' || b == b'\n') => return Ok(()),
            Phase::Idle { .. } => {
                self.phase = Phase::Head { since: now };
                self.scan = match std::mem::take(&mut self.unscanned) {
                    true => HeadScan::resync(),
                    false => HeadScan::new(),
                };
            }
            Phase::Head { .. } => {}
        }
        if self.scan.is_done() {
            self.unscanned = true;
            return Ok(());
        }
        match self.scan.feed(bytes, self.settings().limits()) {
            Verdict::More => Ok(()),
            Verdict::Complete(used) => {
                self.unscanned = used < bytes.len();
                Ok(())
            }
            Verdict::LineTooLong => Err(URI_TOO_LONG),
            Verdict::HeadersTooLarge => Err(FIELDS_TOO_LARGE),
        }
    }

    /// Starts closing the connection, with `answer` first if there is one.
    fn close(&mut self, answer: &'static [u8], reason: &'static str, now: Instant) {
        self.closing = Some(Closing {
            answer,
            written: 0,
            shut_down: false,
            drained: 0,
            until: now + LINGER_TIME,
            reason,
        });
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> GuardedIo<T> {
    /// What to do about an expired deadline.
    fn expire(&mut self, expired: Expired, cx: &mut Context<'_>, now: Instant) -> Poll<io::Result<()>> {
        match expired {
            // A head that started gets 408, as HAProxy answers; unless a response is still
            // being written, which an answer would corrupt.
            Expired::Head if self.scan.started() && self.stalled_since.is_none() => {
                self.close(REQUEST_TIMEOUT, "request head timed out", now);
                self.poll_closing(cx)
            }
            _ => Poll::Ready(Err(timed_out(expired.reason()))),
        }
    }

    /// Writes the answer, shuts the write side, reads and drops what the client still sends
    /// for a while, then fails the connection.
    fn poll_closing(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(closing) = self.closing.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let done =
            |reason: &'static str| Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, reason)));
        if clock::now() >= closing.until {
            return done(closing.reason);
        }
        while closing.written < closing.answer.len() {
            match Pin::new(&mut self.io).poll_write(cx, &closing.answer[closing.written..]) {
                Poll::Ready(Ok(n)) if n > 0 => closing.written += n,
                Poll::Ready(_) => return done(closing.reason),
                Poll::Pending => return self.linger_pending(cx),
            }
        }
        if !closing.shut_down {
            match Pin::new(&mut self.io).poll_shutdown(cx) {
                Poll::Ready(Ok(())) => closing.shut_down = true,
                Poll::Ready(Err(_)) => return done(closing.reason),
                Poll::Pending => return self.linger_pending(cx),
            }
        }
        let mut scratch = [0u8; 4096];
        loop {
            if closing.drained >= LINGER_BYTES {
                return done(closing.reason);
            }
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut self.io).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => closing.drained += buf.filled().len(),
                Poll::Ready(_) => return done(closing.reason),
                Poll::Pending => return self.linger_pending(cx),
            }
        }
    }

    fn linger_pending<R>(&mut self, cx: &mut Context<'_>) -> Poll<R> {
        self.arm(cx);
        Poll::Pending
    }

    /// Bookkeeping after a write to the client: progress clears a stall (and counts as
    /// activity while idle); a write that cannot proceed starts or continues one.
    fn after_write(
        &mut self,
        result: Poll<io::Result<usize>>,
        cx: &mut Context<'_>,
        len: usize,
    ) -> Poll<io::Result<usize>> {
        match result {
            Poll::Ready(Ok(n)) if n > 0 => {
                self.stalled_since = None;
                self.sync_phase();
                if let Phase::Idle { since } = &mut self.phase {
                    *since = clock::now();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Pending => {
                let now = clock::now();
                self.stalled_since.get_or_insert(now);
                self.sync_phase();
                // Any deadline that passed fails the write too: with a write pending no answer
                // can be sent, and reads may not be polled again (half-closed client).
                if let Some((at, expired)) = self.deadline() {
                    if now >= at {
                        let left = self.left(timed_out(expired.reason()));
                        return Poll::Ready(left.map(|()| len));
                    }
                }
                self.arm(cx);
                Poll::Pending
            }
            Poll::Ready(Ok(n)) => Poll::Ready(Ok(n)),
            Poll::Ready(Err(e)) => Poll::Ready(self.left(e).map(|()| len)),
        }
    }

    /// A write to the client failed (or its send timeout passed): for a request that goes on
    /// without the client, the client is gone from now on; otherwise the error stands.
    fn left(&mut self, error: io::Error) -> io::Result<()> {
        if self.conn.serves_through_abort() {
            log::debug!("client left ({error}); the request goes on without it");
            self.client_gone = true;
            return Ok(());
        }
        Err(error)
    }

    /// A write after the client left: dropped while the request goes on, else an error.
    fn write_gone(&mut self, len: usize) -> Poll<io::Result<usize>> {
        if self.conn.serves_through_abort() {
            Poll::Ready(Ok(len))
        } else {
            Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()))
        }
    }

    /// The client's end of the stream: held while a request that goes on without the client
    /// is served, else passed on.
    fn at_end(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.conn.serves_through_abort() {
            self.end_held = true;
            return self.poll_end_held(cx);
        }
        Poll::Ready(Ok(()))
    }

    /// A read after the client's end: nothing until the request that goes on without the
    /// client is over (its end wakes the connection task), then the end of the stream.
    fn poll_end_held(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.conn.serves_through_abort() {
            self.conn.remember(cx.waker());
            Poll::Pending
        } else {
            Poll::Ready(Ok(()))
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for GuardedIo<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.closing.is_some() {
            return this.poll_closing(cx);
        }
        if this.end_held || this.client_gone {
            // Nothing more is read from a client that ended or could not be written to.
            return this.poll_end_held(cx);
        }
        if this.end_deferred {
            this.end_deferred = false;
            return this.at_end(cx);
        }
        let now = clock::now();
        this.sync_phase();
        if let Some((at, expired)) = this.deadline() {
            if now >= at {
                return this.expire(expired, cx, now);
            }
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Pending => {
                this.conn.remember(cx.waker());
                this.arm(cx);
                Poll::Pending
            }
            Poll::Ready(Ok(())) => {
                let fresh = &buf.filled()[before..];
                if fresh.is_empty() {
                    this.sync_phase();
                    if matches!(this.phase, Phase::Head { .. }) && this.scan.is_done() {
                        this.end_deferred = true;
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                    return this.at_end(cx);
                }
                match this.on_bytes(fresh, now) {
                    Ok(()) => Poll::Ready(Ok(())),
                    Err(answer) => {
                        // actix-http never sees the refused head.
                        buf.set_filled(before);
                        this.close(answer, "request head too large", now);
                        this.poll_closing(cx)
                    }
                }
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        }
    }
}

impl<T: AsyncRead + AsyncWrite + FileTarget + Unpin> AsyncWrite for GuardedIo<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.closing.is_some() {
            // Director's own answer goes out instead; nothing else may follow it.
            return Poll::Ready(Ok(buf.len()));
        }
        if this.client_gone {
            return this.write_gone(buf.len());
        }
        let result = Pin::new(&mut this.io).poll_write(cx, buf);
        this.after_write(result, cx, buf.len())
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.closing.is_some() {
            return Poll::Ready(Ok(bufs.iter().map(|b| b.len()).sum()));
        }
        if this.client_gone {
            return this.write_gone(bufs.iter().map(|b| b.len()).sum());
        }
        let result = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.after_write(result, cx, bufs.iter().map(|b| b.len()).sum())
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    /// Flushes, then sends the file span a response handed over, if any: actix-http has
    /// written every byte that precedes it by the time it flushes.
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.closing.is_some() {
            return Poll::Ready(Ok(()));
        }
        if !this.client_gone {
            if let Err(e) = ready!(Pin::new(&mut this.io).poll_flush(cx)) {
                this.left(e)?;
            }
        }
        let files = this.conn.files.clone();
        files.drive(cx, |cx, file, offset, len| {
            if this.client_gone {
                return this.write_gone(len);
            }
            let sent = this.io.poll_send_file(cx, file, offset, len);
            this.after_write(sent, cx, len)
        })
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.closing.is_some() {
            // The lingering close ends the connection; then actix-http may drop it.
            return this.poll_closing(cx).map(|_| Ok(()));
        }
        if this.client_gone {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

/// A client stream `sendfile(2)` can write to.
pub trait FileTarget {
    /// Whether [`FileTarget::poll_send_file`] works on this stream (not on a TLS session: its
    /// connection then gets no file sink).
    fn sends_files(&self) -> bool {
        true
    }

    /// Writes up to `len` bytes of `file` at `offset`; `Pending` (woken when writable) while
    /// the socket is full.
    fn poll_send_file(
        &self,
        cx: &mut Context<'_>,
        file: &File,
        offset: u64,
        len: usize,
    ) -> Poll<io::Result<usize>>;
}

macro_rules! socket_file_target {
    ($($stream:ty),*) => {$(
        impl FileTarget for $stream {
            fn poll_send_file(&self, cx: &mut Context<'_>, file: &File, offset: u64, len: usize) -> Poll<io::Result<usize>> {
                loop {
                    ready!(self.poll_write_ready(cx))?;
                    match self.try_io(Interest::WRITABLE, || send_file(self.as_raw_fd(), file, offset, len)) {
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                        sent => return Poll::Ready(sent),
                    }
                }
            }
        }
    )*};
}

socket_file_target!(TcpStream, UnixStream);

fn timed_out(reason: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, reason)
}

/// Director's answers written by the guard itself (`Content-Length` checked by a test).
const URI_TOO_LONG: &[u8] = b"HTTP/1.1 414 URI Too Long\r\nContent-Type: text/plain; charset=utf-8\r\n\
Content-Length: 22\r\nConnection: close\r\n\r\nrequest line too long\n";
const FIELDS_TOO_LARGE: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\n\
Content-Type: text/plain; charset=utf-8\r\nContent-Length: 32\r\nConnection: close\r\n\r\n\
request header fields too large\n";
const REQUEST_TIMEOUT: &[u8] = b"HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain; charset=utf-8\r\n\
Content-Length: 34\r\nConnection: close\r\n\r\nrequest head not received in time\n";

#[cfg(test)]
mod tests;
