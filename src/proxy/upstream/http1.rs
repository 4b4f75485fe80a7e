//! The HTTP/1.1 upstream exchange: one request on one pooled connection, full duplex, driven by
//! the request's own task.
//!
//! Hot path. The request head is written straight from actix's header map; a request body is
//! streamed as it arrives (with its `Content-Length`, or re-chunked) while the response is read,
//! so a backend that answers or echoes before the body has ended is served at once. The
//! response head is parsed in place (header values are ranges of the read buffer) and the
//! body is decoded by its framing. No connection task, no channel, no header conversion.
//!
//! A connection goes back to the pool only when the exchange ended cleanly: the request was
//! sent whole, the response was read to the end of its framing with nothing after it, and
//! the backend kept the connection alive. Anything else (extra bytes, a cut or malformed body,
//! both `Transfer-Encoding` and `Content-Length`, a write that failed) closes it.
//!
//! A request that asks to upgrade (`Outgoing::tunnel`) goes out with `Connection: upgrade` and
//! its `Upgrade` field(s); its client bytes are held back. A `101` makes the exchange a tunnel
//! (`proxy::tunnel`): the held-back stream is written as it comes, the backend's bytes are the
//! body until it closes, and the connection is never pooled. A `101` nobody asked for is a 502.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use actix_web::http::header as ax;
use bytes::{Buf, Bytes, BytesMut};
use tokio::io::AsyncWrite;

use super::{Failure, Outgoing, Rewrite};
use crate::config::{Endpoint, ForwardedFor};
use crate::proto::http1::{self, Chunk, ChunkedDecoder, Framing, ResponseHead};
use crate::proto::http_headers as rules;
use crate::proxy::error::ProxyError;
use crate::proxy::request_body::BodyReader;
use crate::transport::pool::{Conn, READ_CHUNK};

/// One request in flight on a connection.
pub struct Exchange {
    pub(super) conn: Conn,
    /// Request bytes not written yet: the head, then body pieces and their chunk framing.
    out: VecDeque<Bytes>,
    /// The client body still to be sent; `None` once its end is queued.
    body: Option<BodyReader>,
    /// The body goes out chunked (the client sent no `Content-Length`).
    chunked_body: bool,
    /// A write failed: stop writing, keep reading (the response may still be complete).
    write_failed: Option<io::Error>,
    reused: bool,
    /// Response bytes arrived on this connection.
    got_bytes: bool,
    framing: Framing,
    chunked: ChunkedDecoder,
    /// The response allows another request on the connection.
    keep_alive: bool,
    /// The response body ended cleanly.
    ended: bool,
    /// The client's side of a tunnel, held back until the backend answers `101`.
    tunnel_body: Option<BodyReader>,
    /// The backend answered `101`: bytes flow both ways as they come.
    tunnel: bool,
    /// Tunnel bytes sent from the client to the backend.
    tunnel_in: u64,
    /// The client ended its side of the tunnel and the backend was told (write side shut).
    tunnel_shut: bool,
}

/// The parsed response head and its bytes.
pub struct Head {
    pub head: ResponseHead,
    pub bytes: Bytes,
}

impl Exchange {
    /// Starts an exchange for `request` on `conn`: queues the head and, if any, the body.
    pub fn new(conn: Conn, reused: bool, request: &Outgoing<'_>, endpoint: &Endpoint) -> Exchange {
        let length = request.body.length();
        let chunked_body = !request.body.is_empty() && length.is_none();
        let head = request_head(request, endpoint, length, chunked_body, request.tunnel.is_some());
        let mut out = VecDeque::with_capacity(4);
        out.push_back(head.freeze());
        Exchange {
            conn,
            out,
            body: (!request.body.is_empty()).then(|| request.body.reader(request.backend)),
            chunked_body,
            write_failed: None,
            reused,
            got_bytes: false,
            framing: Framing::None,
            chunked: ChunkedDecoder::default(),
            keep_alive: false,
            ended: false,
            tunnel_body: request.tunnel.map(|body| body.reader(request.backend)),
            tunnel: false,
            tunnel_in: 0,
            tunnel_shut: false,
        }
    }

    /// Whether the backend switched protocols and the body is a tunnel.
    pub fn is_tunnel(&self) -> bool {
        self.tunnel
    }

    /// Tunnel bytes sent from the client to the backend so far.
    pub fn tunnel_bytes_in(&self) -> u64 {
        self.tunnel_in
    }

    /// Whether the whole request has been handed to the socket.
    pub fn request_sent(&self) -> bool {
        self.body.is_none() && self.out.is_empty()
    }

    /// Writes queued request bytes and feeds the client body in, as far as the socket and
    /// the client allow without waiting. Errors only for what must end the exchange at once:
    /// a write timeout or a failed client body.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Result<(), ProxyError> {
        while self.write_failed.is_none() {
            if !self.out.is_empty() {
                let mut slices = [IoSlice::new(&[]); 4];
                let n = self.out.len().min(slices.len());
                for (slice, piece) in slices.iter_mut().zip(&self.out) {
                    *slice = IoSlice::new(piece);
                }
                match Pin::new(&mut self.conn.io).poll_write_vectored(cx, &slices[..n]) {
                    Poll::Ready(Ok(written)) => self.advance(written),
                    Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::TimedOut => {
                        return Err(ProxyError::Timeout("write"))
                    }
                    Poll::Ready(Err(e)) => self.write_failed = Some(e),
                    Poll::Pending => return Ok(()),
                }
                continue;
            }
            let Some(body) = self.body.as_mut() else {
                return Ok(());
            };
            match body.poll_chunk(cx) {
                Poll::Ready(Some(Ok(data))) if data.is_empty() => {}
                Poll::Ready(Some(Ok(data))) => {
                    self.tunnel_in += if self.tunnel { data.len() as u64 } else { 0 };
                    if self.chunked_body {
                        self.out.push_back(Bytes::from(format!("{:x}\r\n", data.len())));
                        self.out.push_back(data);
                        self.out.push_back(Bytes::from_static(b"\r\n"));
                    } else {
                        self.out.push_back(data);
                    }
                }
                Poll::Ready(Some(Err(e))) => return Err(e),
                Poll::Ready(None) => {
                    if self.chunked_body {
                        self.out.push_back(Bytes::from_static(b"0\r\n\r\n"));
                    }
                    self.body = None;
                }
                Poll::Pending => return Ok(()),
            }
        }
        Ok(())
    }

    fn advance(&mut self, mut written: usize) {
        while written > 0 {
            let Some(front) = self.out.front_mut() else {
                return;
            };
            if written < front.len() {
                front.advance(written);
                return;
            }
            written -= front.len();
            self.out.pop_front();
        }
    }

    /// Reads into the buffer; `Ok(0)` at EOF.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        self.conn.buf.reserve(READ_CHUNK);
        let n = ready!(tokio_util::io::poll_read_buf(
            Pin::new(&mut self.conn.io),
            cx,
            &mut self.conn.buf
        ))?;
        self.got_bytes |= n > 0;
        Poll::Ready(Ok(n))
    }

    /// Sends the request and reads the response head (interim 1xx answers skipped).
    pub fn poll_head(&mut self, cx: &mut Context<'_>, head_request: bool) -> Poll<Result<Head, Failure>> {
        loop {
            self.poll_send(cx).map_err(Failure::Fatal)?;
            match http1::parse_response_head(&self.conn.buf, head_request) {
                Ok(Some(parsed)) if parsed.status == 101 => {
                    let Some(client_side) = self.tunnel_body.take() else {
                        let msg = "101 Switching Protocols to a request that asked no upgrade";
                        return Poll::Ready(Err(Failure::Fatal(ProxyError::BadResponse(msg.into()))));
                    };
                    // What follows the head (in the buffer already, or to come) is the other
                    // protocol's, relayed as it is; the connection is never pooled again.
                    let bytes = self.conn.buf.split_to(parsed.len).freeze();
                    self.body = Some(client_side);
                    self.chunked_body = false;
                    self.tunnel = true;
                    self.keep_alive = false;
                    return Poll::Ready(Ok(Head { head: parsed, bytes }));
                }
                Ok(Some(parsed)) if parsed.status < 200 => {
                    let _ = self.conn.buf.split_to(parsed.len);
                    continue;
                }
                Ok(Some(parsed)) => {
                    // Not switching: the client's side of a tunnel is never read.
                    self.tunnel_body = None;
                    let bytes = self.conn.buf.split_to(parsed.len).freeze();
                    self.framing = parsed.framing;
                    // Both framings at once smell of smuggling: relay by Transfer-Encoding, but
                    // never trust the connection again (RFC 9112 §6.3).
                    let doubtful = parsed.framing == Framing::Chunked && parsed.content_length.is_some();
                    self.keep_alive = parsed.keep_alive && !doubtful;
                    return Poll::Ready(Ok(Head { head: parsed, bytes }));
                }
                Ok(None) => {}
                Err(e) => return Poll::Ready(Err(Failure::Fatal(ProxyError::BadResponse(e.to_string())))),
            }
            let had_bytes = self.got_bytes;
            match ready!(self.poll_read(cx)) {
                Ok(0) if self.reused && !had_bytes => return Poll::Ready(Err(Failure::Stale)),
                Ok(0) => {
                    let msg = match self.write_failed.take() {
                        Some(e) => format!("writing the request failed: {e}"),
                        None => "backend closed the connection before a complete response head".into(),
                    };
                    return Poll::Ready(Err(Failure::Fatal(ProxyError::BadResponse(msg))));
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    return Poll::Ready(Err(Failure::Fatal(ProxyError::Timeout("write"))))
                }
                Err(_) if self.reused && !had_bytes => return Poll::Ready(Err(Failure::Stale)),
                Err(e) => return Poll::Ready(Err(Failure::Fatal(ProxyError::Io(e)))),
            }
        }
    }

    /// The next piece of the response body; `None` at its end. Keeps sending the request
    /// body meanwhile.
    pub fn poll_body(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, ProxyError>>> {
        if let Err(e) = self.poll_send(cx) {
            return Poll::Ready(Some(Err(e)));
        }
        if self.tunnel {
            return self.poll_tunnel(cx);
        }
        loop {
            let data = match &mut self.framing {
                Framing::None | Framing::Length(0) => return Poll::Ready(self.end()),
                Framing::Length(left) if !self.conn.buf.is_empty() => {
                    let n = self
                        .conn
                        .buf
                        .len()
                        .min(usize::try_from(*left).unwrap_or(usize::MAX));
                    *left -= n as u64;
                    Some(self.conn.buf.split_to(n).freeze())
                }
                Framing::UntilClose if !self.conn.buf.is_empty() => Some(self.conn.buf.split().freeze()),
                Framing::Chunked => match self.chunked.decode(&mut self.conn.buf) {
                    Ok(Chunk::Data(data)) => Some(data),
                    Ok(Chunk::Done) => return Poll::Ready(self.end()),
                    Ok(Chunk::NeedMore) => None,
                    Err(e) => return Poll::Ready(Some(Err(ProxyError::BadResponse(e.to_string())))),
                },
                Framing::Length(_) | Framing::UntilClose => None,
            };
            if let Some(data) = data {
                return Poll::Ready(Some(Ok(data)));
            }
            match ready!(self.poll_read(cx)) {
                Ok(0) if self.framing == Framing::UntilClose => {
                    self.keep_alive = false;
                    return Poll::Ready(self.end());
                }
                Ok(0) => {
                    let msg = "backend closed the connection mid-body";
                    return Poll::Ready(Some(Err(ProxyError::BadResponse(msg.into()))));
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    return Poll::Ready(Some(Err(ProxyError::Timeout("write"))))
                }
                Err(e) => return Poll::Ready(Some(Err(ProxyError::Io(e)))),
            }
        }
    }

    /// The backend's side of a tunnel: whatever it sends, as it comes; `None` once it closed
    /// (or its connection failed: a tunnel's end is nobody's fault). The client's end of its
    /// side is passed on as a half-close.
    fn poll_tunnel(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, ProxyError>>> {
        if self.request_sent() && !self.tunnel_shut && self.write_failed.is_none() {
            match Pin::new(&mut self.conn.io).poll_shutdown(cx) {
                Poll::Ready(_) => self.tunnel_shut = true,
                Poll::Pending => {}
            }
        }
        loop {
            if !self.conn.buf.is_empty() {
                return Poll::Ready(Some(Ok(self.conn.buf.split().freeze())));
            }
            match ready!(self.poll_read(cx)) {
                Ok(0) | Err(_) => return Poll::Ready(self.end()),
                Ok(_) => {}
            }
        }
    }

    /// The response body ended.
    fn end(&mut self) -> Option<Result<Bytes, ProxyError>> {
        self.ended = true;
        None
    }

    /// Whether the connection can carry another request.
    pub fn reusable(&self) -> bool {
        self.ended
            && self.keep_alive
            && self.request_sent()
            && self.write_failed.is_none()
            && self.conn.buf.is_empty()
    }

    /// Bytes the backend sent after the end of its response (a framing doubt worth a log line).
    pub fn trailing_bytes(&self) -> usize {
        if self.ended {
            self.conn.buf.len()
        } else {
            0
        }
    }
}

/// Writes the upstream request head: the request line, end-to-end headers of the client's
/// request, the body's framing, then the proxy's `X-Forwarded-*` and `Via`.
fn request_head(
    request: &Outgoing<'_>,
    endpoint: &Endpoint,
    length: Option<u64>,
    chunked: bool,
    upgrade: bool,
) -> BytesMut {
    let req = request.req;
    let mut out = BytesMut::with_capacity(512);
    let path = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let method = Rewrite::method(request.rewrite, req.method().as_str());
    out.extend_from_slice(method.as_bytes());
    out.extend_from_slice(b" ");
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let headers = req.headers();
    let connection = headers.get_all(ax::CONNECTION).map(|v| v.as_bytes());
    let has_connection = rules::connection_names_fields(connection.clone());
    for (name, value) in headers.iter() {
        let n = name.as_str();
        if rules::is_hop_by_hop(n.as_bytes())
            || rules::is_replaced_upstream(n)
            || matches!(n, "host" | "x-forwarded-for" | "via" | "content-length")
            || (has_connection && rules::listed_in_connection(n.as_bytes(), connection.clone()))
            || (request.rewrite.is_some() && Rewrite::replaces(n))
            || request.trace.is_some_and(|t| t.replaces(n))
        {
            continue;
        }
        field(&mut out, n.as_bytes(), value.as_bytes());
    }
    for (name, value) in request.trace.iter().flat_map(|t| t.fields()) {
        field(&mut out, name.as_bytes(), value);
    }
    for (name, value) in request.rewrite.iter().flat_map(|r| r.validators()) {
        field(&mut out, name.as_bytes(), value);
    }
    // The routed host (an absolute-form target's authority wins over `Host`), whatever the
    // client listed in `Connection`.
    match (request.host, endpoint) {
        (Some(host), _) => field(&mut out, b"host", host.as_bytes()),
        (None, Endpoint::Tcp { host, .. }) => field(&mut out, b"host", host.as_bytes()),
        (None, Endpoint::Unix(_)) => field(&mut out, b"host", b"localhost"),
    }
    if upgrade {
        // The hop-by-hop pair that asks this hop to switch protocols, passed on as asked.
        field(&mut out, b"connection", b"upgrade");
        for value in headers.get_all(ax::UPGRADE) {
            field(&mut out, b"upgrade", value.as_bytes());
        }
    }
    if let Some(n) = length {
        let mut digits = itoa::Buffer::new();
        field(&mut out, b"content-length", digits.format(n).as_bytes());
    } else if chunked {
        field(&mut out, b"transfer-encoding", b"chunked");
    }
    if let Some(peer) = req.peer_addr() {
        let mut ip = [0u8; 40];
        let ip = format_ip(&mut ip, peer.ip());
        out.extend_from_slice(b"x-forwarded-for: ");
        match request.forwarded_for {
            ForwardedFor::Append => rules::put_list_all(
                &mut out,
                headers.get_all("x-forwarded-for").map(|v| v.as_bytes()),
                ip.as_bytes(),
            ),
            ForwardedFor::Replace => out.extend_from_slice(ip.as_bytes()),
        }
        out.extend_from_slice(b"\r\n");
    }
    let scheme: &[u8] = match req.app_config().secure() {
        true => b"https",
        false => b"http",
    };
    field(&mut out, b"x-forwarded-proto", scheme);
    if let Some(host) = request.host {
        field(&mut out, b"x-forwarded-host", host.as_bytes());
    }
    out.extend_from_slice(b"via: ");
    rules::put_list_all(
        &mut out,
        headers.get_all(ax::VIA).map(|v| v.as_bytes()),
        request.via,
    );
    out.extend_from_slice(b"\r\n\r\n");
    out
}

fn field(out: &mut BytesMut, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Formats `ip` into `buf` without allocating; an IPv4 address (the common case, once per
/// request) without the formatting machinery, which costs about a thousand instructions.
fn format_ip(buf: &mut [u8; 40], ip: std::net::IpAddr) -> &str {
    let n = match ip {
        std::net::IpAddr::V4(v4) => {
            let mut n = 0;
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    buf[n] = b'.';
                    n += 1;
                }
                let mut digits = itoa::Buffer::new();
                let digits = digits.format(octet).as_bytes();
                buf[n..n + digits.len()].copy_from_slice(digits);
                n += digits.len();
            }
            n
        }
        std::net::IpAddr::V6(_) => {
            use std::io::Write;
            let mut cursor = io::Cursor::new(&mut buf[..]);
            let _ = write!(cursor, "{ip}");
            cursor.position() as usize
        }
    };
    std::str::from_utf8(&buf[..n]).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    #[test]
    fn addresses_are_formatted_as_display_does() {
        for text in [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.30.40",
            "255.255.255.255",
            "::1",
            "2001:db8::ff00:42:8329",
        ] {
            let ip: IpAddr = text.parse().expect("address");
            let mut buf = [0u8; 40];
            assert_eq!(super::format_ip(&mut buf, ip), ip.to_string());
        }
        let longest: IpAddr = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"
            .parse()
            .expect("address");
        assert_eq!(super::format_ip(&mut [0u8; 40], longest), longest.to_string());
    }
}
