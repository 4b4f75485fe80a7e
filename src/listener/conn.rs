//! What a client connection and the requests it carries share: the guard's settings and
//! whether a request is being served, plus the request side of the guard — [`request_started`],
//! the [`RequestInFlight`] guard, the [`InFlightBody`] that holds it until the response is sent,
//! the admin listener's [`track_requests`] middleware and the refusal of oversized heads that
//! arrived pipelined (the connection guard only scans heads it reads while no request runs).
//!
//! Hot path, one worker thread per connection: plain `Rc`/`Cell`, no locks.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use actix_web::body::{BodySize, EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, StatusCode};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse};
use bytes::Bytes;
use tokio::time::Instant;

use super::head_scan::HeadLimits;
use super::https_policy;
use crate::clock;
use crate::config::ProxyConfig;
use crate::transport::client_abort::ThroughAbort;
use crate::transport::file_sink::FileSink;

/// The limits a listener's connection guard enforces (see the module docs of `listener`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuardSettings {
    /// From the first byte of a request head (or the accept) until the head is complete.
    pub client_timeout: Duration,
    /// Idle time between requests; zero leaves closing to actix-http (keep-alive off).
    pub keep_alive: Duration,
    /// Longest a write to the client may make no progress.
    pub send_timeout: Duration,
    /// Longest request line in bytes (`414` beyond).
    pub max_request_line: usize,
    /// Largest header section in bytes (`431` beyond).
    pub max_header_size: usize,
}

impl GuardSettings {
    /// The settings of `proxy:` (the admin listener uses them too).
    pub fn from_config(proxy: &ProxyConfig) -> GuardSettings {
        GuardSettings {
            client_timeout: proxy.client_timeout,
            keep_alive: proxy.keep_alive,
            send_timeout: proxy.send_timeout,
            max_request_line: proxy.max_request_line,
            max_header_size: proxy.max_header_size,
        }
    }

    pub(super) fn limits(&self) -> HeadLimits {
        HeadLimits {
            max_request_line: self.max_request_line,
            max_header_size: self.max_header_size,
        }
    }
}

/// The state of one connection, shared by its IO wrapper and its requests.
pub(super) struct ConnState {
    pub(super) settings: GuardSettings,
    /// Requests being served (at most one at a time on HTTP/1).
    busy: Cell<u32>,
    /// Requests started so far, so the wrapper notices one that came and went between two
    /// of its polls.
    started: Cell<u64>,
    /// When the last request's response ended.
    idle_since: Cell<Instant>,
    /// The connection task, woken when a response ends so that the idle timer gets armed.
    waker: RefCell<Option<Waker>>,
    /// When the connection's timer fires next, once it was armed.
    armed: Cell<Option<Instant>>,
    /// File spans its responses hand to the connection to send with `sendfile(2)`.
    pub(super) files: FileSink,
    /// The request being served goes on to its end when the client leaves (its cluster's
    /// `on_client_abort: ignore`): the guard hides the client's end and drops what is written
    /// to it until the request is over.
    pub(super) through_abort: ThroughAbort,
}

impl ConnState {
    pub(super) fn new(settings: GuardSettings) -> ConnState {
        ConnState {
            settings,
            busy: Cell::new(0),
            started: Cell::new(0),
            idle_since: Cell::new(clock::now()),
            waker: RefCell::new(None),
            armed: Cell::new(None),
            files: FileSink::default(),
            through_abort: ThroughAbort::default(),
        }
    }

    /// Whether the request being served goes on when the client leaves.
    pub(super) fn serves_through_abort(&self) -> bool {
        self.through_abort.is_set()
    }

    /// Notes when the connection's timer will wake the connection task (`None`: it won't).
    pub(super) fn armed_for(&self, at: Option<Instant>) {
        self.armed.set(at);
    }

    /// Whether a request is being served, and how many have started so far.
    pub(super) fn activity(&self) -> (bool, u64) {
        (self.busy.get() > 0, self.started.get())
    }

    pub(super) fn idle_since(&self) -> Instant {
        self.idle_since.get()
    }

    /// Remembers the connection task's waker (cheap when it is the same task as before).
    pub(super) fn remember(&self, waker: &Waker) {
        let mut slot = self.waker.borrow_mut();
        if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *slot = Some(waker.clone());
        }
    }
}

/// The handle stored in each connection's data (`HttpRequest::conn_data`).
#[derive(Clone)]
pub(super) struct ConnHandle(pub(super) Rc<ConnState>);

/// A request being served on a guarded connection: while it lives the connection has no head
/// deadline; dropping it (when the response has been sent, or dropped) makes the connection
/// idle again, under `keep_alive` until the next request's first byte.
pub struct RequestInFlight {
    conn: Rc<ConnState>,
}

impl Drop for RequestInFlight {
    fn drop(&mut self) {
        let conn = &self.conn;
        let busy = conn.busy.get().saturating_sub(1);
        conn.busy.set(busy);
        if busy == 0 {
            if conn.through_abort.clear() {
                // The guard may be hiding the client's end: let the connection task see it.
                if let Some(waker) = conn.waker.borrow().as_ref() {
                    waker.wake_by_ref();
                }
            }
            let now = clock::now();
            conn.idle_since.set(now);
            // The connection task must arm the idle deadline; its timer makes it do so when
            // that fires first anyway (usually: the head deadline of the request that just
            // ended), else it is woken now. Keep-alive off: actix-http closes by itself.
            let keep_alive = conn.settings.keep_alive;
            let timer_first = conn
                .armed
                .get()
                .is_some_and(|at| at > now && at <= now + keep_alive);
            if !keep_alive.is_zero() && !timer_first {
                if let Some(waker) = conn.waker.borrow().as_ref() {
                    waker.wake_by_ref();
                }
            }
        }
    }
}

/// Marks the start of serving `req` on its connection; `None` when the request did not come
/// through a guarded listener. Keep the guard until the response body is sent or dropped
/// (e.g. in an [`InFlightBody`]).
pub fn request_started(req: &HttpRequest) -> Option<RequestInFlight> {
    Some(RequestInFlight::start(&req.conn_data::<ConnHandle>()?.0))
}

impl RequestInFlight {
    /// Counts a request as being served on `conn`.
    pub(super) fn start(conn: &Rc<ConnState>) -> RequestInFlight {
        conn.busy.set(conn.busy.get() + 1);
        conn.started.set(conn.started.get() + 1);
        RequestInFlight { conn: conn.clone() }
    }
}

/// A response body that holds its request's [`RequestInFlight`] until it is dropped.
pub struct InFlightBody<B> {
    body: B,
    _in_flight: Option<RequestInFlight>,
}

impl<B> InFlightBody<B> {
    pub fn new(body: B, in_flight: Option<RequestInFlight>) -> InFlightBody<B> {
        InFlightBody {
            body,
            _in_flight: in_flight,
        }
    }
}

impl<B: MessageBody + Unpin> MessageBody for InFlightBody<B> {
    type Error = B::Error;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_next(cx)
    }
}

/// Serves `req` with `serve` as a tracked request: refuses a head over the listener's limits
/// (`414`/`431`, then closes), redirects it when its listener redirects to HTTPS, else runs
/// `serve`; adds the listener's HSTS header and holds the request's guard in the body.
pub async fn guarded<B, F, Fut>(req: HttpRequest, serve: F) -> HttpResponse<InFlightBody<EitherBody<B>>>
where
    B: MessageBody,
    F: FnOnce(HttpRequest) -> Fut,
    Fut: Future<Output = HttpResponse<B>>,
{
    let in_flight = request_started(&req);
    let policy = https_policy::of_request(&req);
    let refusal = refuse_oversized(&req).or_else(|| https_policy::redirect(&req, policy.as_deref()));
    let mut res = match refusal {
        Some(refusal) => refusal.map_into_right_body(),
        None => serve(req).await.map_into_left_body(),
    };
    https_policy::add_hsts(&mut res, policy.as_deref());
    res.map_body(|_, body| InFlightBody::new(body, in_flight))
}

/// The admin listener's outermost middleware: what [`guarded`] does for the proxy (an admin
/// listener has no HTTPS policy today; this applies one if it gets one). Event
/// streams are long responses, so they are not cut by the head deadline; the send timeout
/// still applies.
pub async fn track_requests<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<InFlightBody<EitherBody<B>>>, actix_web::Error> {
    let in_flight = request_started(req.request());
    let policy = https_policy::of_request(req.request());
    let refusal =
        refuse_oversized(req.request()).or_else(|| https_policy::redirect(req.request(), policy.as_deref()));
    let mut res = match refusal {
        Some(refusal) => req.into_response(refusal).map_into_right_body(),
        None => next.call(req).await?.map_into_left_body(),
    };
    https_policy::add_hsts(res.response_mut(), policy.as_deref());
    Ok(res.map_body(|_, body| InFlightBody::new(body, in_flight)))
}

/// A `414`/`431` answer (closing the connection) when `req`'s head is over its listener's
/// limits; `None` within them or off a guarded listener.
pub fn refuse_oversized(req: &HttpRequest) -> Option<HttpResponse> {
    let limits = req.conn_data::<ConnHandle>()?.0.settings.limits();
    let (status, text) = oversized_head(req, limits)?;
    let res = HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, "text/plain; charset=utf-8"))
        .force_close()
        .body(text);
    Some(res)
}

/// The status and text for a head over `limits`, measured as the head scanner measures the
/// bytes: `METHOD SP target SP HTTP/1.x`, and `name: value` CRLF per field.
fn oversized_head(req: &HttpRequest, limits: HeadLimits) -> Option<(StatusCode, &'static str)> {
    let uri = req.uri();
    let target = uri.scheme_str().map_or(0, |s| s.len() + 3)
        + uri.authority().map_or(0, |a| a.as_str().len())
        + uri.path_and_query().map_or(0, |pq| pq.as_str().len());
    let line = req.method().as_str().len() + 1 + target + 1 + "HTTP/1.1".len();
    if line > limits.max_request_line {
        return Some((StatusCode::URI_TOO_LONG, REQUEST_LINE_TOO_LONG));
    }
    let mut size = 0;
    for (name, value) in req.headers() {
        size += name.as_str().len() + 2 + value.len() + 2;
    }
    (size > limits.max_header_size)
        .then_some((StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, HEADERS_TOO_LARGE))
}

/// The texts of director's own head refusals.
pub(super) const REQUEST_LINE_TOO_LONG: &str = "request line too long\n";
pub(super) const HEADERS_TOO_LARGE: &str = "request header fields too large\n";
