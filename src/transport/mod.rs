//! Byte transports to backends: TCP (IPv4, IPv6, host names) and UNIX domain sockets, with
//! connect and write timeouts, plus the per-worker keep-alive [`pool`].
//!
//! Hot path: connecting happens only when the pool has no idle connection.

pub mod pool;

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio::time::{Instant, Sleep};

use crate::config::Endpoint;

/// A connected byte stream to a backend.
pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// Opens a stream to `endpoint` within `timeout`.
pub async fn connect(endpoint: &Endpoint, timeout: Duration) -> io::Result<Stream> {
    let attempt = async {
        match endpoint {
            Endpoint::Tcp { host, port } => {
                let stream = TcpStream::connect((host.as_str(), *port)).await?;
                stream.set_nodelay(true)?;
                Ok(Stream::Tcp(stream))
            }
            Endpoint::Unix(path) => UnixStream::connect(path).await.map(Stream::Unix),
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
        let deadline = Instant::now() + limit;
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
        }
    }
}

impl AsyncWrite for TimedStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = match &mut this.inner {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
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
        };
        this.on_write(cx, r)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
