//! The request pipeline: route, admit (token + slot, or wait), forward with retries, relay.
//!
//! Hot path. Everything happens on the worker that accepted the request; the only
//! cross-thread event is a queued request being woken by whoever freed capacity.

use actix_web::http::{header as ax, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};

use super::access_log::AccessRecord;
use super::error::ProxyError;
use super::h1_client;
use super::http_forward::{self, Timeouts};
use super::relay_body::{record_dropped, record_status, RelayBody};
use super::request_body::ClientBody;
use super::response::{self, Upstream};
use super::ProxyState;
use crate::cluster::buckets::BucketKey;
use crate::cluster::classify::RequestView;
use crate::cluster::{Admit, ClusterHandle};
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
    let mut log = state.access_log.as_ref().map(|l| l.record(&req, &cluster.name));
    let body = client_body(&req, payload);
    let settings = cluster.settings.load_full();
    let (bucket, debug) = {
        let classifier = cluster.classifier.load();
        let (key, name) = classifier.classify(&ActixRequest(&req));
        (
            key,
            settings.debug_headers.then(|| Debug {
                bucket: name.to_owned(),
            }),
        )
    };
    let timeouts = Timeouts {
        connect: settings.connect_timeout,
        read: settings.read_timeout,
        write: settings.write_timeout,
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
                        req.method(),
                        req.path()
                    );
                    return dropped(
                        &cluster,
                        bucket,
                        StatusCode::GATEWAY_TIMEOUT,
                        settings.retry_after,
                        log,
                    );
                }
            },
            Admit::Unavailable | Admit::QueueFull => {
                return dropped(
                    &cluster,
                    bucket,
                    StatusCode::SERVICE_UNAVAILABLE,
                    settings.retry_after,
                    log,
                );
            }
        };
        let backend = grant.backend().clone();
        let sent = if body.is_empty() {
            h1_client::send(&backend, &req, timeouts).await.map(Upstream::Raw)
        } else {
            let make_request = || {
                http_forward::upstream_request(&req, body.for_backend(&backend))
                    .map_err(|e| ProxyError::ClientBody(e.to_string()))
            };
            http_forward::send(&backend, make_request, || body.replayable(), timeouts)
                .await
                .map(Upstream::Hyper)
        };
        match sent {
            Ok(upstream) => {
                let response = response::relay(&req, upstream, grant, &cluster, settings.read_timeout, log);
                return response::with_debug_headers(
                    response,
                    debug.as_ref().map(|d| d.bucket.as_str()),
                    &backend,
                );
            }
            Err(e) => {
                if !e.is_backend_failure() {
                    drop(grant);
                    return generated(StatusCode::BAD_REQUEST, "bad request body\n", 0, log);
                }
                log::warn!("cluster '{}': backend '{}': {e}", cluster.name, backend.name);
                backend.report_failure(e.to_string());
                grant.fail();
                if retries < settings.max_retry_count && body.replayable() {
                    retries += 1;
                    TrafficStats::count(&cluster.admission.stats.retries);
                    TrafficStats::count(&backend.stats.retries);
                    continue;
                }
                let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_GATEWAY);
                if let Some(l) = log.as_mut() {
                    l.set_backend(&backend.name);
                }
                record_status(&cluster, Some(&backend), status.as_u16());
                return generated(status, "backend failed\n", 0, log);
            }
        }
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

/// Debug response headers to add, when the cluster asks for them.
struct Debug {
    bucket: String,
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
