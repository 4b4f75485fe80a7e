//! What each section of `config.yaml` means (control plane): the raw serde shapes as written in
//! the file, the defaults, and the checks that turn them into the typed model structs.
//!
//! A child of `load`, whose [`Loader`] does the piece-wise deserialization and collects errors.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::super::address::{parse_backend_url, parse_listen};
use super::super::duration::DurationValue;
use super::super::model::{
    AccessLogConfig, AccessLogFormat, ClusterConfig, FastCgiConfig, ForwardedFor, ListenAddr, ListenerConfig,
    OnClientAbort, Protocol, ProxyConfig, RouteConfig, RouteTarget, RouteTimeouts, SchedulerKind,
    DEFAULT_BACKEND_KEEP_ALIVE,
};
use super::backends::BackendDefaults;
use super::{index_path, is_valid_host, is_valid_name, key_path, kind, Loader, MISSING};

// ---- raw shapes, as written in the file -------------------------------------------------------
// Every field is optional so that a bad field can be blanked and the rest still checked; the
// `*_KEYS` lists name the accepted keys for unknown-key errors and must match the structs.

const PROXY_KEYS: &[&str] = &[
    "listen",
    "workers",
    "keep_alive",
    "client_timeout",
    "send_timeout",
    "max_request_line",
    "max_header_size",
    "max_connections",
    "request_id",
    "traceparent",
    "http2",
    "h2c",
    "http2_max_concurrent_streams",
];
const ACCESS_LOG_KEYS: &[&str] = &["enabled", "format", "path"];
const ROUTE_KEYS: &[&str] = &[
    "host",
    "path_prefix",
    "cluster",
    "backend",
    "cache",
    "fastcgi",
    "connect_timeout",
    "read_timeout",
    "write_timeout",
    "tls",
];
const CLUSTER_KEYS: &[&str] = &[
    "enabled",
    "scheduler",
    "queue_limit",
    "queue_timeout",
    "retry_after",
    "max_retry_count",
    "enqueue_on_unavailable",
    "connect_timeout",
    "read_timeout",
    "write_timeout",
    "buckets",
    "default_bucket",
    "debug_headers",
    "sticky_offline",
    "client_routing",
    "health",
    "fastcgi",
    "x_sendfile",
    "passive_health",
    "forwarded_for",
    "client_body_timeout",
    "backend_keep_alive",
    "via",
    "cache",
    "on_client_abort",
    "backend_tls",
    "upgrades",
    "backends",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProxy {
    /// An address, or a list of addresses and listener maps; checked element by element.
    listen: Option<Value>,
    workers: Option<usize>,
    keep_alive: Option<DurationValue>,
    client_timeout: Option<DurationValue>,
    send_timeout: Option<DurationValue>,
    max_request_line: Option<usize>,
    max_header_size: Option<usize>,
    max_connections: Option<usize>,
    /// Checked in `load/tracing.rs`.
    request_id: Option<Value>,
    traceparent: Option<Value>,
    http2: Option<bool>,
    h2c: Option<bool>,
    http2_max_concurrent_streams: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccessLog {
    enabled: Option<bool>,
    format: Option<String>,
    path: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    host: Option<String>,
    path_prefix: Option<String>,
    cluster: Option<String>,
    backend: Option<String>,
    connect_timeout: Option<DurationValue>,
    read_timeout: Option<DurationValue>,
    write_timeout: Option<DurationValue>,
}

/// A cluster without `buckets`, `backends`, `client_routing`, `health`, `fastcgi` and
/// `x_sendfile`, which are checked on their own.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    enabled: Option<bool>,
    scheduler: Option<String>,
    queue_limit: Option<usize>,
    queue_timeout: Option<DurationValue>,
    retry_after: Option<u32>,
    max_retry_count: Option<u32>,
    enqueue_on_unavailable: Option<bool>,
    connect_timeout: Option<DurationValue>,
    read_timeout: Option<DurationValue>,
    write_timeout: Option<DurationValue>,
    default_bucket: Option<String>,
    debug_headers: Option<bool>,
    sticky_offline: Option<bool>,
    forwarded_for: Option<String>,
    client_body_timeout: Option<DurationValue>,
    backend_keep_alive: Option<DurationValue>,
    via: Option<String>,
    on_client_abort: Option<String>,
}

/// A cluster's `via` when not given.
pub const DEFAULT_VIA: &str = "director";

const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(15);
const DEFAULT_CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(60);
const DEFAULT_MAX_REQUEST_LINE: usize = 8 * 1024;
const DEFAULT_MAX_HEADER_SIZE: usize = 32 * 1024;
const DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS: u32 = 128;
/// Accepted `http2_max_concurrent_streams` values.
const HTTP2_MAX_CONCURRENT_STREAMS_RANGE: (u32, u32) = (1, 10_000);
/// Accepted `max_request_line` and `max_header_size` values, in bytes. Below these, common
/// clients break; above them, actix-http's own head buffer (128 KiB, request line and headers
/// together) would answer first.
const MAX_REQUEST_LINE_RANGE: (usize, usize) = (256, 32 * 1024);
const MAX_HEADER_SIZE_RANGE: (usize, usize) = (1024, 64 * 1024);
const DEFAULT_QUEUE_LIMIT: usize = 128;
const DEFAULT_QUEUE_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_RETRY_AFTER: u32 = 10;
const DEFAULT_MAX_RETRY_COUNT: u32 = 3;
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(4);
const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(8);
const DEFAULT_CLIENT_BODY_TIMEOUT: Duration = Duration::from_secs(60);

const SCHEDULERS: &[(&str, SchedulerKind)] = &[
    ("rr", SchedulerKind::RoundRobin),
    ("chance", SchedulerKind::Chance),
    ("least-load", SchedulerKind::LeastLoad),
];
const FORWARDED_FOR: &[(&str, ForwardedFor)] = &[
    ("append", ForwardedFor::Append),
    ("replace", ForwardedFor::Replace),
];
const ON_CLIENT_ABORT: &[(&str, OnClientAbort)] = &[
    ("close", OnClientAbort::Close),
    ("notify", OnClientAbort::Notify),
    ("ignore", OnClientAbort::Ignore),
];
const FORMATS: &[(&str, AccessLogFormat)] = &[
    ("combined", AccessLogFormat::Combined),
    ("json", AccessLogFormat::Json),
];

impl Loader<'_> {
    /// `proxy:` (required).
    pub(super) fn proxy(&mut self, value: Value) -> Option<ProxyConfig> {
        let path = "proxy";
        let raw: RawProxy = self.piece(Some(value), path, PROXY_KEYS, "the proxy section")?;
        let listen = self.listen(raw.listen, &key_path(path, "listen"));
        let workers = match raw.workers.unwrap_or(0) {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let client_timeout = self.positive(
            key_path(path, "client_timeout"),
            raw.client_timeout,
            DEFAULT_CLIENT_TIMEOUT,
        );
        let send_timeout = self.positive(
            key_path(path, "send_timeout"),
            raw.send_timeout,
            DEFAULT_SEND_TIMEOUT,
        );
        let max_request_line = self.bytes_within(
            key_path(path, "max_request_line"),
            raw.max_request_line,
            DEFAULT_MAX_REQUEST_LINE,
            MAX_REQUEST_LINE_RANGE,
        );
        let max_header_size = self.bytes_within(
            key_path(path, "max_header_size"),
            raw.max_header_size,
            DEFAULT_MAX_HEADER_SIZE,
            MAX_HEADER_SIZE_RANGE,
        );
        let max_connections = match raw.max_connections {
            Some(0) => {
                let message = "must be at least 1 (leave it out to derive it from the file-descriptor limit)";
                self.error(key_path(path, "max_connections"), message);
                None
            }
            n => Some(n),
        };
        let streams = raw
            .http2_max_concurrent_streams
            .unwrap_or(DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS);
        let (min, max) = HTTP2_MAX_CONCURRENT_STREAMS_RANGE;
        let http2_max_concurrent_streams = match (min..=max).contains(&streams) {
            true => Some(streams),
            false => {
                let message = format!("must be between {min} and {max} (got {streams})");
                self.error(key_path(path, "http2_max_concurrent_streams"), message);
                None
            }
        };
        let request_id = self.request_id(raw.request_id, &key_path(path, "request_id"));
        let traceparent = self.traceparent(raw.traceparent, &key_path(path, "traceparent"));
        Some(ProxyConfig {
            listen: listen?,
            workers,
            keep_alive: raw.keep_alive.map_or(DEFAULT_KEEP_ALIVE, |d| d.0),
            client_timeout,
            send_timeout,
            max_request_line: max_request_line?,
            max_header_size: max_header_size?,
            max_connections: max_connections?,
            request_id: request_id?,
            traceparent: traceparent?,
            http2: raw.http2.unwrap_or(true),
            h2c: raw.h2c.unwrap_or(false),
            http2_max_concurrent_streams: http2_max_concurrent_streams?,
        })
    }

    /// A size in bytes within `(min, max)`, or `default` when absent.
    fn bytes_within(
        &mut self,
        path: String,
        value: Option<usize>,
        default: usize,
        (min, max): (usize, usize),
    ) -> Option<usize> {
        let value = value.unwrap_or(default);
        if (min..=max).contains(&value) {
            return Some(value);
        }
        self.error(
            path,
            format!("must be between {min} and {max} bytes (got {value})"),
        );
        None
    }

    /// `proxy.listen`: one address or a non-empty list of addresses and listener maps
    /// (`load/tls.rs`), each checked, no duplicate addresses.
    fn listen(&mut self, value: Option<Value>, path: &str) -> Option<Vec<ListenerConfig>> {
        let items: Vec<(String, Value)> = match value {
            None | Some(Value::Null) => {
                self.error(path, MISSING);
                return None;
            }
            Some(Value::String(s)) => vec![(path.to_owned(), Value::String(s))],
            Some(Value::Array(list)) if list.is_empty() => {
                self.error(path, "must list at least one address");
                return None;
            }
            Some(Value::Array(list)) => list
                .into_iter()
                .enumerate()
                .map(|(i, v)| (index_path(path, i), v))
                .collect(),
            Some(other) => {
                let found = kind(&other);
                self.error(
                    path,
                    format!("expected an address or a list of addresses, found {found}"),
                );
                return None;
            }
        };
        let mut seen: HashMap<ListenAddr, String> = HashMap::new();
        let mut out = Some(Vec::with_capacity(items.len()));
        for (at, item) in items {
            let parsed = match item {
                Value::String(s) => parse_listen(&s).map(ListenerConfig::plain),
                Value::Object(map) => match self.listener_entry(Value::Object(map), &at) {
                    Some(listener) => Ok(listener),
                    None => {
                        out = None;
                        continue;
                    }
                },
                other => Err(format!(
                    "expected an address string or a listener map, found {}",
                    kind(&other)
                )),
            };
            match parsed {
                Ok(listener) => match seen.get(&listener.address) {
                    Some(first) => {
                        let message = format!("duplicate listen address (also at {first})");
                        self.error(at, message);
                        out = None;
                    }
                    None => {
                        seen.insert(listener.address.clone(), at);
                        if let Some(out) = out.as_mut() {
                            out.push(listener);
                        }
                    }
                },
                Err(message) => {
                    self.error(at, message);
                    out = None;
                }
            }
        }
        out
    }

    /// `access_log:` (optional).
    pub(super) fn access_log(&mut self, value: Option<Value>) -> Option<AccessLogConfig> {
        let path = "access_log";
        let raw: RawAccessLog = self.piece(value, path, ACCESS_LOG_KEYS, "the access_log section")?;
        let format = self.choice(
            key_path(path, "format"),
            raw.format,
            AccessLogFormat::Combined,
            FORMATS,
            "access log format",
        );
        let file = match raw.path.as_deref() {
            None | Some("-") => Some(None),
            Some("") => {
                self.error(key_path(path, "path"), "must not be empty (use \"-\" for stdout)");
                None
            }
            Some(file) => Some(Some(PathBuf::from(file))),
        };
        Some(AccessLogConfig {
            enabled: raw.enabled.unwrap_or(false),
            format: format?,
            path: file?,
        })
    }

    /// `routes:` (optional); a route's `cluster` must be one of `clusters`.
    pub(super) fn routes(
        &mut self,
        value: Option<Value>,
        clusters: &BTreeSet<String>,
    ) -> Option<Vec<RouteConfig>> {
        let list = match value {
            None | Some(Value::Null) => return Some(Vec::new()),
            Some(Value::Array(list)) => list,
            Some(other) => {
                let found = kind(&other);
                self.error("routes", format!("expected a list of routes, found {found}"));
                return None;
            }
        };
        let routes: Vec<Option<RouteConfig>> = list
            .into_iter()
            .enumerate()
            .map(|(i, item)| self.route(item, &index_path("routes", i), clusters))
            .collect();
        // Routes to one address share its cluster, so they must agree on its script mapping.
        let mut mappings: HashMap<&str, (usize, &Option<FastCgiConfig>)> = HashMap::new();
        let mut conflicts = Vec::new();
        for (i, route) in routes.iter().enumerate() {
            let Some(RouteConfig {
                target: RouteTarget::Backend(url),
                fastcgi,
                ..
            }) = route
            else {
                continue;
            };
            match mappings.get(url.text.as_str()) {
                Some((first, mapping)) if *mapping != fastcgi => conflicts.push((i, *first)),
                Some(_) => {}
                None => {
                    mappings.insert(&url.text, (i, fastcgi));
                }
            }
        }
        for (i, first) in conflicts.iter().copied() {
            let message = format!(
                "routes to one address share its script mapping; this one differs from routes[{first}]'s"
            );
            self.error(key_path(&index_path("routes", i), "fastcgi"), message);
        }
        if !conflicts.is_empty() {
            return None;
        }
        routes.into_iter().collect()
    }

    /// One route: exactly one of `cluster` / `backend`; a FastCGI `backend` needs `fastcgi`.
    fn route(&mut self, mut value: Value, path: &str, clusters: &BTreeSet<String>) -> Option<RouteConfig> {
        let cache = value.as_object_mut().and_then(|map| map.remove("cache"));
        let fastcgi = value.as_object_mut().and_then(|map| map.remove("fastcgi"));
        let tls = value.as_object_mut().and_then(|map| map.remove("tls"));
        let has_cache = cache.is_some();
        let raw: RawRoute = self.piece(Some(value), path, ROUTE_KEYS, "a route")?;
        let tls_section = self.tls_section(tls, &key_path(path, "tls"));
        let cache = self.cache(cache, &key_path(path, "cache"));
        let fastcgi_path = key_path(path, "fastcgi");
        let fastcgi = self.fastcgi(fastcgi, &fastcgi_path);
        let mut timeout = |key: &str, value: Option<DurationValue>| {
            value.map(|d| self.positive(key_path(path, key), Some(d), Duration::ZERO))
        };
        let timeouts = RouteTimeouts {
            connect: timeout("connect_timeout", raw.connect_timeout),
            read: timeout("read_timeout", raw.read_timeout),
            write: timeout("write_timeout", raw.write_timeout),
        };
        if has_cache && raw.cluster.is_some() {
            let message = "a route to a cluster uses the cluster's cache; set `cache` on the cluster";
            self.error(key_path(path, "cache"), message);
        }
        if let Some(host) = &raw.host {
            if !is_valid_host(host) {
                let message = format!("`{host}` is not a host name (no port, e.g. shop.example.com)");
                self.error(key_path(path, "host"), message);
            }
        }
        let path_prefix = raw.path_prefix.unwrap_or_else(|| "/".to_owned());
        if !path_prefix.starts_with('/') {
            self.error(
                key_path(path, "path_prefix"),
                format!("must start with \"/\" (got `{path_prefix}`)"),
            );
        }
        let cluster_path = key_path(path, "cluster");
        let backend_path = key_path(path, "backend");
        if raw.cluster.is_some() && matches!(tls_section, Some(Some(_))) {
            let message = "a route to a cluster uses its backends' `tls`; set it on the cluster (`backend_tls`) or its backends";
            self.error(key_path(path, "tls"), message);
        }
        let target = match (raw.cluster, raw.backend) {
            (Some(_), None) if matches!(fastcgi, Some(Some(_))) => {
                let message = "a route to a cluster uses the cluster's `fastcgi`; set it on the cluster";
                self.error(fastcgi_path.clone(), message);
                None
            }
            (Some(name), None) if clusters.contains(&name) => Some(RouteTarget::Cluster(name)),
            (Some(name), None) => {
                self.error(cluster_path, format!("unknown cluster `{name}`"));
                None
            }
            (None, Some(url)) => match parse_backend_url(&url) {
                Ok(url) if url.protocol == Protocol::FastCgi && matches!(fastcgi, Some(None)) => {
                    let message = "a route to a FastCGI address needs a script mapping: set \
                                   `fastcgi: { document_root }` on the route";
                    self.error(backend_path, message);
                    None
                }
                Ok(url) if url.protocol == Protocol::Http && matches!(fastcgi, Some(Some(_))) => {
                    let message = "`fastcgi` applies to a route to a FastCGI address \
                                   (fastcgi:// or fastcgi+unix://) only";
                    self.error(fastcgi_path.clone(), message);
                    None
                }
                Ok(url) => Some(RouteTarget::Backend(url)),
                Err(message) => {
                    self.error(backend_path, message);
                    None
                }
            },
            (Some(_), Some(_)) => {
                self.error(path, "set either `cluster` or `backend`, not both");
                None
            }
            (None, None) => {
                // Not when one of them was present but unusable (already reported).
                if !self.has_error_at(&cluster_path) && !self.has_error_at(&backend_path) {
                    self.error(path, "needs a target: set `cluster` or `backend`");
                }
                None
            }
        };
        let tls_section = tls_section?;
        let tls = match &target {
            Some(RouteTarget::Backend(url)) => {
                // A route has no cluster defaults; its own `tls` is all there is.
                self.backend_tls(url, tls_section.as_ref(), Some(None), path, "backend")?
            }
            _ => None,
        };
        Some(RouteConfig {
            host: raw.host,
            path_prefix,
            target: target?,
            cache: cache?,
            fastcgi: fastcgi?,
            timeouts,
            tls,
        })
    }

    /// `clusters:` (optional): names to clusters.
    pub(super) fn clusters(&mut self, value: Option<Value>) -> Option<BTreeMap<String, ClusterConfig>> {
        let map = match value {
            None | Some(Value::Null) => return Some(BTreeMap::new()),
            Some(Value::Object(map)) => map,
            Some(other) => {
                let found = kind(&other);
                self.error(
                    "clusters",
                    format!("expected a map of cluster names to clusters, found {found}"),
                );
                return None;
            }
        };
        let mut out = Some(BTreeMap::new());
        for (name, value) in map {
            let path = key_path("clusters", &name);
            let cluster = self.cluster(value, &path);
            // Reported after the cluster's content, so that errors inside it are not hidden.
            if !is_valid_name(&name) {
                self.error(
                    path,
                    format!("invalid cluster name `{name}` (use letters, digits, '_', '.', '-')"),
                );
                out = None;
            }
            match (cluster, out.as_mut()) {
                (Some(cluster), Some(out)) => {
                    out.insert(name, cluster);
                }
                _ => out = None,
            }
        }
        out
    }

    /// One cluster: its settings and, separately, its client routing, health checks, bucket
    /// tree and each backend.
    fn cluster(&mut self, mut value: Value, path: &str) -> Option<ClusterConfig> {
        let mut take = |key: &str| value.as_object_mut().and_then(|map| map.remove(key));
        let backends = take("backends");
        let buckets = take("buckets");
        let client_routing = take("client_routing");
        let health = take("health");
        let fastcgi = take("fastcgi");
        let x_sendfile = take("x_sendfile");
        let passive_health = take("passive_health");
        let cache = take("cache");
        let backend_tls = take("backend_tls");
        let upgrades = take("upgrades");
        let raw: Option<RawCluster> = self.piece(Some(value), path, CLUSTER_KEYS, "a cluster");
        let (default_bucket, settings) = match raw {
            Some(mut raw) => (raw.default_bucket.take(), Some(self.cluster_settings(raw, path))),
            None => (None, None),
        };
        let client_routing = self.client_routing(client_routing, &key_path(path, "client_routing"));
        let health_section = health.clone().filter(Value::is_object);
        let health = self.health(health, &key_path(path, "health"));
        // What a backend's own `health` is laid over: the cluster's section, when it is valid.
        let health_base = match &health {
            Some(_) => health_section.unwrap_or_else(|| Value::Object(Default::default())),
            None => Value::Null,
        };
        let tree = self.bucket_tree(buckets, default_bucket, path);
        let fastcgi = self.fastcgi(fastcgi, &key_path(path, "fastcgi"));
        let x_sendfile = self.x_sendfile(x_sendfile, &key_path(path, "x_sendfile"));
        let passive_health = self.passive_health(passive_health, &key_path(path, "passive_health"));
        let cache = self.cache(cache, &key_path(path, "cache"));
        let backend_tls = self.tls_section(backend_tls, &key_path(path, "backend_tls"));
        let upgrades = self.upgrades(upgrades, &key_path(path, "upgrades"));
        let defaults = BackendDefaults {
            maps_scripts: matches!(fastcgi, Some(Some(_))),
            health: &health_base,
            tls: backend_tls.as_ref().map(Option::as_ref),
        };
        let backends = self.backends(backends, &key_path(path, "backends"), &defaults);
        let mut cluster = settings??;
        cluster.fastcgi = fastcgi?;
        cluster.x_sendfile = x_sendfile?;
        cluster.passive_health = passive_health?;
        cluster.cache = cache?;
        cluster.upgrades = upgrades?;
        cluster.client_routing = client_routing?;
        cluster.health = health?;
        (cluster.buckets, cluster.default_bucket) = tree?;
        (cluster.backends, cluster.discover) = backends?;
        backend_tls?;
        Some(cluster)
    }

    /// Everything of a cluster but its client routing, health checks, bucket tree, FastCGI and
    /// X-Sendfile sections and backends.
    fn cluster_settings(&mut self, raw: RawCluster, path: &str) -> Option<ClusterConfig> {
        let scheduler = self.choice(
            key_path(path, "scheduler"),
            raw.scheduler,
            SchedulerKind::RoundRobin,
            SCHEDULERS,
            "scheduler",
        );
        let queue_timeout = self.positive(
            key_path(path, "queue_timeout"),
            raw.queue_timeout,
            DEFAULT_QUEUE_TIMEOUT,
        );
        let connect_timeout = self.positive(
            key_path(path, "connect_timeout"),
            raw.connect_timeout,
            DEFAULT_CONNECT_TIMEOUT,
        );
        let read_timeout = self.positive(
            key_path(path, "read_timeout"),
            raw.read_timeout,
            DEFAULT_READ_TIMEOUT,
        );
        let write_timeout = self.positive(
            key_path(path, "write_timeout"),
            raw.write_timeout,
            DEFAULT_WRITE_TIMEOUT,
        );
        let forwarded_for = self.choice(
            key_path(path, "forwarded_for"),
            raw.forwarded_for,
            ForwardedFor::Append,
            FORWARDED_FOR,
            "forwarded_for mode",
        );
        let client_body_timeout = self.positive(
            key_path(path, "client_body_timeout"),
            raw.client_body_timeout,
            DEFAULT_CLIENT_BODY_TIMEOUT,
        );
        let on_client_abort = self.choice(
            key_path(path, "on_client_abort"),
            raw.on_client_abort,
            OnClientAbort::Close,
            ON_CLIENT_ABORT,
            "on_client_abort mode",
        );
        let backend_keep_alive = self.positive(
            key_path(path, "backend_keep_alive"),
            raw.backend_keep_alive,
            DEFAULT_BACKEND_KEEP_ALIVE,
        );
        let via = raw.via.unwrap_or_else(|| DEFAULT_VIA.to_owned());
        let via_ok = !via.is_empty()
            && via.len() <= 64
            && via
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
        if !via_ok {
            self.error(
                key_path(path, "via"),
                "must be 1 to 64 letters, digits, `-`, `.` or `_` (a Via pseudonym)",
            );
        }
        Some(ClusterConfig {
            enabled: raw.enabled.unwrap_or(true),
            via: via_ok.then_some(via)?,
            scheduler: scheduler?,
            queue_limit: raw.queue_limit.unwrap_or(DEFAULT_QUEUE_LIMIT),
            queue_timeout,
            retry_after: raw.retry_after.unwrap_or(DEFAULT_RETRY_AFTER),
            max_retry_count: raw.max_retry_count.unwrap_or(DEFAULT_MAX_RETRY_COUNT),
            enqueue_on_unavailable: raw.enqueue_on_unavailable.unwrap_or(false),
            connect_timeout,
            read_timeout,
            write_timeout,
            backends: Vec::new(),
            discover: Vec::new(),
            buckets: Vec::new(),
            default_bucket: None,
            debug_headers: raw.debug_headers.unwrap_or(false),
            health: None,
            sticky_offline: raw.sticky_offline.unwrap_or(false),
            client_routing: None,
            fastcgi: None,
            x_sendfile: Default::default(),
            passive_health: Default::default(),
            forwarded_for: forwarded_for?,
            client_body_timeout,
            backend_keep_alive,
            cache: Default::default(),
            on_client_abort: on_client_abort?,
            upgrades: Default::default(),
        })
    }
}
