//! What the overview page shows, computed from the cluster states, the config status and the
//! latest live sample: plain structs of display text that the templates print (escaped).
//!
//! Control plane, pure: no actors, no I/O, so the page content is unit-testable. The browser
//! script (`static/overview.js`) formats refreshed values the same way.

use std::time::Duration;

use crate::admin::live::history::{BackendSample, BucketSample, CacheSample, ClusterSample};
use crate::admin::live::Sample;
use crate::cache::CacheSnapshot;
use crate::cluster::backend_status::{role_name, BackendStatus};
use crate::cluster::cluster_state::{BackendState, CacheSettingsView, ClusterState, SettingsView};
use crate::cluster::director_actor::ConfigStatus;
use crate::cluster::health::Health;
use crate::replicas::ReplicationStatus;

/// Shown for a value that does not exist (no requests, no probe yet).
pub const NONE: &str = "–";

/// The status bar: the process and its configuration.
pub struct StatusView {
    pub version: &'static str,
    pub uptime: String,
    pub generation: u64,
    pub config_path: String,
    pub state_file: String,
    pub state_file_error: Option<String>,
    pub reload: ReloadView,
    /// The shared runtime state, when configured: connected, and its one-line summary.
    pub cluster_state: Option<(bool, String)>,
}

/// The last reload's result.
pub struct ReloadView {
    /// `None` before the first reload.
    pub ok: Option<bool>,
    /// `ok (api, 3 s ago)`, `failed (watch, 1 min ago)` or `no reload yet`.
    pub summary: String,
    /// `path: message` per problem.
    pub errors: Vec<String>,
}

/// One balanced cluster.
pub struct ClusterView {
    pub name: String,
    /// The maintenance switch: `false` while every request routed here gets 503.
    pub enabled: bool,
    /// `(label, value)` pairs, in display order.
    pub settings: Vec<(&'static str, String)>,
    pub in_use: u32,
    /// `in use / capacity` as text.
    pub load: String,
    /// For the meter; 0 for unlimited.
    pub capacity: u32,
    pub queued: u64,
    pub rps: String,
    pub buckets: Vec<BucketView>,
    pub backends: Vec<BackendView>,
    /// Removed backends still finishing their requests.
    pub draining: Vec<BackendView>,
    /// The object cache; `None` while it is disabled.
    pub cache: Option<CacheView>,
}

/// A cluster's object cache: its numbers since the cluster started, and its settings.
pub struct CacheView {
    /// Fresh hits / lookups: `80 %`, or `–` before the first lookup.
    pub hit_ratio: String,
    /// The hit ratio of the latest one-second sample, or `–`.
    pub recent_hit_ratio: String,
    pub hits: u64,
    pub lookups: u64,
    pub objects: u64,
    pub bytes: u64,
    pub max_memory: u64,
    /// `1.2 KiB / 256 MiB`.
    pub memory: String,
    /// Stale objects served (for both reasons).
    pub stale: u64,
    /// `(label, value)` pairs, in display order.
    pub settings: Vec<(&'static str, String)>,
}

/// One bucket of a cluster's tree.
pub struct BucketView {
    pub name: String,
    /// 0 for the root.
    pub depth: usize,
    /// `20 % … 40 %` (rate … ceil of the parent).
    pub share: String,
    /// `4 … 8` tokens (assured … ceiling).
    pub tokens: String,
    pub in_use: u32,
    pub queued: u32,
    pub rps: String,
}

/// One backend row.
pub struct BackendView {
    pub name: String,
    pub url: String,
    /// The `discover:` entry that found it: DNS manages it, the dashboard doesn't.
    pub discovered_by: Option<String>,
    pub role: &'static str,
    /// `online` / `offline`.
    pub health: &'static str,
    /// The last probe: `status 200 · 3 s ago`, or how the health was decided.
    pub probe: String,
    /// Why the health last changed, and when.
    pub health_title: String,
    pub enabled: bool,
    pub in_flight: u64,
    /// 0 = unlimited.
    pub capacity: u32,
    /// `in flight / capacity` as text.
    pub load: String,
    pub queued: u64,
    pub requests: u64,
    pub rps: String,
    pub http_5xx: u64,
    pub http_5xx_rate: String,
    pub p50: String,
    pub p99: String,
}

impl StatusView {
    /// The status bar from the config status; `now` is in Unix seconds.
    pub fn new(status: &ConfigStatus, uptime: Duration, now: f64) -> StatusView {
        let path =
            |p: &Option<std::path::PathBuf>| p.as_ref().map_or(NONE.to_owned(), |p| p.display().to_string());
        StatusView {
            version: env!("CARGO_PKG_VERSION"),
            uptime: duration_text(uptime.as_secs()),
            generation: status.generation,
            config_path: path(&status.config_path),
            state_file: path(&status.state_file),
            state_file_error: status.state_file_error.clone(),
            reload: ReloadView::new(status, now),
            cluster_state: None,
        }
    }

    /// Adds the shared runtime state's line.
    pub fn with_replication(mut self, replication: Option<&ReplicationStatus>) -> StatusView {
        self.cluster_state = replication.map(|r| (r.connected, r.summary()));
        self
    }
}

impl ReloadView {
    fn new(status: &ConfigStatus, now: f64) -> ReloadView {
        let Some(reload) = &status.last_reload else {
            return ReloadView {
                ok: None,
                summary: "no reload yet".to_owned(),
                errors: Vec::new(),
            };
        };
        let word = if reload.ok { "ok" } else { "failed" };
        ReloadView {
            ok: Some(reload.ok),
            summary: format!("{word} ({}, {})", reload.trigger, ago(reload.at, now)),
            errors: reload
                .errors
                .iter()
                .map(|e| match e.path.as_str() {
                    "" => e.message.clone(),
                    path => format!("{path}: {}", e.message),
                })
                .collect(),
        }
    }
}

/// Whether a cluster is the implicit one of a "road warrior" route (named by its URL); those
/// can't be changed through the API and are listed apart.
pub fn is_direct_route(cluster_name: &str) -> bool {
    cluster_name.contains("://")
}

impl ClusterView {
    /// One cluster from its actor's state; `sample` is its latest live sample, if any, and
    /// `now` is in Unix seconds.
    pub fn new(state: &ClusterState, sample: Option<&ClusterSample>, now: f64) -> ClusterView {
        let backend_sample = |name: &str| sample.and_then(|s| s.backends.iter().find(|b| b.name == name));
        let (draining, backends): (Vec<&BackendState>, Vec<&BackendState>) =
            state.backends.iter().partition(|b| b.status.draining);
        let view = |b: &&BackendState| BackendView::new(b, backend_sample(&b.status.name), now);
        ClusterView {
            name: state.name.clone(),
            enabled: state.settings.enabled,
            settings: settings(&state.settings),
            in_use: state.in_use,
            load: load(u64::from(state.in_use), state.capacity.unwrap_or(0)),
            capacity: state.capacity.unwrap_or(0),
            queued: state.stats.queued.current,
            rps: rate(sample.map(|s| s.rps)),
            buckets: buckets(state, sample),
            backends: backends.iter().map(view).collect(),
            draining: draining.iter().map(view).collect(),
            cache: state.cache.enabled.then(|| {
                CacheView::new(
                    &state.cache,
                    &state.settings.cache,
                    sample.and_then(|s| s.cache.as_ref()),
                )
            }),
        }
    }
}

impl CacheView {
    pub fn new(
        stats: &CacheSnapshot,
        settings: &CacheSettingsView,
        sample: Option<&CacheSample>,
    ) -> CacheView {
        CacheView {
            hit_ratio: ratio((stats.lookups > 0).then_some(stats.hit_ratio)),
            recent_hit_ratio: ratio(sample.and_then(|s| s.hit_ratio).map(f64::from)),
            hits: stats.hits,
            lookups: stats.lookups,
            objects: stats.objects,
            bytes: stats.bytes,
            max_memory: stats.max_memory,
            memory: format!("{} / {}", bytes(stats.bytes), bytes(stats.max_memory)),
            stale: stats.stale,
            settings: cache_settings(settings),
        }
    }
}

fn cache_settings(s: &CacheSettingsView) -> Vec<(&'static str, String)> {
    let on_off = |b: bool| if b { "on" } else { "off" }.to_owned();
    let mut key = vec!["path"];
    if s.key_method {
        key.insert(0, "method");
    }
    if s.key_host {
        key.insert(key.len() - 1, "host");
    }
    let query = match s.key_query {
        "ignore" => None,
        mode => Some(format!("query ({mode})")),
    };
    let stale_on_status = match s.stale_on_status.as_slice() {
        [] => NONE.to_owned(),
        codes => codes.iter().map(u16::to_string).collect::<Vec<_>>().join(", "),
    };
    let duration = |ms: u64| {
        if ms == 0 {
            "0 s".to_owned()
        } else {
            millis_text(ms)
        }
    };
    vec![
        ("update", s.update.to_owned()),
        ("default ttl", duration(s.default_ttl_ms)),
        ("max object size", bytes(s.max_object_size)),
        ("lock timeout", duration(s.lock_timeout_ms)),
        ("stale if error", duration(s.stale_if_error_ms)),
        ("stale while revalidate", duration(s.stale_while_revalidate_ms)),
        ("stale on status", stale_on_status),
        ("max variants", s.max_variants.to_string()),
        (
            "key",
            key.into_iter()
                .map(str::to_owned)
                .chain(query)
                .collect::<Vec<_>>()
                .join(" + "),
        ),
        (
            "client no-cache",
            if s.ignore_client_no_cache {
                "ignored"
            } else {
                "honoured"
            }
            .to_owned(),
        ),
        ("PURGE method", on_off(s.purge_method)),
    ]
}

fn settings(s: &SettingsView) -> Vec<(&'static str, String)> {
    let on_off = |b: bool| if b { "on" } else { "off" }.to_owned();
    vec![
        ("scheduler", s.scheduler.to_owned()),
        ("queue limit", s.queue_limit.to_string()),
        ("queue timeout", millis_text(s.queue_timeout_ms)),
        ("retries", s.max_retry_count.to_string()),
        ("health checks", on_off(s.health_checks)),
        ("x_sendfile", on_off(s.x_sendfile)),
        ("retry after", format!("{} s", s.retry_after)),
        ("queue when unavailable", on_off(s.enqueue_on_unavailable)),
        ("sticky offline", on_off(s.sticky_offline)),
        (
            "timeouts (connect/read/write)",
            format!(
                "{} / {} / {}",
                millis_text(s.connect_timeout_ms),
                millis_text(s.read_timeout_ms),
                millis_text(s.write_timeout_ms)
            ),
        ),
    ]
}

/// The bucket tree, parents before their children.
fn buckets(state: &ClusterState, sample: Option<&ClusterSample>) -> Vec<BucketView> {
    // Depth-first from the roots, children in configuration order.
    fn visit(
        state: &ClusterState,
        sample: Option<&ClusterSample>,
        parent: Option<&str>,
        depth: usize,
        out: &mut Vec<BucketView>,
    ) {
        for bucket in state.buckets.iter().filter(|b| b.parent.as_deref() == parent) {
            let bucket_sample: Option<&BucketSample> =
                sample.and_then(|s| s.buckets.iter().find(|b| b.name == bucket.name));
            out.push(BucketView {
                name: bucket.name.clone(),
                depth,
                share: format!("{} … {}", percent(bucket.rate), percent(bucket.ceil)),
                tokens: format!("{} … {}", tokens(bucket.assured), tokens(bucket.ceiling)),
                in_use: bucket.in_use,
                queued: bucket.queued,
                rps: rate(bucket_sample.map(|b| b.rps)),
            });
            if depth < 32 {
                visit(state, sample, Some(&bucket.name), depth + 1, out);
            }
        }
    }
    let mut out = Vec::new();
    visit(state, sample, None, 0, &mut out);
    out
}

impl BackendView {
    fn new(state: &BackendState, sample: Option<&BackendSample>, now: f64) -> BackendView {
        let status = &state.status;
        let stats = &state.stats;
        BackendView {
            name: status.name.clone(),
            url: status.url.clone(),
            discovered_by: state.discovered_by.clone(),
            role: role_name(status.role),
            health: health_word(status.health),
            probe: probe_text(status, now),
            health_title: format!(
                "{} since {}{}",
                health_word(status.health),
                ago(status.health_changed_at, now),
                status
                    .health_reason
                    .as_ref()
                    .map_or(String::new(), |r| format!(" ({r})"))
            ),
            enabled: status.enabled,
            in_flight: stats.in_flight.current,
            capacity: status.capacity,
            load: load(stats.in_flight.current, status.capacity),
            queued: stats.queued.current,
            requests: stats.in_flight.total,
            rps: rate(sample.map(|s| s.rps)),
            http_5xx: stats.responses[4],
            http_5xx_rate: rate(sample.map(|s| s.http_5xx)),
            p50: millis(sample.and_then(|s| s.p50_ms)),
            p99: millis(sample.and_then(|s| s.p99_ms)),
        }
    }
}

fn health_word(health: Health) -> &'static str {
    match health {
        Health::Online => "online",
        Health::Offline => "offline",
    }
}

/// The last probe (`status 200 · 3 s ago`), or `no active checks`.
pub fn probe_text(status: &BackendStatus, now: f64) -> String {
    match &status.last_probe {
        Some(probe) => format!("{} · {}", probe.detail, ago(probe.at, now)),
        None => "no active checks".to_owned(),
    }
}

/// The latest sample of a cluster by name.
pub fn cluster_sample<'a>(sample: Option<&'a Sample>, name: &str) -> Option<&'a ClusterSample> {
    sample?.clusters.iter().find(|c| c.name == name)
}

/// `3 / 8`, or `3 / ∞` for an unlimited capacity (0).
pub fn load(in_use: u64, capacity: u32) -> String {
    match capacity {
        0 => format!("{in_use} / ∞"),
        c => format!("{in_use} / {c}"),
    }
}

/// A per-second rate with one decimal, or `–` without a sample.
pub fn rate(value: Option<f32>) -> String {
    value.map_or(NONE.to_owned(), |v| format!("{v:.1}"))
}

/// A latency: two decimals below 10 ms, one below 100 ms, none above.
pub fn millis(value: Option<f32>) -> String {
    match value {
        None => NONE.to_owned(),
        Some(v) if v >= 100.0 => format!("{v:.0} ms"),
        Some(v) if v >= 10.0 => format!("{v:.1} ms"),
        Some(v) => format!("{v:.2} ms"),
    }
}

/// A ratio in percent with at most one decimal (`80 %`, `66.7 %`), or `–`.
pub fn ratio(value: Option<f64>) -> String {
    value.map_or(NONE.to_owned(), |r| format!("{} %", one_decimal(r * 100.0)))
}

/// A size in bytes: `512 B`, `1.5 KiB`, `256 MiB` (at most one decimal).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{} {}", one_decimal(value), UNITS[unit])
}

/// Rounded half up to one decimal and printed without a trailing `.0`, as the browser's
/// `Math.round(v * 10) / 10` prints.
fn one_decimal(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

fn percent(share: f64) -> String {
    format!("{} %", (share * 100.0).round())
}

fn tokens(count: Option<u32>) -> String {
    count.map_or("∞".to_owned(), |c| c.to_string())
}

/// A configured duration: `250 ms`, `10 s`, `1.5 s`.
pub fn millis_text(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

/// An uptime: `42 s`, `5 min 3 s`, `2 h 10 min`, `3 d 4 h`.
pub fn duration_text(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d} d {h} h")
    } else if h > 0 {
        format!("{h} h {m} min")
    } else if m > 0 {
        format!("{m} min {s} s")
    } else {
        format!("{s} s")
    }
}

/// How long ago `at` (Unix seconds) was: `just now`, `12 s ago`, `3 min ago`, `2 h ago`,
/// `4 d ago`.
pub fn ago(at: f64, now: f64) -> String {
    let secs = (now - at).max(0.0) as u64;
    match secs {
        0 => "just now".to_owned(),
        s if s < 60 => format!("{s} s ago"),
        s if s < 3600 => format!("{} min ago", s / 60),
        s if s < 86_400 => format!("{} h ago", s / 3600),
        s => format!("{} d ago", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_like_the_browser_writes_them() {
        assert_eq!(load(3, 8), "3 / 8");
        assert_eq!(load(3, 0), "3 / ∞");
        assert_eq!(rate(None), NONE);
        assert_eq!(rate(Some(12.345)), "12.3");
        assert_eq!(millis(Some(1.234)), "1.23 ms");
        assert_eq!(millis(Some(12.34)), "12.3 ms");
        assert_eq!(millis(Some(123.4)), "123 ms");
        assert_eq!(millis(None), NONE);
        assert_eq!(percent(0.2), "20 %");
        assert_eq!(tokens(None), "∞");
        assert_eq!(ratio(None), NONE);
        assert_eq!(ratio(Some(0.8)), "80 %");
        assert_eq!(ratio(Some(2.0 / 3.0)), "66.7 %");
        assert_eq!(ratio(Some(0.0)), "0 %");
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(256 << 20), "256 MiB");
        assert_eq!(bytes((3 << 30) + (300 << 20)), "3.3 GiB");
    }

    #[test]
    fn cache_view_reads_the_snapshot_and_settings() {
        let mut config = crate::config::CacheConfig {
            enabled: true,
            stale_on_status: vec![500, 503],
            ..Default::default()
        };
        config.key.query = crate::config::CacheQuery::Sorted;
        let stats = CacheSnapshot {
            enabled: true,
            lookups: 5,
            hits: 4,
            stale: 1,
            objects: 1,
            bytes: 1536,
            max_memory: 256 << 20,
            hit_ratio: 0.8,
            ..CacheSnapshot::default()
        };
        let sample = CacheSample {
            hit_ratio: Some(0.5),
            ..CacheSample::default()
        };
        let view = CacheView::new(&stats, &CacheSettingsView::new(&config), Some(&sample));
        assert_eq!(
            (view.hit_ratio.as_str(), view.recent_hit_ratio.as_str()),
            ("80 %", "50 %")
        );
        assert_eq!(view.memory, "1.5 KiB / 256 MiB");
        let setting = |label: &str| {
            view.settings
                .iter()
                .find(|(l, _)| *l == label)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("no {label}"))
        };
        assert_eq!(setting("update"), "locked");
        assert_eq!(setting("default ttl"), "0 s");
        assert_eq!(setting("stale if error"), "300 s");
        assert_eq!(setting("stale on status"), "500, 503");
        assert_eq!(setting("key"), "host + path + query (sorted)");
        assert_eq!(setting("max object size"), "8 MiB");

        let idle = CacheView::new(&CacheSnapshot::default(), &CacheSettingsView::new(&config), None);
        assert_eq!(
            (idle.hit_ratio.as_str(), idle.recent_hit_ratio.as_str()),
            (NONE, NONE)
        );
    }

    #[test]
    fn durations_and_ages() {
        assert_eq!(millis_text(250), "250 ms");
        assert_eq!(millis_text(10_000), "10 s");
        assert_eq!(millis_text(1500), "1.5 s");
        assert_eq!(duration_text(42), "42 s");
        assert_eq!(duration_text(303), "5 min 3 s");
        assert_eq!(duration_text(7800), "2 h 10 min");
        assert_eq!(duration_text(273_600), "3 d 4 h");
        assert_eq!(ago(100.0, 100.4), "just now");
        assert_eq!(ago(100.0, 112.0), "12 s ago");
        assert_eq!(ago(0.0, 200.0), "3 min ago");
        assert_eq!(ago(0.0, 7200.0), "2 h ago");
        assert_eq!(ago(0.0, 400_000.0), "4 d ago");
        assert_eq!(ago(10.0, 5.0), "just now", "a clock step back is not the future");
    }

    #[test]
    fn direct_routes_are_named_by_their_url() {
        assert!(is_direct_route("http://127.0.0.1:9102"));
        assert!(!is_direct_route("shop"));
    }
}
