//! The upstream seam: given a request (head and body stream), produce the response head and
//! body stream from a backend, and recycle the connection — for HTTP/1.1 and FastCGI backends
//! alike, over the one per-worker pool (`transport::pool`).
//!
//! Hot path, in the request's own task, dispatched statically (an enum, no boxing):
//! - [`send`] takes a pooled connection (or opens one), writes the request and reads the
//!   response head. The backend's read timeout starts once the whole request has been sent:
//!   before that a slow client is the client's problem (`client_body_timeout`) and a backend
//!   that stops reading is the backend's (`write_timeout`).
//! - A pooled connection the backend had closed is retried once, on a fresh connection, for
//!   idempotent requests whose body is untouched; it is never blamed on the backend.
//! - [`Exchange::poll_body`] streams the response body, still sending the request body;
//!   [`Exchange::finish`] pools the connection only after a clean end.
//! - After a `101` to an upgrade request, [`Exchange::poll_body`] is the backend's side of a
//!   tunnel (`proxy::tunnel`) and the connection is not pooled.

pub mod fastcgi;
pub mod http1;
pub mod rewrite;

pub use rewrite::Rewrite;

use std::future::{poll_fn, Future};
use std::ops::Range;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::HttpRequest;
use bytes::Bytes;
use tokio::time::{sleep_until, Instant};

use super::error::ProxyError;
use super::request_body::ClientBody;
use super::trace::TraceHeaders;
use crate::clock;
use crate::cluster::Backend;
use crate::config::{ForwardedFor, Protocol};
use crate::transport::pool::{self, Conn};
use crate::transport::{self, TimedStream};

/// Timeouts of one attempt.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    /// From the end of the request to the response head, and between pieces of the body.
    pub read: Duration,
    /// A write to the backend that makes no progress.
    pub write: Duration,
}

/// A request on its way to one backend.
pub struct Outgoing<'a> {
    pub req: &'a HttpRequest,
    pub backend: &'a Arc<Backend>,
    pub body: &'a ClientBody,
    /// The host that routed the request (an absolute-form target's authority, else `Host`).
    pub host: Option<&'a str>,
    pub forwarded_for: ForwardedFor,
    /// The `Via` entry to append.
    pub via: &'a [u8],
    /// Safe to send twice (RFC 9110 §9.2.2).
    pub idempotent: bool,
    pub timeouts: Timeouts,
    /// Changes the cache makes to the request (to fill or revalidate an object).
    pub rewrite: Option<&'a Rewrite>,
    /// The request ID and trace context to send in place of the client's.
    pub trace: Option<&'a TraceHeaders>,
    /// Tell a FastCGI application when the client leaves (`on_client_abort: notify`).
    pub notify_abort: bool,
    /// For a request that asks to switch protocols (WebSocket and others): the client's bytes
    /// after the head, sent to an HTTP backend only once it answered `101`. FastCGI backends
    /// get the request without the upgrade.
    pub tunnel: Option<&'a ClientBody>,
}

/// How an exchange on one connection failed.
pub enum Failure {
    /// A pooled connection the backend had closed before answering anything.
    Stale,
    Fatal(ProxyError),
}

/// A response head from a backend and the exchange its body comes from.
pub struct Response {
    pub status: u16,
    /// The head's bytes; `fields` are (name, value) ranges into them.
    pub head_bytes: Bytes,
    pub fields: Vec<(Range<usize>, Range<usize>)>,
    /// The body's length when the backend announced one (also for HEAD and 304).
    pub content_length: Option<u64>,
    pub exchange: Exchange,
    /// How long opening the connection took; `None` for a pooled one.
    pub connect_time: Option<Duration>,
}

impl Response {
    /// The head's fields as (name, value), in order.
    pub fn pairs(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        let bytes = &self.head_bytes;
        self.fields
            .iter()
            .map(|(n, v)| (&bytes[n.clone()], &bytes[v.clone()]))
    }

    /// The values of the head's fields named `name` (in any letter case).
    pub fn values<'a>(&'a self, name: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.pairs()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }
}

/// One request in flight on a backend connection. Boxed (a few hundred bytes): it travels by
/// value from the attempt into the response body, through every layer a response passes.
pub enum Exchange {
    Http(Box<http1::Exchange>),
    FastCgi(Box<fastcgi::Exchange>),
}

impl Exchange {
    /// Whether the whole request has been sent.
    pub fn request_sent(&self) -> bool {
        match self {
            Exchange::Http(e) => e.request_sent(),
            Exchange::FastCgi(e) => e.request_sent(),
        }
    }

    /// The next piece of the response body; `None` at its end.
    pub fn poll_body(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, ProxyError>>> {
        match self {
            Exchange::Http(e) => e.poll_body(cx),
            Exchange::FastCgi(e) => e.poll_body(cx),
        }
    }

    /// The backend switched protocols (`101`): the body is a byte tunnel both ways.
    pub fn is_tunnel(&self) -> bool {
        matches!(self, Exchange::Http(e) if e.is_tunnel())
    }

    /// Bytes the client sent through the tunnel so far (0 for other exchanges).
    pub fn tunnel_bytes_in(&self) -> u64 {
        match self {
            Exchange::Http(e) => e.tunnel_bytes_in(),
            Exchange::FastCgi(_) => 0,
        }
    }

    /// The client left before the response was complete: a FastCGI application is told with
    /// an ABORT_REQUEST (an HTTP backend learns it from the connection closing).
    pub fn notify_abort(&self) {
        if let Exchange::FastCgi(e) = self {
            e.notify_abort();
        }
    }

    /// The response ended: the connection goes back to this worker's pool if the exchange
    /// ended cleanly, else it is closed.
    pub fn finish(self, backend: &Backend) {
        let conn = match self {
            Exchange::Http(e) => {
                let extra = e.trailing_bytes();
                if extra > 0 {
                    log::warn!(
                        "backend '{}': {extra} byte(s) after the end of a response; closing the connection",
                        backend.name
                    );
                    backend.conns.distrust();
                }
                e.reusable().then_some(e.conn)
            }
            Exchange::FastCgi(e) => {
                if e.trailing_bytes() > 0 {
                    backend.conns.distrust();
                }
                e.into_reusable()
            }
        };
        if let Some(conn) = conn {
            pool::local().checkin(&backend.conns, conn);
        }
    }
}

/// Sends the request of `out` to its backend and reads the response head.
pub async fn send(out: &Outgoing<'_>) -> Result<Response, ProxyError> {
    let backend = out.backend;
    let records = match backend.url.protocol {
        Protocol::FastCgi => Some(fastcgi::request_records(out)?),
        Protocol::Http => None,
    };
    let head_request = Rewrite::method(out.rewrite, out.req.method().as_str()) == "HEAD";
    let mut fresh_only = false;
    loop {
        let pooled = if fresh_only {
            None
        } else {
            pool::local().checkout(&backend.conns)
        };
        let reused = pooled.is_some();
        let mut connect_time = None;
        let mut conn = match pooled {
            Some(conn) => conn,
            None => {
                let began = Instant::now();
                // Boxed: a new connection's future (TCP or UNIX, maybe TLS) is large, and
                // holding it inline would make every request's future, pooled or not, carry
                // and copy it.
                let conn = Box::pin(connect(out)).await?;
                connect_time = Some(began.elapsed());
                conn
            }
        };
        conn.io.set_write_timeout(out.timeouts.write);
        let exchange = match &records {
            Some(records) => Exchange::FastCgi(Box::new(fastcgi::Exchange::new(
                conn,
                reused,
                out,
                records.clone(),
            ))),
            None => Exchange::Http(Box::new(http1::Exchange::new(
                conn,
                reused,
                out,
                &backend.url.endpoint,
            ))),
        };
        let mut notice = AbortNotice {
            exchange: Some(exchange),
            notify: out.notify_abort,
        };
        let head = read_head(notice.exchange_mut(), head_request, out.timeouts.read).await;
        let exchange = notice.disarm();
        match head {
            Ok(head) => {
                let mut response = head.into_response(exchange);
                response.connect_time = connect_time;
                return Ok(response);
            }
            Err(Failure::Stale) if !fresh_only && out.idempotent && out.body.replayable() => {
                log::debug!(
                    "backend '{}': pooled connection was closed; retrying on a fresh one",
                    backend.name
                );
                fresh_only = true;
            }
            Err(Failure::Stale) => return Err(ProxyError::Stale),
            Err(Failure::Fatal(e)) => return Err(e),
        }
    }
}

/// An exchange waiting for its response head. Dropped with it — the request's future was
/// dropped because the client left — it tells the application when asked to.
struct AbortNotice {
    exchange: Option<Exchange>,
    notify: bool,
}

impl AbortNotice {
    fn exchange_mut(&mut self) -> &mut Exchange {
        self.exchange
            .as_mut()
            .expect("an AbortNotice holds its exchange until disarmed")
    }

    /// The head arrived (or the exchange failed): nothing to tell.
    fn disarm(mut self) -> Exchange {
        self.exchange.take().expect("an AbortNotice is disarmed once")
    }
}

impl Drop for AbortNotice {
    fn drop(&mut self) {
        if let (Some(exchange), true) = (&self.exchange, self.notify) {
            exchange.notify_abort();
        }
    }
}

/// Opens a connection to the backend of `out`.
async fn connect(out: &Outgoing<'_>) -> Result<Conn, ProxyError> {
    let stream = transport::connect(
        &out.backend.url.endpoint,
        out.backend.tls.as_ref(),
        out.timeouts.connect,
    )
    .await
    .map_err(|e| {
        if transport::is_local_resource_error(&e) {
            ProxyError::LocalResource(e)
        } else {
            ProxyError::Connect(e)
        }
    })?;
    let io = TimedStream::new(stream, out.timeouts.write);
    Ok(Conn::new(io, &out.backend.conns))
}

/// A response head of either kind.
enum Head {
    Http(http1::Head),
    FastCgi(fastcgi::Head),
}

impl Head {
    fn into_response(self, exchange: Exchange) -> Response {
        match self {
            Head::Http(h) => {
                use crate::proto::http1::Framing;
                let content_length = match h.head.framing {
                    Framing::Length(n) => Some(n),
                    Framing::None => h.head.content_length,
                    Framing::Chunked | Framing::UntilClose => None,
                };
                Response {
                    status: h.head.status,
                    head_bytes: h.bytes,
                    fields: h.head.headers,
                    content_length,
                    exchange,
                    connect_time: None,
                }
            }
            Head::FastCgi(h) => Response {
                status: h.status,
                head_bytes: h.bytes,
                fields: h.fields,
                content_length: h.content_length,
                exchange,
                connect_time: None,
            },
        }
    }
}

/// Drives the exchange to its response head. The read timeout runs from the moment the whole
/// request has been sent.
async fn read_head(
    exchange: &mut Exchange,
    head_request: bool,
    read_timeout: Duration,
) -> Result<Head, Failure> {
    let mut deadline = pin!(sleep_until(clock::now() + FAR));
    let mut armed = false;
    poll_fn(|cx| {
        let polled = match exchange {
            Exchange::Http(e) => e.poll_head(cx, head_request).map_ok(Head::Http),
            Exchange::FastCgi(e) => e.poll_head(cx).map_ok(Head::FastCgi),
        };
        if polled.is_ready() {
            return polled;
        }
        if exchange.request_sent() {
            if !armed {
                armed = true;
                deadline.as_mut().reset(clock::now() + read_timeout);
            }
            if deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(Failure::Fatal(ProxyError::Timeout("read"))));
            }
        }
        Poll::Pending
    })
    .await
}

/// A deadline that is never reached before it is reset.
const FAR: Duration = Duration::from_secs(86_400 * 365);
