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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;
    use crate::config::BackendTlsSettings;

    /// A TLS 1.3 server connection and director's client side of it, handshake done.
    async fn pair() -> (
        tokio_rustls::server::TlsStream<TcpStream>,
        TlsStream,
        tempfile::TempDir,
    ) {
        let dir = crate::test_util::temp_dir("tls-idle");
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["backend.test".to_owned()])
            .expect("params")
            .self_signed(&key)
            .expect("certificate");
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, cert.pem()).expect("write");
        let server =
            rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("versions")
                .with_no_client_auth()
                .with_single_cert(
                    vec![cert.der().clone()],
                    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
                )
                .expect("server config");
        let settings = BackendTlsSettings {
            ca: Some(ca),
            server_name: Some("backend.test".to_owned()),
            client_cert: None,
            client_key: None,
            verify: true,
        };
        let tls = BackendTls::build(settings, "127.0.0.1").expect("client config");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr"));
        let (client, accepted) = tokio::join!(client, listener.accept());
        let accepted = accepted.expect("accept").0;
        // No Nagle: a small write after the session tickets must not wait for their ACK.
        accepted.set_nodelay(true).expect("nodelay");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
        let (client, server) = tokio::join!(
            handshake(client.expect("connect"), &tls),
            acceptor.accept(accepted)
        );
        (
            server.expect("server handshake"),
            client.expect("client handshake"),
            dir,
        )
    }

    /// Waits until the reactor has seen the client's socket readable (on loopback, one write
    /// of the peer's has then arrived whole).
    async fn readable(client: &TlsStream) {
        client.get_ref().0.readable().await.expect("readable");
    }

    #[tokio::test]
    async fn a_late_session_ticket_leaves_the_connection_quiet_and_usable() {
        let (mut server, mut client, _dir) = pair().await;
        // The server sent its TLS 1.3 session tickets after the handshake; nothing read them.
        readable(&client).await;
        assert_eq!(idle_state(&mut client), IdleState::Quiet);
        client.write_all(b"ping").await.expect("write");
        let mut buf = [0u8; 4];
        server.read_exact(&mut buf).await.expect("server reads");
        server.write_all(b"pong").await.expect("server writes");
        client.read_exact(&mut buf).await.expect("client reads");
        assert_eq!(&buf, b"pong");
    }

    /// Takes in the session tickets the server sent after the handshake, so that what the
    /// server writes next arrives alone.
    async fn take_tickets(client: &mut TlsStream) {
        readable(client).await;
        assert_eq!(idle_state(client), IdleState::Quiet);
    }

    #[tokio::test]
    async fn application_data_on_an_idle_connection_is_unexpected() {
        let (mut server, mut client, _dir) = pair().await;
        take_tickets(&mut client).await;
        server.write_all(b"late").await.expect("write");
        server.flush().await.expect("flush");
        readable(&client).await;
        assert_eq!(idle_state(&mut client), IdleState::Unexpected);
    }

    #[tokio::test]
    async fn a_tcp_close_without_close_notify_reads_as_an_error_not_an_end() {
        let (server, mut client, _dir) = pair().await;
        take_tickets(&mut client).await;
        // A bare TCP close could be a truncation: a body delimited by the end of the
        // connection must end with the backend's close_notify.
        drop(server);
        let mut buf = [0u8; 16];
        let read = client.read(&mut buf).await;
        assert_eq!(read.map_err(|e| e.kind()), Err(io::ErrorKind::UnexpectedEof));
    }

    #[tokio::test]
    async fn a_close_notify_is_a_close() {
        let (mut server, mut client, _dir) = pair().await;
        take_tickets(&mut client).await;
        // The alert alone, the TCP connection left open: the close_notify must say it.
        server.get_mut().1.send_close_notify();
        server.flush().await.expect("close_notify");
        readable(&client).await;
        assert_eq!(idle_state(&mut client), IdleState::Closed);
        drop(server);
    }
}
