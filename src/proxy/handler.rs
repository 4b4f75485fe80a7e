//! The request pipeline: route (on the normalised path), admit (token + slot, or wait),
//! forward with retries, relay.
//!
//! Hot path. Everything happens on the worker that accepted the request; the only
//! cross-thread event is a queued request being woken by whoever freed capacity.

use std::sync::Arc;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::Payload;
use actix_web::http::{header as ax, Method, StatusCode};
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};

use super::access_log::AccessRecord;
use super::blame;
use super::cached::{self, CachePlan, Step};
use super::error::ProxyError;
use super::relay_body::{record_dropped, record_status, RelayBody, Timing};
use super::request_body::ClientBody;
use super::response::{self, Relayed};
use super::trace::TraceHeaders;
use super::tunnel;
use super::upstream::{self, Outgoing, Timeouts};
use super::ProxyState;
use crate::clock;
use crate::cluster::backend::BackendId;
use crate::cluster::buckets::BucketKey;
use crate::cluster::classify::RequestView;
use crate::cluster::topology::ClusterSettings;
use crate::cluster::{Admit, Backend, ClusterHandle, Grant};
use crate::config::{ClientRouting, OnClientAbort, RouteTimeouts};
use crate::proto::header_lines;
use crate::proto::http_headers as rules;
use crate::proto::path;
use crate::stats::TrafficStats;
use crate::transport::client_abort::ThroughAbort;

/// Serves one client request; its answer carries the request ID when there is one.
pub async fn handle(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<ProxyState>,
) -> HttpResponse<RelayBody> {
    // Boxed: most listeners trace nothing, and every request's future would carry its size.
    let trace = state.tracing.as_ref().map(|t| Box::new(t.headers(&req)));
    let Some(request_id) = trace.as_ref().and_then(|t| t.request_id()).cloned() else {
        return serve(req, payload, state, trace).await;
    };
    let mut response = serve(req, payload, state, trace).await;
    // The ID replaces a field of its name, in the header map or the ready-made lines.
    let (name, value) = request_id;
    let head = response.head_mut();
    if header_lines::has_field(head.raw_headers(), name.as_str().as_bytes()) {
        let kept = header_lines::without_field(head.raw_headers(), name.as_str().as_bytes());
        head.set_raw_headers(kept.bytes, kept.has_date);
    }
    response.headers_mut().insert(name, value);
    response
}

/// Routes, classifies and serves a request.
async fn serve(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<ProxyState>,
    trace: Option<Box<TraceHeaders>>,
) -> HttpResponse<RelayBody> {
    let host = routed_host(&req);
    let new_record = |cluster: &str| {
        let mut record = state.access_log.as_ref()?.record(&req, cluster);
        if let Some(trace) = &trace {
            record.set_trace(trace);
        }
        Some(record)
    };
    let route_path = match path::normalize(req.path()) {
        Ok(p) => p,
        Err(e) => {
            let log = refused(new_record("-"));
            log::info!("refused {} {}: {e}", req.method(), req.path());
            return generated(StatusCode::BAD_REQUEST, "bad request path\n", 0, log);
        }
    };
    let (cluster, settings, bucket, debug_bucket, bucket_name, route_timeouts) = {
        let topology = state.topology.load();
        let Some(route) = topology.as_ref().and_then(|t| t.route(host, &route_path)) else {
            let log = refused(new_record("-"));
            return generated(StatusCode::NOT_FOUND, "no route for this request\n", 0, log);
        };
        let cluster = &route.cluster;
        let classifier = cluster.classifier.load();
        let view = ActixRequest {
            req: &req,
            host,
            path: &route_path,
        };
        let (bucket, name) = classifier.classify(&view);
        let settings = cluster.settings.load_full();
        let debug = settings.debug_headers.then(|| name.to_owned());
        let logged = state.access_log.is_some().then(|| name.to_owned());
        // Boxed (most routes have none): this future holds it across the cache lookup.
        let timeouts = (route.timeouts != RouteTimeouts::default()).then(|| Box::new(route.timeouts));
        (cluster.clone(), settings, bucket, debug, logged, timeouts)
    };
    let mut log = new_record(&cluster.name);
    if let (Some(l), Some(name)) = (log.as_mut(), bucket_name) {
        l.set_bucket(&name);
    }
    if !settings.enabled {
        // The maintenance switch: nothing reaches the cluster, not even its cache.
        record_status(&cluster, None, StatusCode::SERVICE_UNAVAILABLE.as_u16());
        let text = "this service is down for maintenance\n";
        let response = generated(StatusCode::SERVICE_UNAVAILABLE, text, settings.retry_after, log);
        return with_cluster_via(response, own_via(&settings));
    }
    // A tunnel's client leaving ends it: `on_client_abort: ignore` is for requests.
    let upgrade = settings.upgrades.enabled && tunnel::asks_upgrade(&req);
    if settings.on_client_abort == OnClientAbort::Ignore && !upgrade {
        // The backend finishes even if the client leaves (the connection's guard sees to it).
        // HTTP/1 keeps the flag per connection, HTTP/2 per stream (in the request).
        match req.conn_data::<ThroughAbort>() {
            Some(through_abort) => through_abort.set(),
            None => {
                if let Some(through_abort) = req.extensions().get::<ThroughAbort>() {
                    through_abort.set();
                }
            }
        }
    }
    if let Some(routing) = &settings.client_routing {
        if let Some(name) = pinned_backend(&req, routing) {
            let timeouts = timeouts(&settings, route_timeouts.as_deref());
            let request = Request::new(req, payload, upgrade, &settings, timeouts, trace, log);
            let response = Box::pin(serve_pinned(request, &cluster, &settings, &name)).await;
            return with_cluster_via(response, own_via(&settings));
        }
    }
    if req.method().as_str() == "PURGE" {
        if let Some((status, text)) = cached::purge_method(&cluster, &req, host, &route_path) {
            record_status(&cluster, None, status.as_u16());
            return with_cluster_via(generated_owned(status, text, log), own_via(&settings));
        }
    }
    let plan = match cached::lookup(&cluster, &req, host, &route_path, &mut log, upgrade).await {
        Step::Bypass => None,
        Step::Served { response, refresh } => {
            if let Some(plan) = refresh {
                let forward = Forward {
                    cluster: cluster.clone(),
                    timeouts: timeouts(&settings, route_timeouts.as_deref()),
                    settings,
                    bucket,
                    debug_bucket: None,
                };
                actix_web::rt::spawn(refresh_in_background(req.clone(), plan, forward));
            }
            return response;
        }
        Step::Forward(plan) => Some(plan),
    };
    let timeouts = timeouts(&settings, route_timeouts.as_deref());
    let mut request = Request::new(req, payload, upgrade, &settings, timeouts, trace, log);
    request.cache = plan;
    let forward = Forward {
        cluster,
        settings,
        timeouts,
        bucket,
        debug_bucket,
    };
    // Boxed so that this function's own future stays small: actix-web moves it into a box of
    // its own, and a cache hit, which never forwards, should not pay for copying the
    // forwarding state machine (a few KiB) there.
    Box::pin(async move {
        let via = own_via(&forward.settings).cloned();
        let response = forward.run(request).await;
        with_cluster_via(response, via.as_ref())
    })
    .await
}

/// The cluster's `Via` entry when it is not the default one.
fn own_via(settings: &ClusterSettings) -> Option<&bytes::Bytes> {
    (settings.via != rules::VIA.as_bytes()).then_some(&settings.via)
}

/// Director's own answers ([`generated`]) carry the default `Via` entry; for a cluster with a
/// pseudonym of its own (`via`), its entry replaces it. Relayed and cached answers already
/// carry the cluster's entry.
fn with_cluster_via(
    mut response: HttpResponse<RelayBody>,
    via: Option<&bytes::Bytes>,
) -> HttpResponse<RelayBody> {
    let Some(via) = via else {
        return response;
    };
    let headers = response.headers_mut();
    if headers
        .get(ax::VIA)
        .is_some_and(|v| v.as_bytes() == rules::VIA.as_bytes())
    {
        if let Ok(value) = ax::HeaderValue::from_maybe_shared(via.clone()) {
            headers.insert(ax::VIA, value);
        }
    }
    response
}

/// Where a request goes once routed and classified.
struct Forward {
    cluster: Arc<ClusterHandle>,
    settings: Arc<ClusterSettings>,
    /// The cluster's backend timeouts, with the route's own in their place.
    timeouts: Timeouts,
    bucket: BucketKey,
    debug_bucket: Option<String>,
}

impl Forward {
    /// Admits and forwards the request, retrying on other backends as the cluster allows.
    async fn run(self, mut request: Request) -> HttpResponse<RelayBody> {
        let Forward {
            cluster,
            settings,
            bucket,
            debug_bucket,
            ..
        } = self;
        let mut retries = 0;
        // Backends this request failed on, and the last failure.
        let mut tried: Vec<BackendId> = Vec::new();
        let mut last: Option<(Arc<Backend>, ProxyError)> = None;
        loop {
            let admit = cluster.admission.acquire_avoiding(bucket, &tried);
            let grant = match (admit, last.take()) {
                (Admit::Granted(grant), _) => {
                    request.note(|l| l.admitted(Duration::ZERO));
                    grant
                }
                (Admit::Queued(ticket), last) => {
                    request.note(AccessRecord::queued);
                    let since = clock::now_std();
                    let granted = ticket.wait(settings.queue_timeout).await;
                    request.note(|l| l.admitted(clock::elapsed_std(since)));
                    match granted {
                        Some(grant) => grant,
                        None if last.is_some() => return failed(&cluster, last, request),
                        None => {
                            log::info!(
                                "cluster '{}': queued request timed out: {} {}",
                                cluster.name,
                                request.req.method(),
                                request.req.path()
                            );
                            request.note(|l| l.terminate(*b"sQ"));
                            let (status, retry_after) = (StatusCode::GATEWAY_TIMEOUT, settings.retry_after);
                            return dropped(&cluster, bucket, status, retry_after, request);
                        }
                    }
                }
                // A retry with nothing else to try answers with the failure it met.
                (Admit::Unavailable | Admit::QueueFull, last @ Some(_)) => {
                    return failed(&cluster, last, request)
                }
                (admit @ (Admit::Unavailable | Admit::QueueFull), None) => {
                    // No backend to take it (HAProxy's `SC`), or the queue is full (`PQ`).
                    let code = if matches!(admit, Admit::QueueFull) {
                        b"PQ"
                    } else {
                        b"SC"
                    };
                    request.note(|l| l.terminate(*code));
                    let (status, retry_after) = (StatusCode::SERVICE_UNAVAILABLE, settings.retry_after);
                    return dropped(&cluster, bucket, status, retry_after, request);
                }
            };
            let backend = grant.backend().clone();
            let e = match attempt(&mut request, grant, &cluster, &settings, debug_bucket.as_deref()).await {
                Ok(response) => return response,
                Err(e) => e,
            };
            let retry = retries < settings.max_retry_count
                && request.body.replayable()
                && e.may_retry(request.idempotent);
            if !retry {
                return failed(&cluster, Some((backend, e)), request);
            }
            retries += 1;
            request.note(AccessRecord::retried);
            TrafficStats::count(&cluster.admission.stats.retries);
            TrafficStats::count(&backend.stats.retries);
            log::debug!("cluster '{}': retrying after {e}", cluster.name);
            tried.push(backend.id);
            last = Some((backend, e));
        }
    }
}

/// `update: shadowed`: refreshes a stale object while it is being served. The request is a
/// bodiless copy of the client's; its response body is read to the end (which stores it) and
/// dropped.
async fn refresh_in_background(req: HttpRequest, plan: Box<CachePlan>, forward: Forward) {
    let request = Request {
        body: ClientBody::new(None, None, forward.settings.client_body_timeout),
        tunnel: None,
        timeouts: forward.timeouts,
        idempotent: true,
        may_blame: true,
        req,
        log: None,
        cache: Some(plan),
        trace: None,
    };
    let response = forward.run(request).await;
    let mut body = std::pin::pin!(response.into_body());
    while let Some(Ok(_)) = std::future::poll_fn(|cx| body.as_mut().poll_next(cx)).await {}
}

/// The cluster's backend timeouts, with those the route sets in their place.
fn timeouts(settings: &ClusterSettings, route: Option<&RouteTimeouts>) -> Timeouts {
    let route = route.copied().unwrap_or_default();
    Timeouts {
        connect: route.connect.unwrap_or(settings.connect_timeout),
        read: route.read.unwrap_or(settings.read_timeout),
        write: route.write.unwrap_or(settings.write_timeout),
    }
}

/// One client request on its way through the pipeline.
struct Request {
    req: HttpRequest,
    body: ClientBody,
    /// The client's side of a tunnel, for a request that asks to upgrade.
    tunnel: Option<ClientBody>,
    timeouts: Timeouts,
    idempotent: bool,
    /// No attempt has counted a failure against a backend yet (passive health counts one per
    /// client request at most).
    may_blame: bool,
    log: Option<Box<AccessRecord>>,
    /// What the cache wants done with the answer.
    cache: Option<Box<CachePlan>>,
    /// The request ID and trace context sent to the backend.
    trace: Option<Box<TraceHeaders>>,
}

impl Request {
    fn new(
        req: HttpRequest,
        payload: web::Payload,
        upgrade: bool,
        settings: &ClusterSettings,
        timeouts: Timeouts,
        trace: Option<Box<TraceHeaders>>,
        log: Option<Box<AccessRecord>>,
    ) -> Request {
        // A tunnel's client side has no pause limit of its own (`upgrades.idle_timeout`).
        let (body, tunnel) = match upgrade {
            true => (
                ClientBody::default(),
                Some(ClientBody::new(Some(payload.into_inner()), None, Duration::ZERO)),
            ),
            false => (client_body(&req, payload, settings), None),
        };
        Request {
            body,
            tunnel,
            timeouts,
            idempotent: is_idempotent(req.method()),
            may_blame: true,
            req,
            log,
            cache: None,
            trace,
        }
    }

    /// Updates the access log record, if the request has one.
    fn note(&mut self, update: impl FnOnce(&mut AccessRecord)) {
        if let Some(log) = self.log.as_deref_mut() {
            update(log);
        }
    }

    /// The stale object instead of a failure, when the cache has one it may serve.
    fn stale_answer(&mut self, cluster: &Arc<ClusterHandle>) -> Option<HttpResponse<RelayBody>> {
        let plan = self.cache.as_ref()?;
        match plan.stale_if_error(&self.req, cluster, self.log.take()) {
            Ok(response) => Some(response),
            Err(log) => {
                self.log = log;
                None
            }
        }
    }
}

/// Forwards the request to the backend of `grant`. A backend failure is counted (passive
/// health) and returned with the capacity already given back, so the caller may retry.
/// Failures that are not the backend's are answered here.
async fn attempt(
    request: &mut Request,
    grant: Grant,
    cluster: &Arc<ClusterHandle>,
    settings: &ClusterSettings,
    debug_bucket: Option<&str>,
) -> Result<HttpResponse<RelayBody>, ProxyError> {
    let backend = grant.backend().clone();
    let started = clock::now_std();
    let notify_abort = settings.on_client_abort == OnClientAbort::Notify;
    let out = Outgoing {
        req: &request.req,
        backend: &backend,
        body: &request.body,
        host: routed_host(&request.req),
        forwarded_for: settings.forwarded_for,
        via: &settings.via,
        idempotent: request.idempotent,
        timeouts: request.timeouts,
        rewrite: request.cache.as_ref().map(|plan| &plan.rewrite),
        trace: request.trace.as_deref(),
        notify_abort,
        tunnel: request.tunnel.as_ref(),
    };
    match upstream::send(&out).await {
        Ok(upstream) => {
            let connect = upstream.connect_time;
            request.note(|l| l.responded(connect, clock::elapsed_std(started)));
            if let Some(plan) = request.cache.as_deref() {
                let headers = || response::header_map(&upstream);
                let answer =
                    plan.answer_from_store(upstream.status, headers, &request.req, cluster, &mut request.log);
                if let Some(answer) = answer {
                    // The backend's answer is not relayed: its connection is closed, its
                    // capacity given back.
                    backend.stats.record_latency(clock::elapsed_std(started));
                    backend.stats.responses.record(upstream.status);
                    drop((upstream, grant));
                    return Ok(answer);
                }
            }
            let timing = Timing {
                started,
                read_timeout: request.timeouts.read,
                may_blame: request.may_blame,
                notify_abort,
            };
            let length = upstream.content_length;
            let log = request.log.take();
            // A response the cache may store is read through its header map; otherwise none
            // is built for the backend's head.
            let may_store = request
                .cache
                .as_ref()
                .is_some_and(|plan| !plan.never_stores(&upstream));
            let ready_made_head = !may_store;
            let relayed = response::relay(
                &request.req,
                upstream,
                grant,
                cluster,
                timing,
                log,
                ready_made_head,
            );
            let mut response = match relayed {
                Relayed::Ready(response) => response,
                Relayed::File(file) => file.await,
            };
            if let Some(plan) = request.cache.take() {
                response = plan.fill(response, &request.req, length, may_store);
            }
            Ok(response::with_debug_headers(response, debug_bucket, &backend))
        }
        Err(e) if e.is_backend_failure() => {
            backend.stats.record_latency(clock::elapsed_std(started));
            log::warn!("cluster '{}': backend '{}': {e}", cluster.name, backend.name);
            blame::backend_failed(grant, cluster, &e, request.may_blame);
            request.may_blame = false;
            Err(e)
        }
        Err(e @ ProxyError::Stale) => Err(e),
        Err(e) => {
            drop(grant);
            if matches!(e, ProxyError::LocalResource(_)) {
                if let Some(stale) = request.stale_answer(cluster) {
                    return Ok(stale);
                }
            }
            let mut retry_after = 0;
            if let ProxyError::LocalResource(cause) = &e {
                log::error!(
                    "cluster '{}': cannot connect to backend '{}': {cause}; this host is out of \
                     resources (raise the file descriptor limit or lower max_connections)",
                    cluster.name,
                    backend.name
                );
                retry_after = settings.retry_after;
            }
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
            request.note(|l| l.failed(&e));
            record_status(cluster, None, status.as_u16());
            Ok(generated(
                status,
                e.client_message(),
                retry_after,
                request.log.take(),
            ))
        }
    }
}

/// The answer when the last attempt failed: 502, or 504 for a timeout.
fn failed(
    cluster: &Arc<ClusterHandle>,
    last: Option<(Arc<Backend>, ProxyError)>,
    mut request: Request,
) -> HttpResponse<RelayBody> {
    if let Some(stale) = request.stale_answer(cluster) {
        return stale;
    }
    let mut log = request.log;
    let Some((backend, e)) = last else {
        if let Some(l) = log.as_mut() {
            l.terminate(*b"SH");
        }
        return generated(StatusCode::BAD_GATEWAY, "backend failed\n", 0, log);
    };
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_GATEWAY);
    if let Some(l) = log.as_mut() {
        l.set_backend(&backend.name);
        l.failed(&e);
    }
    record_status(cluster, Some(&backend), status.as_u16());
    generated(status, "backend failed\n", 0, log)
}

/// Client-side routing: the request names its backend. One attempt, no queue, never another
/// backend; a disabled but healthy backend is allowed (canary).
async fn serve_pinned(
    mut request: Request,
    cluster: &Arc<ClusterHandle>,
    settings: &ClusterSettings,
    name: &str,
) -> HttpResponse<RelayBody> {
    let Some(backend) = cluster.backend(name) else {
        return generated(
            StatusCode::BAD_REQUEST,
            "unknown backend requested\n",
            0,
            refused(request.log.take()),
        );
    };
    let grant = match cluster.admission.acquire_pinned(backend.id, true) {
        Ok(grant) => {
            request.note(|l| l.admitted(Duration::ZERO));
            grant
        }
        Err(_) => {
            request.note(|l| l.terminate(*b"SC"));
            record_status(cluster, None, 503);
            let text = "the requested backend is unavailable or full\n";
            return generated(
                StatusCode::SERVICE_UNAVAILABLE,
                text,
                settings.retry_after,
                request.log,
            );
        }
    };
    let debug = settings.debug_headers.then_some("root");
    match attempt(&mut request, grant, cluster, settings, debug).await {
        Ok(response) => response,
        Err(e) => failed(cluster, Some((backend, e)), request),
    }
}

/// The record of a request director refuses itself (`PR`: a bad path, no route, an unknown
/// pinned backend).
fn refused(mut log: Option<Box<AccessRecord>>) -> Option<Box<AccessRecord>> {
    if let Some(l) = log.as_mut() {
        l.terminate(*b"PR");
    }
    log
}

/// The backend name a request asks for, by cookie or header.
fn pinned_backend(req: &HttpRequest, routing: &ClientRouting) -> Option<String> {
    match routing {
        ClientRouting::Header(name) => req.headers().get(name.as_str())?.to_str().ok().map(str::to_owned),
        ClientRouting::Cookie(name) => req.headers().get_all(ax::COOKIE).find_map(|v| {
            v.to_str().ok()?.split(';').find_map(|pair| {
                let (k, v) = pair.trim().split_once('=')?;
                (k == name).then(|| v.trim_matches('"').to_owned())
            })
        }),
    }
}

fn client_body(req: &HttpRequest, payload: web::Payload, settings: &ClusterSettings) -> ClientBody {
    let headers = req.headers();
    let length = headers
        .get(ax::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let chunked = headers.contains_key(ax::TRANSFER_ENCODING);
    let payload = payload.into_inner();
    // HTTP/2 frames a body itself: a request has one unless its head ended the stream, with
    // or without a `Content-Length`.
    let framed = req.version() == actix_web::http::Version::HTTP_2 && !matches!(payload, Payload::None);
    if length == Some(0) || (length.is_none() && !chunked && !framed) {
        return ClientBody::new(None, None, settings.client_body_timeout);
    }
    ClientBody::new(Some(payload), length, settings.client_body_timeout)
}

/// The host that routes the request: an absolute-form target's authority wins over `Host`
/// (RFC 9112 §3.2.2).
fn routed_host(req: &HttpRequest) -> Option<&str> {
    match req.uri().authority() {
        Some(authority) => Some(authority.as_str()),
        None => req.headers().get(ax::HOST).and_then(|h| h.to_str().ok()),
    }
}

/// Methods a retry can't harm (RFC 9110 §9.2.2).
fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// A generated 503/504 with `Retry-After`, counted as dropped.
fn dropped(
    cluster: &Arc<ClusterHandle>,
    bucket: BucketKey,
    status: StatusCode,
    retry_after: u32,
    mut request: Request,
) -> HttpResponse<RelayBody> {
    if let Some(stale) = request.stale_answer(cluster) {
        return stale;
    }
    let log = request.log;
    record_dropped(cluster);
    cluster.admission.record_dropped(bucket);
    record_status(cluster, None, status.as_u16());
    let text = if status == StatusCode::GATEWAY_TIMEOUT {
        "no backend became available in time\n"
    } else {
        "no backend available\n"
    };
    generated(status, text, retry_after, log)
}

/// A generated answer with a computed text.
fn generated_owned(
    status: StatusCode,
    text: String,
    log: Option<Box<AccessRecord>>,
) -> HttpResponse<RelayBody> {
    plain_text(status, 0, log, |log| RelayBody::text(text, log))
}

fn generated(
    status: StatusCode,
    text: &'static str,
    retry_after: u32,
    log: Option<Box<AccessRecord>>,
) -> HttpResponse<RelayBody> {
    plain_text(status, retry_after, log, |log| RelayBody::fixed(text, log))
}

/// A text/plain answer of director's own, with `Retry-After` when it is not 0.
fn plain_text(
    status: StatusCode,
    retry_after: u32,
    mut log: Option<Box<AccessRecord>>,
    body: impl FnOnce(Option<Box<AccessRecord>>) -> RelayBody,
) -> HttpResponse<RelayBody> {
    if let Some(l) = log.as_mut() {
        l.set_status(status.as_u16());
    }
    let mut res = HttpResponse::with_body(status, body(log));
    let headers = res.headers_mut();
    headers.insert(
        ax::CONTENT_TYPE,
        ax::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if retry_after > 0 {
        headers.insert(ax::RETRY_AFTER, ax::HeaderValue::from(retry_after));
    }
    headers.insert(ax::VIA, ax::HeaderValue::from_static(rules::VIA));
    res
}

/// The request as bucket rules see it: the routed host and the normalised path.
struct ActixRequest<'a> {
    req: &'a HttpRequest,
    host: Option<&'a str>,
    path: &'a str,
}

impl RequestView for ActixRequest<'_> {
    fn host(&self) -> Option<&str> {
        self.host
    }
    fn path(&self) -> &str {
        self.path
    }
    fn method(&self) -> &str {
        self.req.method().as_str()
    }
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.req.headers().get(name).map(|v| v.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    /// actix-web moves the handler's future into a box of its own for every request, cache
    /// hits included; the forwarding state machine (several KiB) is boxed separately so that
    /// this copy stays small. A regression here costs every hit a large memcpy.
    #[test]
    fn the_handler_future_stays_small() {
        fn future_size<A, B, C, F: std::future::Future>(_: fn(A, B, C) -> F) -> usize {
            std::mem::size_of::<F>()
        }
        let size = future_size(super::handle);
        assert!(size <= 1024, "the handler's future is {size} bytes");
    }
}
