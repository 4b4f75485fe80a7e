//! The read-only stats endpoints of the admin listener: HAProxy's CSV and HTML stats and its
//! monitor URI, Prometheus `/metrics`, and the live event stream and history (control plane).
//!
//! The renderers are pure (`haproxy`, `haproxy_html`, `metrics`); this module gathers their input: the cluster
//! states from the actors, the request rates of the latest live sample, and the backends'
//! latency histograms.

use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::http::header::ContentType;
use actix_web::{web, HttpRequest, HttpResponse};

use super::error::ApiError;
use super::metrics::{Extras, LatencyHistogram, Rate, Scope};
use super::{events, haproxy, haproxy_html, metrics, AdminState};
use crate::cluster::cluster_state::ClusterState;

/// Registers the stats routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/haproxy", web::get().to(haproxy_stats))
        .route("/haproxy/monitor", web::get().to(monitor))
        .route("/metrics", web::get().to(prometheus))
        .route("/api/v1/events", web::get().to(events::events))
        .route("/api/v1/history", web::get().to(events::history));
}

/// `GET /haproxy?stats;csv` (also `?stats;csv;norefresh`) and `GET /haproxy?stats` (HTML).
async fn haproxy_stats(data: web::Data<AdminState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let query = req.query_string();
    let mut words = query.split(';');
    if words.next() != Some("stats") {
        return Err(ApiError::not_found("use /haproxy?stats or /haproxy?stats;csv"));
    }
    let csv = words.any(|w| w == "csv");
    let (states, extras) = gather(&data).await;
    Ok(if csv {
        HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .body(haproxy::csv(&states, &extras))
    } else {
        HttpResponse::Ok()
            .content_type(ContentType::html())
            .body(haproxy_html::render(&states, &extras))
    })
}

/// HAProxy's `monitor-uri`: 200 while director serves, 503 when no cluster has a backend in
/// service.
async fn monitor(data: web::Data<AdminState>) -> HttpResponse {
    let clusters = data.clusters();
    let serving = clusters.is_empty() || clusters.iter().any(|c| c.admission.capacity().0 != Some(0));
    if serving {
        HttpResponse::Ok()
            .content_type(ContentType::plaintext())
            .body("ok\n")
    } else {
        HttpResponse::ServiceUnavailable()
            .content_type(ContentType::plaintext())
            .body("no backend in service\n")
    }
}

async fn prometheus(data: web::Data<AdminState>) -> HttpResponse {
    let (states, extras) = gather(&data).await;
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(metrics::render(&states, &extras))
}

/// The cluster states and what the renderers need besides.
async fn gather(data: &AdminState) -> (Vec<ClusterState>, Extras) {
    let states = data.cluster_states().await;
    let mut extras = Extras {
        uptime: data.started.elapsed(),
        now_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .ok()
            .map(|d| d.as_secs_f64()),
        ..Extras::default()
    };
    if let Some(sample) = data.live.latest() {
        let mut total = 0.0;
        for c in &sample.clusters {
            total += f64::from(c.rps);
            extras.rates.insert(Scope::cluster(&c.name), rate(c.rps));
            for b in &c.backends {
                extras.rates.insert(Scope::backend(&c.name, &b.name), rate(b.rps));
            }
        }
        extras.rates.insert(Scope::Director, rate(total as f32));
    }
    for cluster in data.clusters() {
        for backend in cluster.backends.load().iter() {
            let snap = backend.stats.latency_snapshot();
            let histogram = LatencyHistogram {
                buckets: snap.cumulative().collect(),
                sum_seconds: snap.sum_seconds(),
                count: snap.count,
            };
            extras
                .latency
                .insert(Scope::backend(&cluster.name, &backend.name), histogram);
        }
    }
    (states, extras)
}

/// A rate without a recorded peak (the peak is the current value).
fn rate(rps: f32) -> Rate {
    let current = f64::from(rps);
    Rate {
        current,
        max: current,
    }
}
