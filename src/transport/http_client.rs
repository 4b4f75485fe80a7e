//! The HTTP client for every call off the proxied path — active HTTP health probes, the
//! `--health-check` command, the demo's traffic: awc, bound to one backend endpoint (TCP, TLS
//! over TCP for `https://` backends, or UNIX socket). Control plane and tools only; the proxied path keeps its own lean client
//! (`proxy::upstream`), which `bench/README.md` measures against hyper.
//!
//! A client connects to its endpoint whatever authority a request's URL names (a UNIX socket has
//! none), follows no redirect and gives up after its timeout. A request carries the headers its
//! caller gives and no awc default (no `User-Agent`, `Accept-Encoding` or `Content-Length: 0`);
//! only the `Date` that actix-http's encoder writes on every message is added. Every request
//! goes out on a connection of its own (`Connection: close`): these calls are seconds apart, and
//! a probe must see a fresh connect succeed.

use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_rt::net::{ActixStream, Ready};
use actix_service::Service;
use actix_tls::connect::{ConnectError, ConnectInfo, Connection};
use awc::http::header;
use awc::http::Uri;
use futures_util::future::LocalBoxFuture;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::tls::TlsStream;
use super::Stream;
use crate::config::{BackendTls, Endpoint};

/// An awc client that reaches one endpoint.
pub struct EndpointClient {
    client: awc::Client,
}

impl EndpointClient {
    /// A client for `endpoint`, over TLS with `tls`; connecting (the handshake included), and
    /// then waiting for a response head, may each take up to `timeout`.
    pub fn new(endpoint: &Endpoint, tls: Option<&BackendTls>, timeout: Duration) -> EndpointClient {
        let connector = awc::Connector::new()
            .connector(EndpointConnector {
                endpoint: Rc::new(endpoint.clone()),
                tls: tls.cloned().map(Rc::new),
                timeout,
            })
            .timeout(timeout);
        let client = awc::ClientBuilder::new()
            .connector(connector)
            .no_default_headers()
            .disable_redirects()
            .timeout(timeout)
            .finish();
        EndpointClient { client }
    }

    /// `GET path_and_query` with `Host: host`, `User-Agent: user_agent` and `Connection: close`;
    /// callers may add headers before sending it.
    pub fn get(&self, path_and_query: &str, host: &str, user_agent: &str) -> Get {
        // The authority is a placeholder: the connector ignores it, and `Host` is explicit.
        let request = self
            .client
            .get(format!("http://endpoint{path_and_query}"))
            .insert_header((header::HOST, host))
            .insert_header((header::USER_AGENT, user_agent))
            .no_decompress()
            .force_close();
        Get(request)
    }
}

/// A GET request about to be sent.
pub struct Get(awc::ClientRequest);

impl Get {
    /// Adds a request header (an invalid one fails the send).
    pub fn header(self, name: &str, value: &str) -> Get {
        Get(self.0.insert_header((name, value)))
    }

    /// Sends the request, without a body and without a `Content-Length`; resolves to the
    /// response head (its body streams on).
    pub fn send(self) -> awc::SendClientRequest {
        self.0.send_body(awc::body::None::new())
    }
}

/// A connected TCP, UNIX or TLS stream, as awc takes it.
trait PlainStream: ActixStream + std::fmt::Debug {}

impl<T: ActixStream + std::fmt::Debug> PlainStream for T {}

/// awc's connector service: opens a stream to the endpoint with the proxy's own connect
/// (name resolution, IPv6, `TCP_NODELAY`, TLS handshake, timeout).
#[derive(Clone)]
struct EndpointConnector {
    endpoint: Rc<Endpoint>,
    tls: Option<Rc<BackendTls>>,
    timeout: Duration,
}

impl Service<ConnectInfo<Uri>> for EndpointConnector {
    type Response = Connection<Uri, Box<dyn PlainStream>>;
    type Error = ConnectError;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    actix_service::always_ready!();

    fn call(&self, info: ConnectInfo<Uri>) -> Self::Future {
        let (endpoint, tls, timeout) = (self.endpoint.clone(), self.tls.clone(), self.timeout);
        Box::pin(async move {
            let stream: Box<dyn PlainStream> = match super::connect(&endpoint, tls.as_deref(), timeout).await
            {
                Ok(Stream::Tcp(s)) => Box::new(s),
                Ok(Stream::Unix(s)) => Box::new(s),
                Ok(Stream::Tls(s)) => Box::new(TlsIo(s)),
                Err(e) => return Err(ConnectError::Io(e)),
            };
            Ok(Connection::new(info.request().clone(), stream))
        })
    }
}

/// A TLS stream as awc takes it: readiness is the TCP socket's, as in actix-tls's own
/// streams (awc's HTTP/1 client reads and writes through the stream and does not wait on it).
struct TlsIo(Box<TlsStream>);

impl std::fmt::Debug for TlsIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsIo")
    }
}

impl ActixStream for TlsIo {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<Ready>> {
        ActixStream::poll_read_ready(self.0.get_ref().0, cx)
    }

    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<Ready>> {
        ActixStream::poll_write_ready(self.0.get_ref().0, cx)
    }
}

impl AsyncRead for TlsIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(self.0.as_mut()).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(self.0.as_mut()).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.0.as_mut()).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.0.as_mut()).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Reads one request head from `stream`, answers `answer`, and returns the head.
    async fn serve_one<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
        mut stream: S,
        answer: &[u8],
    ) -> String {
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            if stream.read(&mut byte).await.expect("read") == 0 {
                break;
            }
            head.push(byte[0]);
        }
        stream.write_all(answer).await.expect("write");
        stream.shutdown().await.expect("shutdown");
        String::from_utf8(head).expect("utf-8 head").to_ascii_lowercase()
    }

    #[actix_web::test]
    async fn a_get_over_a_unix_socket_carries_only_its_own_headers() {
        let dir = crate::test_util::temp_dir("http-client");
        let path = dir.path().join("backend.sock");
        let listener = tokio::net::UnixListener::bind(&path).expect("bind");
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.expect("accept");
            serve_one(stream, b"HTTP/1.1 503 Unavailable\r\nContent-Length: 2\r\n\r\nno").await
        });
        let client = EndpointClient::new(&Endpoint::Unix(path.clone()), None, Duration::from_secs(5));
        let response = client
            .get("/health?deep=1", "app.example", "director-test")
            .send()
            .await
            .expect("a response");
        assert_eq!(response.status().as_u16(), 503);
        let head = server.await.expect("join");
        let mut lines: Vec<&str> = head.trim_end().lines().collect();
        assert_eq!(lines.remove(0), "get /health?deep=1 http/1.1");
        lines.sort_unstable();
        // `Date` comes from actix-http's encoder, which writes one on every message.
        lines.retain(|line| !line.starts_with("date: "));
        assert_eq!(
            lines,
            [
                "connection: close",
                "host: app.example",
                "user-agent: director-test"
            ]
        );
    }

    #[actix_web::test]
    async fn a_redirect_is_returned_not_followed() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.expect("accept");
            let answer = b"HTTP/1.1 301 Moved\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n";
            serve_one(stream, answer).await
        });
        let endpoint = Endpoint::Tcp {
            host: "127.0.0.1".into(),
            port,
        };
        let client = EndpointClient::new(&endpoint, None, Duration::from_secs(5));
        let response = client.get("/", "localhost", "director-test").send().await;
        assert_eq!(response.expect("a response").status().as_u16(), 301);
        server.await.expect("join");
    }

    #[actix_web::test]
    async fn a_refused_connection_is_an_io_error_of_that_kind() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        drop(listener);
        let endpoint = Endpoint::Tcp {
            host: "127.0.0.1".into(),
            port,
        };
        let client = EndpointClient::new(&endpoint, None, Duration::from_secs(5));
        let error = client.get("/", "localhost", "director-test").send().await;
        assert!(
            matches!(
                error,
                Err(awc::error::SendRequestError::Connect(awc::error::ConnectError::Io(ref e)))
                    if e.kind() == std::io::ErrorKind::ConnectionRefused
            ),
            "{error:?}"
        );
    }
}
