//! The lean HTTP/1.1 upstream client for requests without a body (most traffic).
//!
//! Hot path. Runs inside the request's own task: the request head is written straight from
//! actix's header map, the response head is parsed in place (header values are zero-copy
//! slices of the read buffer), and the body is read from the socket by the relay body itself.
//! No connection task, no channel, no header conversion between `http` crate versions.
//! Requests with a body use hyper's full-duplex client (`http_forward`) instead.

use std::io;
use std::time::Duration;

use actix_web::http::header as ax;
use actix_web::HttpRequest;
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::error::ProxyError;
use super::http_forward::Timeouts;
use crate::cluster::Backend;
use crate::config::Endpoint;
use crate::proto::http1::{self, ResponseHead};
use crate::proto::http_headers as rules;
use crate::transport::pool::Pool;
use crate::transport::{self, TimedStream};

/// Read buffer size of a backend connection.
const READ_CHUNK: usize = 16 * 1024;

/// A keep-alive connection to a backend with its read buffer.
pub struct RawConn {
    pub io: TimedStream,
    pub buf: BytesMut,
}

thread_local! {
    static POOL: Pool<RawConn> = Pool::default();
}

/// Returns a connection whose response was read completely.
pub fn recycle(backend: &Backend, conn: RawConn) {
    POOL.with(|p| p.put(backend.id, conn));
}

/// A response head from a backend and the connection its body is to be read from.
pub struct RawResponse {
    pub head: ResponseHead,
    /// The head's bytes; header values in `head` are ranges into them.
    pub head_bytes: Bytes,
    pub conn: RawConn,
}

/// How an exchange on one connection failed.
enum Failure {
    /// A pooled connection the backend had already closed: try a fresh one.
    Stale,
    Fatal(ProxyError),
}

/// Sends the bodiless request `req` to `backend` and reads the response head.
pub async fn send(
    backend: &Backend,
    req: &HttpRequest,
    timeouts: Timeouts,
) -> Result<RawResponse, ProxyError> {
    let head = request_head(req, &backend.url.endpoint);
    let head_request = req.method() == actix_web::http::Method::HEAD;
    loop {
        let (mut conn, reused) = match POOL.with(|p| p.take(backend.id)) {
            Some(conn) => (conn, true),
            None => {
                let stream = transport::connect(&backend.url.endpoint, timeouts.connect)
                    .await
                    .map_err(ProxyError::Connect)?;
                let io = TimedStream::new(stream, timeouts.write);
                (
                    RawConn {
                        io,
                        buf: BytesMut::with_capacity(READ_CHUNK),
                    },
                    false,
                )
            }
        };
        match exchange(&mut conn, &head, head_request, reused, timeouts.read).await {
            Ok((head, head_bytes)) => {
                return Ok(RawResponse {
                    head,
                    head_bytes,
                    conn,
                })
            }
            Err(Failure::Stale) => {
                log::debug!(
                    "backend '{}': pooled connection was closed; reconnecting",
                    backend.name
                );
            }
            Err(Failure::Fatal(e)) => return Err(e),
        }
    }
}

async fn exchange(
    conn: &mut RawConn,
    head: &[u8],
    head_request: bool,
    reused: bool,
    read_timeout: Duration,
) -> Result<(ResponseHead, Bytes), Failure> {
    let io_failure = |e: io::Error, got_bytes: bool| {
        if reused && !got_bytes && e.kind() != io::ErrorKind::TimedOut {
            Failure::Stale
        } else if e.kind() == io::ErrorKind::TimedOut {
            Failure::Fatal(ProxyError::Timeout("write"))
        } else {
            Failure::Fatal(ProxyError::Io(e))
        }
    };
    conn.io.write_all(head).await.map_err(|e| io_failure(e, false))?;
    let read = async {
        loop {
            match http1::parse_response_head(&conn.buf, head_request) {
                Ok(Some(parsed)) if (100..200).contains(&parsed.status) && parsed.status != 101 => {
                    // An interim response (e.g. 100 Continue): skip it.
                    let _ = conn.buf.split_to(parsed.len);
                    continue;
                }
                Ok(Some(parsed)) => {
                    let bytes = conn.buf.split_to(parsed.len).freeze();
                    return Ok((parsed, bytes));
                }
                Ok(None) => {}
                Err(e) => return Err(Failure::Fatal(ProxyError::BadResponse(e.to_string()))),
            }
            conn.buf.reserve(READ_CHUNK);
            let got_bytes = !conn.buf.is_empty();
            match conn.io.read_buf(&mut conn.buf).await {
                Ok(0) if reused && !got_bytes => return Err(Failure::Stale),
                Ok(0) => {
                    let msg = "backend closed the connection before a complete response head";
                    return Err(Failure::Fatal(ProxyError::BadResponse(msg.to_owned())));
                }
                Ok(_) => {}
                Err(e) => return Err(io_failure(e, got_bytes)),
            }
        }
    };
    match tokio::time::timeout(read_timeout, read).await {
        Ok(result) => result,
        Err(_) => Err(Failure::Fatal(ProxyError::Timeout("read"))),
    }
}

/// Writes the upstream request head: end-to-end headers of the client's request, then the
/// proxy's `X-Forwarded-*` and `Via`.
fn request_head(req: &HttpRequest, endpoint: &Endpoint) -> BytesMut {
    let mut out = BytesMut::with_capacity(512);
    let path = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    out.extend_from_slice(req.method().as_str().as_bytes());
    out.extend_from_slice(b" ");
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let headers = req.headers();
    let connection = headers.get_all(ax::CONNECTION).map(|v| v.as_bytes());
    let has_connection = headers.contains_key(ax::CONNECTION);
    for (name, value) in headers.iter() {
        let n = name.as_str();
        if rules::is_hop_by_hop(n)
            || rules::is_replaced_upstream(n)
            || matches!(n, "x-forwarded-for" | "via" | "content-length")
            || (has_connection && rules::listed_in_connection(n, connection.clone()))
        {
            continue;
        }
        field(&mut out, n.as_bytes(), value.as_bytes());
    }
    if !headers.contains_key(ax::HOST) {
        if let Endpoint::Tcp { host, .. } = endpoint {
            field(&mut out, b"host", host.as_bytes());
        }
    }
    if let Some(peer) = req.peer_addr() {
        let mut ip = [0u8; 40];
        let ip = format_ip(&mut ip, peer.ip());
        out.extend_from_slice(b"x-forwarded-for: ");
        rules::put_list(
            &mut out,
            headers.get("x-forwarded-for").map(|v| v.as_bytes()),
            ip.as_bytes(),
        );
        out.extend_from_slice(b"\r\n");
    }
    field(&mut out, b"x-forwarded-proto", b"http");
    if let Some(host) = headers.get(ax::HOST) {
        field(&mut out, b"x-forwarded-host", host.as_bytes());
    }
    field(
        &mut out,
        b"via",
        &rules::via(headers.get(ax::VIA).map(|v| v.as_bytes())),
    );
    out.extend_from_slice(b"\r\n");
    out
}

fn field(out: &mut BytesMut, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Formats `ip` into `buf` without allocating.
fn format_ip(buf: &mut [u8; 40], ip: std::net::IpAddr) -> &str {
    use std::io::Write;
    let mut cursor = io::Cursor::new(&mut buf[..]);
    let _ = write!(cursor, "{ip}");
    let n = cursor.position() as usize;
    std::str::from_utf8(&buf[..n]).unwrap_or("")
}
