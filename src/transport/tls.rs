//! TLS to `https://` backends: the client handshake over a connected TCP stream, with the
//! backend's prebuilt client configuration, and the idle check of a pooled TLS connection.
//!
//! Hot path only when a connection is opened (the handshake) and when a pooled one is checked
//! before reuse (no syscall while the socket is quiet).

use std::io::{self, Read};
use std::task::{Context, Poll};

use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::IdleState;
use crate::config::BackendTls;

/// A TLS connection to a backend.
pub type TlsStream = tokio_rustls::client::TlsStream<TcpStream>;

/// A failed TLS handshake, the inner error of what [`handshake`] returns: an unverified
/// certificate reads `TLS handshake failed: invalid peer certificate: UnknownIssuer`, a name
/// mismatch `TLS handshake failed: certificate not valid for name ...`.
#[derive(Debug, thiserror::Error)]
#[error("TLS handshake failed: {0}")]
pub struct HandshakeError(#[source] pub io::Error);

/// The TLS handshake with the backend on `tcp`. A failure keeps the error's kind, with a
/// [`HandshakeError`] inside.
pub async fn handshake(tcp: TcpStream, tls: &BackendTls) -> io::Result<TlsStream> {
    let connector = TlsConnector::from(tls.client_config().clone());
    connector
        .connect(tls.server_name().clone(), tcp)
        .await
        .map_err(|e| io::Error::new(e.kind(), HandshakeError(e)))
}

/// Whether `e` is a failed TLS handshake.
pub fn is_handshake_error(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<HandshakeError>())
}

/// Whether anything arrived on an idle TLS connection; see [`super::Stream::idle_state`].
///
/// What arrived is read through rustls rather than peeked at, since under TLS 1.3 a
/// `close_notify` and application data look alike on the wire: a `close_notify` (or a bare
/// EOF) is [`IdleState::Closed`], application data [`IdleState::Unexpected`], a fatal alert or
/// a broken record [`IdleState::Failed`]. Handshake messages (a late session ticket, a key
/// update) are taken in, and the connection stays quiet. Nobody else reads an idle connection,
/// so this consumes nothing a request would have read.
pub(super) fn idle_state(stream: &mut TlsStream) -> IdleState {
    let (tcp, tls) = stream.get_mut();
    // Records read with the last response but not yet taken out of rustls.
    match tls.process_new_packets() {
        Err(_) => return IdleState::Failed,
        Ok(io) if io.plaintext_bytes_to_read() > 0 => return IdleState::Unexpected,
        Ok(io) if io.peer_has_closed() => return IdleState::Closed,
        Ok(_) => {}
    }
    let mut cx = Context::from_waker(std::task::Waker::noop());
    match tcp.poll_read_ready(&mut cx) {
        Poll::Pending => return IdleState::Quiet,
        Poll::Ready(Err(_)) => return IdleState::Failed,
        Poll::Ready(Ok(())) => {}
    }
    loop {
        match tls.read_tls(&mut NonBlocking(tcp)) {
            Ok(0) => return IdleState::Closed,
            Ok(_) => match tls.process_new_packets() {
                Err(_) => return IdleState::Failed,
                Ok(io) if io.plaintext_bytes_to_read() > 0 => return IdleState::Unexpected,
                Ok(io) if io.peer_has_closed() => return IdleState::Closed,
                Ok(_) => {}
            },
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return IdleState::Quiet,
            Err(_) => return IdleState::Failed,
        }
    }
}

/// A TCP stream read without waiting (`WouldBlock` when nothing is there), as rustls reads.
struct NonBlocking<'a>(&'a TcpStream);

impl Read for NonBlocking<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}
