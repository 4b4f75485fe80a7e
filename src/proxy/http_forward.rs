//! The HTTP/1.1 forwarder: turns the client's request head into an upstream request, sends it
//! over a pooled keep-alive connection, and hands back the response head and body.
//!
//! Hot path. The upstream client is hyper's HTTP/1 connection API driven on the worker's own
//! task set: it reads the response while the request body is still being written (full
//! duplex), which awc's client does not do. Each worker has its own connection pool.

use std::time::Duration;

use actix_web::http::header as ax;
use actix_web::HttpRequest;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;

use super::error::ProxyError;
use super::request_body::UpstreamBody;
use crate::cluster::Backend;
use crate::proto::http_headers as rules;
use crate::transport::pool::Pool;
use crate::transport::{self, TimedStream};

/// A keep-alive connection to a backend.
pub type Connection = SendRequest<UpstreamBody>;

thread_local! {
    static POOL: Pool<Connection> = Pool::default();
}

/// Timeouts of one attempt.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub read: Duration,
    pub write: Duration,
}

/// A response head from a backend plus the connection to return to the pool once the body
/// has been read to its end.
pub struct Upstream {
    pub response: hyper::Response<Incoming>,
    pub connection: Connection,
}

/// Returns a connection whose response was read completely, for reuse by this worker.
pub fn recycle(backend: &Backend, connection: Connection) {
    POOL.with(|p| p.put(backend.id, connection));
}

/// Builds the upstream request head from the client's.
pub fn upstream_request(
    req: &HttpRequest,
    body: UpstreamBody,
) -> Result<hyper::Request<UpstreamBody>, http::Error> {
    let mut out = hyper::Request::builder()
        .method(http::Method::from_bytes(req.method().as_str().as_bytes())?)
        .uri(req.uri().path_and_query().map_or("/", |pq| pq.as_str()))
        .version(http::Version::HTTP_11);
    let headers = req.headers();
    let connection: Vec<&[u8]> = headers.get_all(ax::CONNECTION).map(|v| v.as_bytes()).collect();
    let target = out.headers_mut().expect("builder is valid so far");
    for (name, value) in headers.iter() {
        let n = name.as_str();
        if rules::is_hop_by_hop(n)
            || rules::is_replaced_upstream(n)
            || matches!(n, "x-forwarded-for" | "via")
            || (!connection.is_empty() && rules::listed_in_connection(n, connection.iter().copied()))
        {
            continue;
        }
        target.append(
            http::HeaderName::from_bytes(n.as_bytes())?,
            http::HeaderValue::from_bytes(value.as_bytes())?,
        );
    }
    if let Some(peer) = req.peer_addr() {
        let xff = rules::forwarded_for(
            headers.get("x-forwarded-for").map(|v| v.as_bytes()),
            &peer.ip().to_string(),
        );
        target.insert("x-forwarded-for", http::HeaderValue::from_bytes(&xff)?);
    }
    target.insert("x-forwarded-proto", http::HeaderValue::from_static("http"));
    if let Some(host) = headers.get(ax::HOST) {
        target.insert(
            "x-forwarded-host",
            http::HeaderValue::from_bytes(host.as_bytes())?,
        );
    }
    let via = rules::via(headers.get(ax::VIA).map(|v| v.as_bytes()));
    target.insert("via", http::HeaderValue::from_bytes(&via)?);
    out.body(body)
}

/// Sends `request` to `backend`. A pooled connection that turns out to be closed is replaced
/// by a fresh one when the body was not consumed (`replayable`), without blaming the backend.
pub async fn send(
    backend: &Backend,
    mut make_request: impl FnMut() -> Result<hyper::Request<UpstreamBody>, ProxyError>,
    replayable: impl Fn() -> bool,
    timeouts: Timeouts,
) -> Result<Upstream, ProxyError> {
    loop {
        let (mut connection, reused) = match POOL.with(|p| p.take(backend.id)) {
            Some(c) => (c, true),
            None => (connect(backend, timeouts).await?, false),
        };
        if reused && connection.ready().await.is_err() {
            continue;
        }
        let request = make_request()?;
        match tokio::time::timeout(timeouts.read, connection.send_request(request)).await {
            Err(_) => return Err(ProxyError::Timeout("read")),
            Ok(Ok(response)) => return Ok(Upstream { response, connection }),
            Ok(Err(e)) if reused && replayable() && !e.is_user() => {
                log::debug!(
                    "backend '{}': pooled connection was closed ({e}); reconnecting",
                    backend.name
                );
                continue;
            }
            Ok(Err(e)) => return Err(ProxyError::from_hyper(e)),
        }
    }
}

async fn connect(backend: &Backend, timeouts: Timeouts) -> Result<Connection, ProxyError> {
    let stream = transport::connect(&backend.url.endpoint, timeouts.connect)
        .await
        .map_err(ProxyError::Connect)?;
    let io = TokioIo::new(TimedStream::new(stream, timeouts.write));
    let (sender, connection) = http1::Builder::new()
        .handshake(io)
        .await
        .map_err(ProxyError::Protocol)?;
    let name = backend.name.clone();
    actix_rt::spawn(async move {
        if let Err(e) = connection.await {
            log::debug!("backend '{name}': connection ended: {e}");
        }
    });
    Ok(sender)
}
