//! The request pipeline: route, admit (token + slot, or wait), forward with retries, relay.
//!
//! Hot path. Everything happens on the worker that accepted the request; the only
//! cross-thread event is a queued request being woken by whoever freed capacity.

use std::sync::Arc;
use std::time::Instant;

use actix_web::http::{header as ax, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};

use super::access_log::AccessRecord;
use super::error::ProxyError;
use super::fcgi_forward;
use super::h1_client;
use super::http_forward::{self, Timeouts};
use super::relay_body::{record_dropped, record_status, RelayBody, Timing};
use super::request_body::ClientBody;
use super::response::{self, Upstream};
use super::ProxyState;
use crate::cluster::buckets::BucketKey;
use crate::cluster::classify::RequestView;
use crate::cluster::topology::ClusterSettings;
use crate::cluster::{Admit, ClusterHandle, Grant};
use crate::config::{ClientRouting, Protocol};
use crate::proto::http_headers as rules;
use crate::stats::TrafficStats;

/// Serves one client request.
pub async fn handle(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<ProxyState>,
) -> HttpResponse<RelayBody> {
    let host = req.headers().get(ax::HOST).and_then(|h| h.to_str().ok());
    let cluster = state
        .topology
        .load()
        .as_ref()
        .and_then(|t| t.route(host, req.path()).cloned());
    let Some(cluster) = cluster else {
        let log = state.access_log.as_ref().map(|l| l.record(&req, "-"));
        return generated(StatusCode::NOT_FOUND, "no route for this request\n", 0, log);
    };
    let log = state.access_log.as_ref().map(|l| l.record(&req, &cluster.name));
    let settings = cluster.settings.load_full();
    let mut request = Request {
        body: client_body(&req, payload),
        timeouts: Timeouts {
            connect: settings.connect_timeout,
            read: settings.read_timeout,
            write: settings.write_timeout,
        },
        req,
        log,
    };
    if let Some(routing) = &settings.client_routing {
        if let Some(name) = pinned_backend(&request.req, routing) {
            return serve_pinned(request, &cluster, &settings, &name).await;
        }
    }
    let (bucket, debug_bucket) = {
        let classifier = cluster.classifier.load();
        let (key, name) = classifier.classify(&ActixRequest(&request.req));
        (key, settings.debug_headers.then(|| name.to_owned()))
    };
    let mut retries = 0;
    loop {
        let grant = match cluster.admission.acquire(bucket) {
            Admit::Granted(grant) => grant,
            Admit::Queued(ticket) => match ticket.wait(settings.queue_timeout).await {
                Some(grant) => grant,
                None => {
                    log::info!(
                        "cluster '{}': queued request timed out: {} {}",
                        cluster.name,
                        request.req.method(),
                        request.req.path()
                    );
                    let (status, retry_after) = (StatusCode::GATEWAY_TIMEOUT, settings.retry_after);
                    return dropped(&cluster, bucket, status, retry_after, request.log);
                }
            },
            Admit::Unavailable | Admit::QueueFull => {
                let (status, retry_after) = (StatusCode::SERVICE_UNAVAILABLE, settings.retry_after);
                return dropped(&cluster, bucket, status, retry_after, request.log);
            }
        };
        let backend = grant.backend().clone();
        match attempt(&mut request, grant, &cluster, debug_bucket.as_deref()).await {
            Ok(response) => return response,
            Err(e) if retries < settings.max_retry_count && request.body.replayable() => {
                retries += 1;
                TrafficStats::count(&cluster.admission.stats.retries);
                TrafficStats::count(&backend.stats.retries);
                log::debug!("cluster '{}': retrying after {e}", cluster.name);
            }
            Err(e) => return failed(&cluster, &backend, &e, request.log),
        }
    }
}

/// One client request on its way through the pipeline.
struct Request {
    req: HttpRequest,
    body: ClientBody,
    timeouts: Timeouts,
    log: Option<Box<AccessRecord>>,
}

/// Forwards the request to the backend of `grant`. A backend failure is reported (passive
/// health) and returned with the capacity already given back, so the caller may retry.
async fn attempt(
    request: &mut Request,
    grant: Grant,
    cluster: &Arc<ClusterHandle>,
    debug_bucket: Option<&str>,
) -> Result<HttpResponse<RelayBody>, ProxyError> {
    let backend = grant.backend().clone();
    let started = Instant::now();
    let (req, body) = (&request.req, &request.body);
    let sent = if backend.url.protocol == Protocol::FastCgi {
        fcgi_forward::send(&backend, req, body, request.timeouts)
            .await
            .map(Upstream::FastCgi)
    } else if body.is_empty() {
        h1_client::send(&backend, req, request.timeouts)
            .await
            .map(Upstream::Raw)
    } else {
        let make_request = || {
            http_forward::upstream_request(req, body.for_backend(&backend))
                .map_err(|e| ProxyError::ClientBody(e.to_string()))
        };
        let replayable = || body.replayable();
        http_forward::send(&backend, make_request, replayable, request.timeouts)
            .await
            .map(Upstream::Hyper)
    };
    match sent {
        Ok(upstream) => {
            let timing = Timing {
                started,
                read_timeout: request.timeouts.read,
            };
            let response = response::relay(req, upstream, grant, cluster, timing, request.log.take()).await;
            Ok(response::with_debug_headers(response, debug_bucket, &backend))
        }
        Err(e) if !e.is_backend_failure() => {
            drop(grant);
            Ok(generated(
                StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST),
                e.client_message(),
                0,
                request.log.take(),
            ))
        }
        Err(e) => {
            backend.stats.record_latency(started.elapsed());
            log::warn!("cluster '{}': backend '{}': {e}", cluster.name, backend.name);
            backend.report_failure(e.to_string());
            TrafficStats::count(&cluster.admission.stats.failures);
            grant.fail();
            Err(e)
        }
    }
}

/// The answer when the last attempt failed: 502, or 504 for a timeout.
fn failed(
    cluster: &ClusterHandle,
    backend: &crate::cluster::Backend,
    e: &ProxyError,
    mut log: Option<Box<AccessRecord>>,
) -> HttpResponse<RelayBody> {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_GATEWAY);
    if let Some(l) = log.as_mut() {
        l.set_backend(&backend.name);
    }
    record_status(cluster, Some(backend), status.as_u16());
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
            request.log,
        );
    };
    let grant = match cluster.admission.acquire_pinned(backend.id, true) {
        Ok(grant) => grant,
        Err(_) => {
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
    match attempt(&mut request, grant, cluster, debug).await {
        Ok(response) => response,
        Err(e) => failed(cluster, &backend, &e, request.log),
    }
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

fn client_body(req: &HttpRequest, payload: web::Payload) -> ClientBody {
    let headers = req.headers();
    let length = headers
        .get(ax::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let chunked = headers.contains_key(ax::TRANSFER_ENCODING);
    if length.unwrap_or(0) == 0 && !chunked {
        return ClientBody::new(None, None);
    }
    ClientBody::new(Some(payload.into_inner()), length)
}

/// A generated 503/504 with `Retry-After`, counted as dropped.
fn dropped(
    cluster: &ClusterHandle,
    bucket: BucketKey,
    status: StatusCode,
    retry_after: u32,
    log: Option<Box<AccessRecord>>,
) -> HttpResponse<RelayBody> {
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

fn generated(
    status: StatusCode,
    text: &'static str,
    retry_after: u32,
    mut log: Option<Box<AccessRecord>>,
) -> HttpResponse<RelayBody> {
    if let Some(l) = log.as_mut() {
        l.set_status(status.as_u16());
    }
    let mut res = HttpResponse::with_body(status, RelayBody::fixed(text, log));
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

/// The request as bucket rules see it.
struct ActixRequest<'a>(&'a HttpRequest);

impl RequestView for ActixRequest<'_> {
    fn host(&self) -> Option<&str> {
        self.0.headers().get(ax::HOST).and_then(|h| h.to_str().ok())
    }
    fn path(&self) -> &str {
        self.0.path()
    }
    fn method(&self) -> &str {
        self.0.method().as_str()
    }
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.0.headers().get(name).map(|v| v.as_bytes())
    }
}
