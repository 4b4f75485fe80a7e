//! The stream a client connection is served over: the accepted socket itself, or a TLS
//! session on it ([`ClientStream`]), and the TLS handshake that makes one ([`handshake`]).
//!
//! Hot path: every read and write of a connection goes through [`ClientStream`] (one branch).
//! The connection guard wraps a `ClientStream`, so it always sees plaintext. A TLS session has
//! no socket `sendfile(2)` could write to: it says so ([`FileTarget::sends_files`]), its
//! connection gets no file sink, and X-Sendfile bodies reach it as bytes read from the file.

use std::fs::File;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::io::FileTarget;

/// A client connection's byte stream.
pub enum ClientStream<T> {
    Plain(T),
    /// Boxed: a TLS session is large, and most connections may be plain.
    Tls(Box<TlsStream<T>>),
}

/// Runs the TLS handshake of an accepted stream, for at most `timeout` (the listener's
/// `client_timeout`); `None` when it failed or took too long (logged at debug level: clients
/// that give up, scanners and plain-HTTP requests to an HTTPS port are common).
pub async fn handshake<T>(acceptor: &TlsAcceptor, stream: T, timeout: Duration) -> Option<TlsStream<T>>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(e)) => {
            log::debug!("tls handshake failed: {e}");
            None
        }
        Err(_) => {
            log::debug!("tls handshake not finished within {timeout:?}");
            None
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for ClientStream<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            // A client that closes without TLS' close_notify (browsers often do) has ended
            // its stream as a plain one does: the guard and `on_client_abort` see an end,
            // not an error. Requests are framed by HTTP, so nothing is taken as complete
            // that was cut short.
            ClientStream::Tls(s) => match Pin::new(s.as_mut()).poll_read(cx, buf) {
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => Poll::Ready(Ok(())),
                other => other,
            },
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for ClientStream<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            ClientStream::Plain(s) => s.is_write_vectored(),
            ClientStream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_flush(cx),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

impl<T: FileTarget> FileTarget for ClientStream<T> {
    fn sends_files(&self) -> bool {
        match self {
            ClientStream::Plain(s) => s.sends_files(),
            ClientStream::Tls(_) => false,
        }
    }

    fn poll_send_file(
        &self,
        cx: &mut Context<'_>,
        file: &File,
        offset: u64,
        len: usize,
    ) -> Poll<io::Result<usize>> {
        match self {
            ClientStream::Plain(s) => s.poll_send_file(cx, file, offset, len),
            // Never reached: a TLS connection has no file sink, so no span is handed to it.
            ClientStream::Tls(_) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "sendfile(2) cannot write into a TLS session",
            ))),
        }
    }
}
