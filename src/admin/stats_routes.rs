//! The read-only stats endpoints of the admin listener: Prometheus `/metrics`, the live event
//! stream and history, and the answers of HAProxy's stats and monitor URIs, which
//! `haproxy_compat` serves on the listeners the configuration names (control plane).
//!
//! The renderers are pure (`haproxy`, `haproxy_html`, `metrics`); this module gathers their input: the cluster
//! states from the actors, the request rates of the latest live sample, and the backends'
//! latency histograms.

use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::http::header::{self, ContentType};
use actix_web::{web, HttpResponse};

use super::metrics::{Extras, LatencyHistogram, Rate, Scope};
use super::{events, haproxy, haproxy_html, metrics, AdminState};
use crate::cluster::cluster_state::ClusterState;
use crate::config::MonitorFail;

/// Registers the stats routes. HAProxy's stats and monitor URIs are not routes: the
/// `haproxy_compat` front answers them before routing (see [`super::haproxy_compat`]).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(prometheus))
        .route("/api/v1/events", web::get().to(events::events))
        .route("/api/v1/history", web::get().to(events::history));
}

/// HAProxy's stats answer: the CSV (`text/plain`, as HAProxy sends it) or the HTML page
/// (`text/html`), both `Cache-Control: no-cache` like HAProxy's.
pub async fn stats_response(data: &AdminState, csv: bool) -> HttpResponse {
    let (states, extras) = gather(data).await;
    let (content_type, body) = match csv {
        true => ("text/plain", haproxy::csv(&states, &extras)),
        false => ("text/html", haproxy_html::render(&states, &extras)),
    };
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::CONTENT_TYPE, content_type))
        .body(body)
}

/// HAProxy's `monitor-uri`: 200 while director runs; with `monitor_fail: no_backend`, 503 when
/// no cluster has a backend in service (a director without clusters passes).
pub fn monitor_response(data: &AdminState, fail: MonitorFail) -> HttpResponse {
    let failing = match fail {
        MonitorFail::Never => false,
        MonitorFail::NoBackend => {
            let clusters = data.clusters();
            !clusters.is_empty() && clusters.iter().all(|c| c.admission.capacity().0 == Some(0))
        }
    };
    let (mut reply, body) = match failing {
        false => (HttpResponse::Ok(), "ok\n"),
        true => (HttpResponse::ServiceUnavailable(), "no backend in service\n"),
    };
    reply
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .content_type(ContentType::plaintext())
        .body(body)
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
        let live = &data.live;
        let rate = |scope: Scope, rps: f32| {
            let peak = live.peak(&scope);
            (scope, rate(rps, peak))
        };
        let mut total = 0.0;
        for c in &sample.clusters {
            total += c.rps;
            extras.rates.extend([rate(Scope::cluster(&c.name), c.rps)]);
            for b in &c.backends {
                extras
                    .rates
                    .extend([rate(Scope::backend(&c.name, &b.name), b.rps)]);
            }
        }
        extras.rates.extend([rate(Scope::Director, total)]);
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

/// A rate and its peak since start; the peak is at least the current rate (the current
/// sample may not have been folded into the peaks yet).
fn rate(rps: f32, peak: f32) -> Rate {
    Rate {
        current: f64::from(rps),
        max: f64::from(rps.max(peak)),
    }
}
