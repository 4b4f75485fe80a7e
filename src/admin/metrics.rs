//! Prometheus metrics (`GET /metrics`, text exposition format 0.0.4) and [`Extras`], the inputs
//! every stats renderer needs beyond the cluster snapshots (uptime, clock, request rates,
//! latency histograms), which the stats collector fills.
//!
//! Control plane: pure functions of a snapshot, called by the admin handlers; nothing here
//! touches a request. Families are written whole, one after the other (`# HELP`, `# TYPE`, then
//! every sample), so no family is repeated. Names carry the `director_` prefix; counters end in
//! `_total` (byte counters in `_bytes_total`), gauges carry no suffix. A limit that is unlimited
//! (cluster or backend capacity, bucket shares) has no sample rather than a made-up number.
//! The `director_cache_*` families have samples only for clusters whose cache is enabled, and
//! are left out entirely when no cluster has one.

use std::collections::HashMap;
use std::fmt::Write;
use std::time::Duration;

use crate::cache::CacheSnapshot;
use crate::cluster::admission::BucketState;
use crate::cluster::backend_status::role_name;
use crate::cluster::cluster_state::{BackendState, ClusterState};
use crate::cluster::health::Health;

/// Where a rate or a latency histogram was measured.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Every request the director handled.
    Director,
    /// The requests of one cluster.
    Cluster(String),
    /// The requests handed to one backend of a cluster.
    Backend { cluster: String, backend: String },
}

impl Scope {
    pub fn cluster(cluster: &str) -> Scope {
        Scope::Cluster(cluster.to_owned())
    }

    pub fn backend(cluster: &str, backend: &str) -> Scope {
        Scope::Backend {
            cluster: cluster.to_owned(),
            backend: backend.to_owned(),
        }
    }
}

/// A request rate: requests per second over the last second, and the highest such value seen.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rate {
    pub current: f64,
    pub max: f64,
}

/// Request durations (from the request's arrival until its response finished) as a cumulative
/// histogram, the shape Prometheus expects.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LatencyHistogram {
    /// `(upper bound in seconds, observations at or below it)`, bounds ascending, counts
    /// non-decreasing. The `+Inf` bucket is `count`; an infinite bound here is skipped, so
    /// `HistogramSnapshot::cumulative` output may be used as it is.
    pub buckets: Vec<(f64, u64)>,
    /// Sum of all observations, in seconds.
    pub sum_seconds: f64,
    /// Number of observations.
    pub count: u64,
}

impl LatencyHistogram {
    /// The mean duration in seconds; `None` before the first observation.
    pub fn mean_seconds(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum_seconds / self.count as f64)
    }
}

/// What the renderers need that the cluster snapshots do not carry. Everything defaults to
/// absent: a renderer leaves the matching cells empty (HAProxy CSV) or omits the samples
/// (Prometheus), never inventing a value.
#[derive(Debug, Clone, Default)]
pub struct Extras {
    /// Time since the process started.
    pub uptime: Duration,
    /// The current time in seconds since the Unix epoch, for ages such as HAProxy's `lastchg`
    /// and the running downtime of an offline backend. The renderers never read the clock.
    pub now_unix: Option<f64>,
    /// Request rates by scope.
    pub rates: HashMap<Scope, Rate>,
    /// Request duration histograms by scope (`/metrics` exports the backend ones).
    pub latency: HashMap<Scope, LatencyHistogram>,
}

impl Extras {
    pub fn rate(&self, scope: &Scope) -> Option<Rate> {
        self.rates.get(scope).copied()
    }

    pub fn latency(&self, scope: &Scope) -> Option<&LatencyHistogram> {
        self.latency.get(scope)
    }
}

/// The `code` label values, in the order of `TrafficSnapshot::responses`.
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The duration histogram family of the backends.
const LATENCY_FAMILY: &str = "director_backend_request_duration_seconds";

/// One family of per-subject samples: name, type, help and the value of a subject (`None`: no
/// sample for it).
type Spec<T> = (&'static str, Kind, &'static str, fn(&T) -> Option<f64>);

const fn gauge<T>(name: &'static str, help: &'static str, value: fn(&T) -> Option<f64>) -> Spec<T> {
    (name, Kind::Gauge, help, value)
}

const fn counter<T>(name: &'static str, help: &'static str, value: fn(&T) -> Option<f64>) -> Spec<T> {
    (name, Kind::Counter, help, value)
}

fn count(n: u64) -> Option<f64> {
    Some(n as f64)
}

fn flag(on: bool) -> Option<f64> {
    Some(if on { 1.0 } else { 0.0 })
}

// The family tables keep one family per line (rustfmt would spread each over five).
#[rustfmt::skip]
const DIRECTOR_FAMILIES: [Spec<Extras>; 3] = [
    gauge("director_up", "Whether the director is running (always 1).", |_| Some(1.0)),
    gauge("director_uptime_seconds", "Seconds since the director started.", |e| {
        Some(e.uptime.as_secs_f64())
    }),
    // A process-wide counter the access log keeps itself, not part of any snapshot.
    counter("director_access_log_dropped_total", "Access log lines dropped because the log writer fell behind.",
        |_| count(crate::proxy::access_log::dropped_lines())),
];

#[rustfmt::skip]
const CLUSTER_FAMILIES: [Spec<ClusterState>; 9] = [
    counter("director_cluster_requests_total", "Requests handed to a backend (retries count again).",
        |c| count(c.stats.in_flight.total)),
    gauge("director_cluster_in_flight", "Requests being served by a backend.",
        |c| count(c.stats.in_flight.current)),
    gauge("director_cluster_queued", "Requests waiting for capacity.", |c| count(c.stats.queued.current)),
    gauge("director_cluster_queue_limit", "Requests that may wait at most.",
        |c| count(c.settings.queue_limit as u64)),
    gauge("director_cluster_capacity", "Concurrent requests the backends in service take (none: unlimited).",
        |c| c.capacity.map(f64::from)),
    counter("director_cluster_dropped_total", "Requests answered with a generated 503/504.",
        |c| count(c.stats.dropped)),
    counter("director_cluster_retries_total", "Attempts repeated after a backend failed.",
        |c| count(c.stats.retries)),
    gauge("director_cluster_tunnels", "Upgraded connections (WebSocket and others) open now.",
        |c| count(c.stats.tunnels.current)),
    counter("director_cluster_tunnels_total", "Upgraded connections opened.", |c| count(c.stats.tunnels.total)),
];

/// The `director_backend_info` family (its samples carry `role` and `url` labels too).
const BACKEND_INFO: Spec<BackendState> =
    gauge("director_backend_info", "Role and URL (always 1).", |_| Some(1.0));

#[rustfmt::skip]
const BACKEND_FAMILIES: [Spec<BackendState>; 14] = [
    counter("director_backend_requests_total", "Requests handed to the backend.",
        |b| count(b.stats.in_flight.total)),
    gauge("director_backend_in_flight", "Requests being served.", |b| count(b.stats.in_flight.current)),
    gauge("director_backend_capacity", "Concurrent requests taken (none: unlimited).",
        |b| (b.status.capacity > 0).then_some(f64::from(b.status.capacity))),
    gauge("director_backend_up", "Healthy (1) or offline (0).", |b| flag(b.status.health == Health::Online)),
    gauge("director_backend_enabled", "Administratively enabled (1) or not.", |b| flag(b.status.enabled)),
    gauge("director_backend_draining", "Removed and finishing its requests.", |b| flag(b.status.draining)),
    counter("director_backend_failures_total", "Attempts that failed because of the backend.",
        |b| count(b.stats.failures)),
    counter("director_backend_retries_total", "Attempts repeated after it failed.",
        |b| count(b.stats.retries)),
    counter("director_backend_check_failures_total", "Failed active health probes.",
        |b| count(b.status.checks_failed)),
    counter("director_backend_down_transitions_total", "Transitions from online to offline.",
        |b| count(b.status.times_down)),
    counter("director_backend_request_bytes_total", "Request body bytes sent to the backend.",
        |b| count(b.stats.bytes_in)),
    counter("director_backend_response_bytes_total", "Response body bytes relayed to clients.",
        |b| count(b.stats.bytes_out)),
    gauge("director_backend_tunnels", "Upgraded connections (WebSocket and others) open now.",
        |b| count(b.stats.tunnels.current)),
    counter("director_backend_tunnels_total", "Upgraded connections opened.", |b| count(b.stats.tunnels.total)),
];

#[rustfmt::skip]
const BUCKET_FAMILIES: [Spec<BucketState>; 8] = [
    gauge("director_bucket_in_use", "Tokens held by the bucket and its descendants.",
        |b| Some(f64::from(b.in_use))),
    gauge("director_bucket_borrowed", "Tokens in use beyond the assured share.",
        |b| Some(f64::from(b.borrowed))),
    gauge("director_bucket_queued", "Requests waiting in the queue.", |b| Some(f64::from(b.queued))),
    gauge("director_bucket_assured", "Tokens assured (none: unlimited).", |b| b.assured.map(f64::from)),
    gauge("director_bucket_ceiling", "Tokens usable at most (none: unlimited).",
        |b| b.ceiling.map(f64::from)),
    counter("director_bucket_served_total", "Tokens granted to its requests.", |b| count(b.served)),
    counter("director_bucket_enqueued_total", "Requests that had to wait.", |b| count(b.queued_total)),
    counter("director_bucket_dropped_total", "Requests answered with a generated 503/504.",
        |b| count(b.dropped)),
];

#[rustfmt::skip]
const CACHE_LOOKUP_FAMILIES: [Spec<CacheSnapshot>; 3] = [
    counter("director_cache_lookups_total", "Requests that consulted the object cache.", |c| count(c.lookups)),
    counter("director_cache_hits_total", "Requests served fresh from the cache, without a backend.",
        |c| count(c.hits)),
    counter("director_cache_misses_total", "Lookups without a usable object: forwarded.", |c| count(c.misses)),
];

/// The family of stale answers, by `reason`.
const CACHE_STALE: &str = "director_cache_stale_total";

#[rustfmt::skip]
const CACHE_FAMILIES: [Spec<CacheSnapshot>; 10] = [
    counter("director_cache_revalidations_total", "Stored objects refreshed by a backend's 304.",
        |c| count(c.revalidations)),
    counter("director_cache_coalesced_total", "Requests that waited for another request's fill of the same key.",
        |c| count(c.coalesced)),
    counter("director_cache_background_refreshes_total", "Background refreshes started (update: shadowed).",
        |c| count(c.background_refreshes)),
    counter("director_cache_stores_total", "Objects stored, new or replacing one.", |c| count(c.stores)),
    counter("director_cache_abandoned_total", "Responses that could not be stored: too large, cut or aborted.",
        |c| count(c.abandoned)),
    counter("director_cache_evictions_total", "Objects pushed out to make room.", |c| count(c.evictions)),
    counter("director_cache_purges_total", "Objects removed by purges (API, PURGE method, unsafe requests).",
        |c| count(c.purges)),
    gauge("director_cache_objects", "Keys stored.", |c| count(c.objects)),
    gauge("director_cache_bytes", "Bytes stored, keys and headers included.", |c| count(c.bytes)),
    gauge("director_cache_max_bytes", "Bytes the cache may hold at most (max_memory).", |c| count(c.max_memory)),
];

/// Renders every metric family for `states` in the Prometheus text format 0.0.4.
pub fn render(states: &[ClusterState], extras: &Extras) -> String {
    let mut out = Exposition::default();
    out.families(
        &DIRECTOR_FAMILIES,
        &[Subject {
            labels: Vec::new(),
            item: extras,
        }],
    );
    let clusters: Vec<Subject<ClusterState>> = states
        .iter()
        .map(|c| Subject {
            labels: vec![("cluster", c.name.as_str())],
            item: c,
        })
        .collect();
    out.families(&CLUSTER_FAMILIES, &clusters);
    out.responses_family(
        "director_cluster_responses_total",
        "Responses by status class.",
        &clusters,
        |c| c.stats.responses,
    );
    let backends = backend_subjects(states);
    let info: Vec<Subject<BackendState>> = backends
        .iter()
        .map(|s| {
            let mut labels = s.labels.clone();
            labels.extend([
                ("role", role_name(s.item.status.role)),
                ("url", s.item.status.url.as_str()),
            ]);
            Subject { labels, item: s.item }
        })
        .collect();
    out.families(&[BACKEND_INFO], &info);
    out.families(&BACKEND_FAMILIES, &backends);
    out.responses_family(
        "director_backend_responses_total",
        "Responses by status class.",
        &backends,
        |b| b.stats.responses,
    );
    let buckets: Vec<Subject<BucketState>> = states
        .iter()
        .flat_map(|c| {
            c.buckets.iter().map(move |b| Subject {
                labels: vec![("cluster", c.name.as_str()), ("bucket", b.name.as_str())],
                item: b,
            })
        })
        .collect();
    out.families(&BUCKET_FAMILIES, &buckets);
    cache_families(&mut out, states);
    latency_family(&mut out, &backends, extras);
    out.text
}

/// The object caches of the clusters that have one enabled; nothing when none has.
fn cache_families(out: &mut Exposition, states: &[ClusterState]) {
    let caches: Vec<Subject<CacheSnapshot>> = states
        .iter()
        .filter(|c| c.cache.enabled)
        .map(|c| Subject {
            labels: vec![("cluster", c.name.as_str())],
            item: &c.cache,
        })
        .collect();
    if caches.is_empty() {
        return;
    }
    out.families(&CACHE_LOOKUP_FAMILIES, &caches);
    out.header(
        CACHE_STALE,
        Kind::Counter,
        "Stale objects served: the backend failed (if_error), or a background refresh runs \
         (while_revalidate).",
    );
    for subject in &caches {
        let cache = subject.item;
        for (reason, n) in [
            ("if_error", cache.stale_if_error),
            ("while_revalidate", cache.stale_while_revalidate),
        ] {
            out.sample(CACHE_STALE, &subject.labels, &[("reason", reason)], n as f64);
        }
    }
    out.families(&CACHE_FAMILIES, &caches);
}

fn backend_subjects(states: &[ClusterState]) -> Vec<Subject<'_, BackendState>> {
    states
        .iter()
        .flat_map(|c| {
            c.backends.iter().map(move |b| Subject {
                labels: vec![("cluster", c.name.as_str()), ("backend", b.status.name.as_str())],
                item: b,
            })
        })
        .collect()
}

/// The backends' duration histograms, when the extras carry any.
fn latency_family(out: &mut Exposition, backends: &[Subject<BackendState>], extras: &Extras) {
    let histograms: Vec<(&[(&str, &str)], &LatencyHistogram)> = backends
        .iter()
        .filter_map(|s| {
            let scope = Scope::backend(s.labels[0].1, s.labels[1].1);
            extras.latency(&scope).map(|h| (s.labels.as_slice(), h))
        })
        .collect();
    if histograms.is_empty() {
        return;
    }
    out.header(
        LATENCY_FAMILY,
        Kind::Histogram,
        "Duration of requests handed to the backend, from arrival until the response finished.",
    );
    let [bucket_name, sum_name, count_name] =
        ["_bucket", "_sum", "_count"].map(|suffix| format!("{LATENCY_FAMILY}{suffix}"));
    for (labels, histogram) in histograms {
        for &(bound, observations) in histogram.buckets.iter().filter(|(bound, _)| bound.is_finite()) {
            out.sample(
                &bucket_name,
                labels,
                &[("le", &format_value(bound))],
                observations as f64,
            );
        }
        out.sample(&bucket_name, labels, &[("le", "+Inf")], histogram.count as f64);
        out.sample(&sum_name, labels, &[], histogram.sum_seconds);
        out.sample(&count_name, labels, &[], histogram.count as f64);
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Something samples are taken of (the director, a cluster, a backend, a bucket) with the
/// labels that name it.
struct Subject<'a, T> {
    labels: Vec<(&'static str, &'a str)>,
    item: &'a T,
}

/// The exposition being written.
#[derive(Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    fn header(&mut self, name: &str, kind: Kind, help: &str) {
        debug_assert!(
            !matches!(kind, Kind::Counter) || name.ends_with("_total"),
            "{name}"
        );
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// One sample; `extra` labels follow the subject's.
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], extra: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        let mut separator = '{';
        for (label, label_value) in labels.iter().chain(extra) {
            self.text.push(separator);
            separator = ',';
            let _ = write!(self.text, "{label}=\"{}\"", escape_label_value(label_value));
        }
        if separator == ',' {
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {}", format_value(value));
    }

    /// Whole families, one after the other: the header, then a sample per subject with a value.
    fn families<T>(&mut self, specs: &[Spec<T>], subjects: &[Subject<T>]) {
        for &(name, kind, help, value) in specs {
            self.header(name, kind, help);
            for subject in subjects {
                if let Some(v) = value(subject.item) {
                    self.sample(name, &subject.labels, &[], v);
                }
            }
        }
    }

    /// A counter family of responses by status class (`code` label).
    fn responses_family<T>(
        &mut self,
        name: &str,
        help: &str,
        subjects: &[Subject<T>],
        responses: impl Fn(&T) -> [u64; 5],
    ) {
        self.header(name, Kind::Counter, help);
        for subject in subjects {
            for (class, count) in STATUS_CLASSES.iter().zip(responses(subject.item)) {
                self.sample(name, &subject.labels, &[("code", class)], count as f64);
            }
        }
    }
}

/// A label value with `\`, `"` and line feeds escaped.
fn escape_label_value(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// A sample value as the text format spells it (`+Inf`, `-Inf`, `NaN`, else the shortest
/// decimal that reads back exactly).
fn format_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::*;
    use crate::admin::haproxy::test_fixtures::{backend, cluster, clusters, extras};
    use crate::config::Role;

    type Labels = Vec<(String, String)>;

    /// A strictly checked exposition: the type of every family and every sample.
    #[derive(Debug, Default)]
    struct Parsed {
        types: HashMap<String, String>,
        samples: Vec<(String, Labels, f64)>,
    }

    impl Parsed {
        /// The value of the sample `name` whose labels are exactly `labels`.
        fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
            let wanted: Labels = labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            self.samples
                .iter()
                .find(|(n, l, _)| n == name && *l == wanted)
                .map(|s| s.2)
        }
    }

    fn valid_name(name: &str, colon: bool) -> bool {
        let mut chars = name.chars();
        let head = |c: char| c.is_ascii_alphabetic() || c == '_' || (colon && c == ':');
        chars.next().is_some_and(head) && chars.all(|c| head(c) || c.is_ascii_digit())
    }

    /// `key="value",...}` (after the `{`) into labels and the rest of the line.
    fn parse_labels(mut text: &str) -> Result<(Labels, &str), String> {
        let mut labels = Labels::new();
        while let Some(rest) = text
            .strip_prefix(',')
            .or(Some(text))
            .filter(|t| !t.starts_with('}'))
        {
            let (key, rest) = rest
                .split_once("=\"")
                .ok_or(format!("label without =\": {rest}"))?;
            let (mut value, mut chars) = (String::new(), rest.char_indices());
            let end = loop {
                match chars.next().ok_or("unterminated label value")? {
                    (i, '"') => break i,
                    (_, '\\') => match chars.next().ok_or("dangling escape")?.1 {
                        'n' => value.push('\n'),
                        c @ ('\\' | '"') => value.push(c),
                        c => return Err(format!("bad escape \\{c}")),
                    },
                    (_, c) => value.push(c),
                }
            };
            if !valid_name(key, false) || labels.iter().any(|(k, _)| k == key) {
                return Err(format!("bad or repeated label name {key}"));
            }
            labels.push((key.to_owned(), value));
            text = &rest[end + 1..];
        }
        Ok((labels, text.strip_prefix('}').ok_or("labels not closed")?))
    }

    /// Parses the text format 0.0.4 as `render` must write it; every rule broken is an error.
    fn parse(text: &str) -> Result<Parsed, String> {
        let (mut parsed, mut helped, mut closed) = (Parsed::default(), HashSet::new(), HashSet::new());
        let mut current: Option<String> = None;
        for line in text.strip_suffix('\n').ok_or("no final line feed")?.split('\n') {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap_or_default();
                if !valid_name(name, true) || !helped.insert(name.to_owned()) {
                    return Err(format!("bad or repeated HELP: {line}"));
                }
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').ok_or("TYPE without type")?;
                let known = ["counter", "gauge", "histogram"].contains(&kind);
                if !known || !helped.contains(name) || parsed.types.contains_key(name) {
                    return Err(format!(
                        "TYPE not right after its HELP, repeated or unknown: {line}"
                    ));
                }
                if kind == "counter" && !name.ends_with("_total") {
                    return Err(format!("counter without _total: {name}"));
                }
                parsed.types.insert(name.to_owned(), kind.to_owned());
                continue;
            }
            let name_end = line.find(['{', ' ']).ok_or(format!("not a sample: {line}"))?;
            let name = &line[..name_end];
            let (labels, rest) = match line[name_end..].strip_prefix('{') {
                Some(inner) => parse_labels(inner)?,
                None => (Labels::new(), &line[name_end..]),
            };
            let value = match rest.strip_prefix(' ').ok_or("no space before the value")? {
                "+Inf" => f64::INFINITY,
                v => v
                    .parse::<f64>()
                    .map_err(|e| format!("bad value in {line}: {e}"))?,
            };
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .filter_map(|suffix| name.strip_suffix(suffix))
                .find(|f| parsed.types.get(*f).is_some_and(|t| t == "histogram"))
                .unwrap_or(name);
            if !valid_name(name, true) || !parsed.types.contains_key(family) || closed.contains(family) {
                return Err(format!(
                    "sample without HELP/TYPE, or of a finished family: {line}"
                ));
            }
            if current.as_deref() != Some(family) {
                closed.extend(current.replace(family.to_owned()));
            }
            parsed.samples.push((name.to_owned(), labels, value));
        }
        check_histograms(&parsed)?;
        Ok(parsed)
    }

    /// Buckets ascend in `le` and count, end with `+Inf`, and `+Inf` equals `_count`.
    fn check_histograms(parsed: &Parsed) -> Result<(), String> {
        let mut series: HashMap<(String, Labels), Vec<(f64, f64)>> = HashMap::new();
        for (name, labels, value) in &parsed.samples {
            if let Some(family) = name
                .strip_suffix("_bucket")
                .filter(|f| parsed.types.contains_key(*f))
            {
                let le = labels
                    .iter()
                    .find(|(k, _)| k == "le")
                    .ok_or("bucket without le")?;
                let le: f64 = if le.1 == "+Inf" {
                    f64::INFINITY
                } else {
                    le.1.parse().map_err(|_| "bad le")?
                };
                let rest: Labels = labels.iter().filter(|(k, _)| k != "le").cloned().collect();
                series
                    .entry((family.to_owned(), rest))
                    .or_default()
                    .push((le, *value));
            }
        }
        for ((family, labels), buckets) in &series {
            let ascending = buckets.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1);
            let last = buckets
                .last()
                .filter(|b| b.0.is_infinite())
                .ok_or("no +Inf bucket")?;
            let count = parsed
                .samples
                .iter()
                .find(|(n, l, _)| *n == format!("{family}_count") && l == labels);
            let sum = parsed
                .samples
                .iter()
                .any(|(n, l, _)| *n == format!("{family}_sum") && l == labels);
            if !ascending || count.map(|c| c.2) != Some(last.1) || !sum {
                return Err(format!("histogram {family} {labels:?} is inconsistent"));
            }
        }
        Ok(())
    }

    #[test]
    fn exposition_passes_the_strict_parser_with_every_family_typed() {
        let parsed = parse(&render(&clusters(), &extras())).expect("valid exposition");
        let expected = [
            ("director_up", "gauge"),
            ("director_uptime_seconds", "gauge"),
            ("director_access_log_dropped_total", "counter"),
            ("director_cluster_requests_total", "counter"),
            ("director_cluster_responses_total", "counter"),
            ("director_cluster_in_flight", "gauge"),
            ("director_cluster_queued", "gauge"),
            ("director_cluster_capacity", "gauge"),
            ("director_cluster_dropped_total", "counter"),
            ("director_cluster_retries_total", "counter"),
            ("director_backend_requests_total", "counter"),
            ("director_backend_responses_total", "counter"),
            ("director_backend_in_flight", "gauge"),
            ("director_backend_capacity", "gauge"),
            ("director_backend_up", "gauge"),
            ("director_backend_enabled", "gauge"),
            ("director_backend_failures_total", "counter"),
            ("director_backend_check_failures_total", "counter"),
            ("director_backend_request_bytes_total", "counter"),
            ("director_backend_response_bytes_total", "counter"),
            ("director_bucket_in_use", "gauge"),
            ("director_bucket_queued", "gauge"),
            (LATENCY_FAMILY, "histogram"),
        ];
        for (name, kind) in expected {
            assert_eq!(parsed.types.get(name).map(String::as_str), Some(kind), "{name}");
        }
        assert!(parsed.types.keys().all(|name| name.starts_with("director_")));
    }

    #[test]
    fn the_access_log_drop_count_is_exported() {
        // Other tests may drop lines meanwhile: the sample lies between two readings.
        let before = crate::proxy::access_log::dropped_lines() as f64;
        let parsed = parse(&render(&clusters(), &extras())).expect("valid exposition");
        let after = crate::proxy::access_log::dropped_lines() as f64;
        let value = parsed.value("director_access_log_dropped_total", &[]);
        assert!(value.is_some_and(|v| (before..=after).contains(&v)), "{value:?}");
    }

    #[test]
    fn samples_carry_the_state() {
        let parsed = parse(&render(&clusters(), &extras())).expect("valid exposition");
        let value = |name: &str, labels: &[(&str, &str)]| parsed.value(name, labels);
        let (shop, api) = (("cluster", "shop"), ("cluster", "api"));
        assert_eq!(value("director_up", &[]), Some(1.0));
        assert_eq!(value("director_uptime_seconds", &[]), Some(3725.0));
        assert_eq!(value("director_cluster_requests_total", &[shop]), Some(130.0));
        assert_eq!(
            value("director_cluster_responses_total", &[shop, ("code", "5xx")]),
            Some(9.0)
        );
        assert_eq!(value("director_cluster_queued", &[shop]), Some(2.0));
        assert_eq!(value("director_cluster_dropped_total", &[shop]), Some(4.0));
        assert_eq!(value("director_cluster_capacity", &[shop]), Some(16.0));
        assert_eq!(
            value("director_cluster_capacity", &[api]),
            None,
            "unlimited has no sample"
        );
        let backend = |cluster: &'static str, name: &'static str| [("cluster", cluster), ("backend", name)];
        let app01 = backend("shop", "app01");
        assert_eq!(value("director_backend_requests_total", &app01), Some(100.0));
        assert_eq!(value("director_backend_in_flight", &app01), Some(3.0));
        assert_eq!(
            value("director_backend_request_bytes_total", &app01),
            Some(1000.0)
        );
        assert_eq!(value("director_backend_up", &backend("shop", "app02")), Some(0.0));
        assert_eq!(
            value("director_backend_check_failures_total", &backend("shop", "app02")),
            Some(4.0)
        );
        assert_eq!(
            value("director_backend_enabled", &backend("shop", "app03")),
            Some(0.0)
        );
        assert_eq!(
            value("director_backend_draining", &backend("shop", "app04")),
            Some(1.0)
        );
        assert_eq!(value("director_backend_capacity", &backend("api", "api01")), None);
        let vip = [shop, ("bucket", "vip")];
        assert_eq!(value("director_bucket_in_use", &vip), Some(1.0));
        assert_eq!(value("director_bucket_assured", &vip), Some(4.0));
        assert_eq!(
            value("director_bucket_queued", &[shop, ("bucket", "main")]),
            Some(2.0)
        );
        assert_eq!(
            value("director_bucket_assured", &[shop, ("bucket", "main")]),
            None
        );
        let info = [
            app01[0],
            app01[1],
            ("role", "active"),
            ("url", "http://127.0.0.1:9000/app01"),
        ];
        assert_eq!(value("director_backend_info", &info), Some(1.0));
    }

    /// The fixtures with `shop`'s cache enabled (`api` has none).
    fn cached_clusters() -> Vec<ClusterState> {
        let mut states = clusters();
        states[0].cache = CacheSnapshot {
            enabled: true,
            lookups: 40,
            hits: 30,
            misses: 8,
            stale: 2,
            stale_if_error: 2,
            stale_while_revalidate: 0,
            revalidations: 3,
            coalesced: 4,
            background_refreshes: 5,
            stores: 9,
            abandoned: 1,
            evictions: 6,
            purges: 7,
            objects: 11,
            bytes: 12_345,
            max_memory: 1 << 20,
            hit_ratio: 0.75,
        };
        states
    }

    #[test]
    fn cache_families_cover_the_clusters_with_a_cache() {
        let text = render(&cached_clusters(), &extras());
        let parsed = parse(&text).expect("valid exposition");
        let shop = [("cluster", "shop")];
        let expected = [
            ("director_cache_lookups_total", "counter", 40.0),
            ("director_cache_hits_total", "counter", 30.0),
            ("director_cache_misses_total", "counter", 8.0),
            ("director_cache_revalidations_total", "counter", 3.0),
            ("director_cache_coalesced_total", "counter", 4.0),
            ("director_cache_background_refreshes_total", "counter", 5.0),
            ("director_cache_stores_total", "counter", 9.0),
            ("director_cache_abandoned_total", "counter", 1.0),
            ("director_cache_evictions_total", "counter", 6.0),
            ("director_cache_purges_total", "counter", 7.0),
            ("director_cache_objects", "gauge", 11.0),
            ("director_cache_bytes", "gauge", 12_345.0),
            ("director_cache_max_bytes", "gauge", 1_048_576.0),
        ];
        for (name, kind, value) in expected {
            assert_eq!(parsed.types.get(name).map(String::as_str), Some(kind), "{name}");
            assert_eq!(parsed.value(name, &shop), Some(value), "{name}");
            assert_eq!(
                parsed.value(name, &[("cluster", "api")]),
                None,
                "{name}: api has no cache"
            );
        }
        assert_eq!(parsed.types.get(CACHE_STALE).map(String::as_str), Some("counter"));
        let stale = |reason: &str| parsed.value(CACHE_STALE, &[shop[0], ("reason", reason)]);
        assert_eq!(
            (stale("if_error"), stale("while_revalidate")),
            (Some(2.0), Some(0.0))
        );
        assert!(
            text.contains("# HELP director_cache_hits_total Requests served fresh from the cache"),
            "{text}"
        );
        let cache_samples = parsed
            .samples
            .iter()
            .filter(|s| s.0.starts_with("director_cache_"));
        assert_eq!(
            cache_samples.count(),
            13 + 2,
            "one cluster: a sample per family, two stale"
        );

        let plain = render(&clusters(), &extras());
        assert!(
            !plain.contains("director_cache_"),
            "no cache enabled: no cache families"
        );
    }

    #[test]
    fn latency_histogram_is_cumulative_and_ends_with_inf() {
        let parsed = parse(&render(&clusters(), &extras())).expect("valid exposition");
        let bucket = |le: &'static str| {
            let labels = [("cluster", "shop"), ("backend", "app01"), ("le", le)];
            parsed.value(&format!("{LATENCY_FAMILY}_bucket"), &labels)
        };
        assert_eq!(
            (bucket("0.1"), bucket("1"), bucket("+Inf")),
            (Some(50.0), Some(99.0), Some(100.0))
        );
        let app01 = [("cluster", "shop"), ("backend", "app01")];
        assert_eq!(parsed.value(&format!("{LATENCY_FAMILY}_sum"), &app01), Some(20.0));
        let buckets = parsed.samples.iter().filter(|s| s.0.ends_with("_bucket"));
        assert_eq!(
            buckets.count(),
            4,
            "three finite bounds and +Inf, the input's +Inf not repeated"
        );
        let bare = parse(&render(&clusters(), &Extras::default())).expect("valid exposition");
        assert!(
            !bare.types.contains_key(LATENCY_FAMILY),
            "no histogram family without data"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        let odd = "we\"ird\\name\nline";
        let states = [cluster("c", false, vec![backend(odd, Role::Active, 1)])];
        let text = render(&states, &Extras::default());
        assert!(text.contains(r#"backend="we\"ird\\name\nline""#), "{text}");
        let parsed = parse(&text).expect("valid exposition");
        assert_eq!(
            parsed.value("director_backend_up", &[("cluster", "c"), ("backend", odd)]),
            Some(1.0)
        );
    }

    #[test]
    fn the_parser_rejects_what_the_format_forbids() {
        let broken = [
            "x 1\n",
            "# HELP a_total A.\n# TYPE a_total counter\na_total 1\n\
             # HELP b B.\n# TYPE b gauge\nb 1\na_total 2\n",
            "# HELP a A.\n# TYPE a counter\na 1\n",
            "# HELP a A.\n# TYPE a gauge\n# HELP a A.\n",
            "# HELP a A.\n# TYPE a gauge\na{l=\"v} 1\n",
            "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 5\n\
             h_bucket{le=\"+Inf\"} 4\nh_sum 1\nh_count 4\n",
            "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 5\nh_sum 1\nh_count 5\n",
        ];
        for text in broken {
            assert!(parse(text).is_err(), "accepted: {text}");
        }
        assert!(parse("# HELP a A.\n# TYPE a gauge\na{l=\"v\"} 1\n").is_ok());
    }

    #[test]
    fn values_use_the_format_spelling() {
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(
            (format_value(0.25), format_value(3.0)),
            ("0.25".to_owned(), "3".to_owned())
        );
    }
}
