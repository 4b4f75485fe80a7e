//! Byte transports to backends: TCP (IPv4, IPv6, host names), TLS over TCP ([`tls`]) and UNIX
//! domain sockets, with connect and write timeouts, the idle-socket check, plus the per-worker
//! keep-alive [`pool`].
//!
//! Hot path: connecting happens only when the pool has no idle connection. Off it,
//! [`http_client`] lends the same connect to awc.

pub mod client_abort;
pub mod file_sink;
pub mod http_client;
pub mod pool;
pub mod tls;

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio::time::Sleep;

use crate::clock;
use crate::config::{BackendTls, Endpoint};

/// A connected byte stream to a backend.
pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
    /// Boxed: a TLS connection's state is large, and rare beside plain ones.
    Tls(Box<tls::TlsStream>),
}

/// What an idle connection's socket shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleState {
    /// Nothing arrived: fit for another request.
    Quiet,
    /// The peer closed it.
    Closed,
    /// Bytes arrived that no request asked for.
    Unexpected,
    /// The socket reports an error.
    Failed,
}

impl Stream {
    /// Whether anything arrived on the socket while nobody was reading. Reads the reactor's
    /// cached readiness first, so a quiet socket costs no syscall; a readable one is probed
    /// with one non-blocking read (readiness can also be left over from a read that filled
    /// the buffer exactly). A TLS connection reads what arrived through rustls
    /// ([`tls::idle_state`]).
    pub fn idle_state(&mut self) -> IdleState {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match self {
            Stream::Tcp(s) => plain_idle_state(s.poll_read_ready(&mut cx), |probe| s.try_read(probe)),
            Stream::Unix(s) => plain_idle_state(s.poll_read_ready(&mut cx), |probe| s.try_read(probe)),
            Stream::Tls(s) => tls::idle_state(s),
        }
    }
}

/// [`Stream::idle_state`] of a plain socket, from its cached readiness and, when readable,
/// one non-blocking read of a byte.
fn plain_idle_state(
    ready: Poll<io::Result<()>>,
    try_read: impl FnOnce(&mut [u8]) -> io::Result<usize>,
) -> IdleState {
    match ready {
        Poll::Pending => IdleState::Quiet,
        Poll::Ready(Err(_)) => IdleState::Failed,
        Poll::Ready(Ok(())) => match try_read(&mut [0u8; 1]) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => IdleState::Quiet,
            Ok(0) => IdleState::Closed,
            Ok(_) => IdleState::Unexpected,
            Err(_) => IdleState::Failed,
        },
    }
}

/// Whether a connect failure is this host running out of something (descriptors, buffers,
/// memory, ephemeral ports) rather than the backend's fault.
pub fn is_local_resource_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM | libc::EADDRNOTAVAIL)
    )
}

/// Opens a stream to `endpoint` within `timeout`, with a TLS handshake (within the same
/// `timeout`) when the backend has `tls`.
pub async fn connect(endpoint: &Endpoint, tls: Option<&BackendTls>, timeout: Duration) -> io::Result<Stream> {
    let attempt = async {
        match (endpoint, tls) {
            (Endpoint::Tcp { host, port }, tls) => {
                let stream = TcpStream::connect((host.as_str(), *port)).await?;
                stream.set_nodelay(true)?;
                match tls {
                    None => Ok(Stream::Tcp(stream)),
                    Some(tls) => Ok(Stream::Tls(Box::new(tls::handshake(stream, tls).await?))),
                }
            }
            (Endpoint::Unix(path), None) => UnixStream::connect(path).await.map(Stream::Unix),
            (Endpoint::Unix(_), Some(_)) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "TLS over a UNIX socket is not supported",
            )),
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")),
    }
}

/// A stream whose writes fail with `TimedOut` when the peer does not take data for
/// `write_timeout` (a backend that stopped reading the request body).
pub struct TimedStream {
    inner: Stream,
    write_timeout: Duration,
    stall: StallTimer,
}

/// Times how long an operation has been stuck; the timer is allocated on the first stall.
#[derive(Default)]
pub struct StallTimer {
    sleep: Option<Pin<Box<Sleep>>>,
    stalled: bool,
}

impl StallTimer {
    /// The operation made progress: the next stall starts a new wait.
    pub fn progressed(&mut self) {
        self.stalled = false;
    }

    /// The operation is stuck now: true once it has been stuck for `limit`; until then the
    /// task is woken when `limit` runs out.
    pub fn expired(&mut self, cx: &mut Context<'_>, limit: Duration) -> bool {
        let deadline = clock::now() + limit;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if !self.stalled {
            self.stalled = true;
            sleep.as_mut().reset(deadline);
        }
        sleep.as_mut().poll(cx).is_ready()
    }
}

impl TimedStream {
    pub fn new(inner: Stream, write_timeout: Duration) -> TimedStream {
        TimedStream {
            inner,
            write_timeout,
            stall: StallTimer::default(),
        }
    }

    /// Changes the write timeout (a pooled connection serves requests of changing settings).
    pub fn set_write_timeout(&mut self, write_timeout: Duration) {
        self.write_timeout = write_timeout;
    }

    /// See [`Stream::idle_state`].
    pub fn idle_state(&mut self) -> IdleState {
        self.inner.idle_state()
    }

    /// Writes what the socket takes at once, without waiting (a last word before closing, for
    /// FastCGI, which never runs over TLS).
    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        match &self.inner {
            Stream::Tcp(s) => s.try_write(buf),
            Stream::Unix(s) => s.try_write(buf),
            Stream::Tls(_) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "no unbuffered write on a TLS connection",
            )),
        }
    }

    fn on_write<T>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if r.is_ready() {
            self.stall.progressed();
            return r;
        }
        if !self.stall.expired(cx, self.write_timeout) {
            return Poll::Pending;
        }
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "write to backend timed out",
        )))
    }
}

impl AsyncRead for TimedStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for TimedStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = match &mut this.inner {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        };
        this.on_write(cx, r)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = match &mut this.inner {
            Stream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        };
        this.on_write(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = match &mut this.inner {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        };
        this.on_write(cx, r)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
