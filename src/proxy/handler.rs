//! The request pipeline: route, admit (token + slot, or wait), forward with retries, relay.
//!
//! Hot path. Everything happens on the worker that accepted the request; the only
//! cross-thread event is a queued request being woken by whoever freed capacity.

use std::sync::Arc;

use actix_web::body::BodySize;
use actix_web::http::{header as ax, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};

use super::access_log::AccessRecord;
use super::error::ProxyError;
use super::http_forward::{self, Timeouts};
use super::relay_body::{record_dropped, record_status, RelayBody};
use super::request_body::ClientBody;
use super::ProxyState;
use crate::cluster::buckets::ROOT;
use crate::cluster::{Admit, ClusterHandle, Grant};
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
    let timeouts = Timeouts {
        connect: settings.connect_timeout,
        read: settings.read_timeout,
        write: settings.write_timeout,
    };
    let mut retries = 0;
    loop {
        let grant = match cluster.admission.acquire(ROOT) {
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
                    return dropped(&cluster, StatusCode::GATEWAY_TIMEOUT, settings.retry_after, log);
                }
            },
            Admit::Unavailable | Admit::QueueFull => {
                return dropped(
                    &cluster,
                    StatusCode::SERVICE_UNAVAILABLE,
                    settings.retry_after,
                    log,
                );
            }
        };
        let backend = grant.backend().clone();
        let make_request = || {
            http_forward::upstream_request(&req, body.for_backend(&backend))
                .map_err(|e| ProxyError::ClientBody(e.to_string()))
        };
        match http_forward::send(&backend, make_request, || body.replayable(), timeouts).await {
            Ok(upstream) => return relay(&req, upstream, grant, &cluster, settings.read_timeout, log),
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

/// Turns the backend's response head into the client's, body streamed through.
fn relay(
    req: &HttpRequest,
    upstream: http_forward::Upstream,
    grant: Grant,
    cluster: &Arc<ClusterHandle>,
    read_timeout: std::time::Duration,
    mut log: Option<Box<AccessRecord>>,
) -> HttpResponse<RelayBody> {
    let (head, incoming) = upstream.response.into_parts();
    let status = head.status.as_u16();
    let mut builder = HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY));
    let connection: Vec<&[u8]> = head
        .headers
        .get_all(http::header::CONNECTION)
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    for (name, value) in head.headers.iter() {
        let n = name.as_str();
        if rules::is_hop_by_hop(n)
            || n == "via"
            || (!connection.is_empty() && rules::listed_in_connection(n, connection.iter().copied()))
        {
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            ax::HeaderName::from_bytes(n.as_bytes()),
            ax::HeaderValue::from_bytes(value.as_bytes()),
        ) {
            builder.append_header((n, v));
        }
    }
    let via = rules::via(head.headers.get(http::header::VIA).map(|v| v.as_bytes()));
    if let Ok(v) = ax::HeaderValue::from_bytes(&via) {
        builder.insert_header((ax::VIA, v));
    }
    let length = head
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let is_head = req.method() == actix_web::http::Method::HEAD;
    let no_body = rules::response_has_no_body(is_head, status);
    let size = match length {
        // HEAD keeps the length the backend announced; actix writes no body for HEAD.
        Some(n) if is_head || !no_body => BodySize::Sized(n),
        _ if no_body => BodySize::None,
        _ => BodySize::Stream,
    };
    let backend = grant.backend().clone();
    record_status(cluster, Some(&backend), status);
    if let Some(l) = log.as_mut() {
        l.set_backend(&backend.name);
        l.set_status(status);
    }
    let body = RelayBody::upstream(
        incoming,
        size,
        no_body,
        grant,
        upstream.connection,
        read_timeout,
        cluster.clone(),
        log,
    );
    builder
        .message_body(body)
        .unwrap_or_else(|_| HttpResponse::with_body(StatusCode::BAD_GATEWAY, RelayBody::fixed("", None)))
}

/// A generated 503/504 with `Retry-After`, counted as dropped.
fn dropped(
    cluster: &ClusterHandle,
    status: StatusCode,
    retry_after: u32,
    log: Option<Box<AccessRecord>>,
) -> HttpResponse<RelayBody> {
    record_dropped(cluster);
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
