//! Typed configuration: the validated shape of `config.yaml`.
//!
//! Control plane only. These structs are produced by the loader after every value was
//! checked; nothing here touches I/O. Field names are the keys of `config.yaml`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

pub use super::backend_kinds::{FastCgiConfig, HealthConfig, HealthMode, InitialHealth, Protocol, Role};
use super::backend_tls::BackendTls;
use super::discovery::{DiscoveryConfig, ResolverConfig};

/// The whole validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub proxy: ProxyConfig,
    /// `admin:` — the dashboard and API listener; `None` runs no admin listener.
    pub admin: Option<AdminConfig>,
    /// `state_file`: where runtime changes are kept, laid over this file at start-up.
    pub state_file: Option<PathBuf>,
    pub access_log: AccessLogConfig,
    pub routes: Vec<RouteConfig>,
    /// Clusters by name, in name order.
    pub clusters: BTreeMap<String, ClusterConfig>,
    /// `haproxy_compat:` — HAProxy's stats and monitor URIs for HAProxy tooling.
    pub haproxy_compat: HaproxyCompatConfig,
    /// `resolver:` — where backend discovery by DNS asks.
    pub resolver: ResolverConfig,
    /// `cluster_state:` — runtime state shared with other replicas; `None`: this replica's
    /// runtime changes stay its own (the state file alone).
    pub cluster_state: Option<ClusterStateConfig>,
}

/// `cluster_state:` — where replicas share their runtime changes and register themselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterStateConfig {
    pub etcd: EtcdConfig,
}

/// `cluster_state.etcd:` — the etcd v3 cluster, reached through its JSON gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdConfig {
    /// `endpoints`: base URLs (`http://host:port`), tried in turn.
    pub endpoints: Vec<String>,
    /// `prefix`: the key prefix every replica of one deployment shares, without a trailing `/`.
    pub prefix: String,
    /// `lease_ttl` (default 5s): how long a replica that stopped renewing still counts.
    pub lease_ttl: Duration,
    /// `dial_timeout` (default 2s): connecting to etcd and waiting for an answer's head.
    pub dial_timeout: Duration,
    /// `replica_id`: this replica's name among the others; by default the host name and the
    /// process id.
    pub replica_id: Option<String>,
}

/// `haproxy_compat:` — where HAProxy's stats URI (CSV at `<stats_uri>;csv`, HTML at
/// `<stats_uri>`) and monitor URI are served, and who may read the stats.
#[derive(Debug, Clone, PartialEq)]
pub struct HaproxyCompatConfig {
    /// `stats_uri` (default `/haproxy?stats`): a request target that starts with it is a stats
    /// request, as with HAProxy's `stats uri`.
    pub stats_uri: String,
    /// `monitor_uri` (default `/haproxy/monitor`): HAProxy's `monitor-uri`, matched exactly.
    pub monitor_uri: String,
    /// `listeners` (default `[admin]`): which listeners answer both URIs.
    pub on_admin: bool,
    pub on_proxy: bool,
    /// `monitor_fail` (default `never`): when the monitor URI answers 503.
    pub monitor_fail: MonitorFail,
    /// `realm` (default `HAProxy Statistics`, HAProxy's): the HTTP Basic realm of a 401.
    pub realm: String,
    /// `users`: HTTP Basic users allowed to read the stats (HAProxy's `stats auth`).
    pub users: Vec<StatsUser>,
}

/// When the monitor URI fails (HAProxy's `monitor fail` condition).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MonitorFail {
    /// 200 while director runs.
    #[default]
    Never,
    /// 503 when no cluster has a backend in service.
    NoBackend,
}

/// One HTTP Basic user of the stats URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsUser {
    pub user: String,
    /// An Argon2 PHC string (`$argon2id$v=19$...`, made by `director --hash-password`).
    pub password_hash: String,
}

/// `proxy:` — the client-facing listeners.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyConfig {
    pub listen: Vec<ListenerConfig>,
    /// Worker threads; 0 in the file means one per CPU core and is resolved at load time.
    pub workers: usize,
    /// How long an idle client keep-alive connection is kept open between requests
    /// (`keep_alive`, default 15s; HAProxy's `timeout http-keep-alive`); 0 disables keep-alive.
    pub keep_alive: Duration,
    /// Time allowed for a client to send a request head, on every request of a connection
    /// (`client_timeout`, default 10s; HAProxy's `timeout http-request`).
    pub client_timeout: Duration,
    /// Longest a write to a client may make no progress before the connection is closed
    /// (`send_timeout`, default 60s; nginx's `send_timeout`).
    pub send_timeout: Duration,
    /// Longest request line in bytes, without its CRLF (`max_request_line`, default 8 KiB);
    /// longer lines are answered `414`.
    pub max_request_line: usize,
    /// Largest header section in bytes, every field line with its CRLF (`max_header_size`,
    /// default 32 KiB); larger ones are answered `431`.
    pub max_header_size: usize,
    /// Client connections served at once over all workers (`max_connections`); `None`
    /// derives it from the file-descriptor limit at start-up.
    pub max_connections: Option<usize>,
    /// `request_id`: the header that carries a request's ID, accepted from the client or
    /// generated, passed to the backend and returned; `None` when off (the default).
    pub request_id: Option<RequestIdConfig>,
    /// `traceparent`: W3C trace context handling; `None` when off (the default: the header
    /// passes through like any other).
    pub traceparent: Option<TraceparentConfig>,
    /// `http2` (default true): TLS listeners offer HTTP/2 in ALPN (`h2`, then `http/1.1`);
    /// false keeps them to HTTP/1.1.
    pub http2: bool,
    /// `h2c` (default false): plain listeners also serve HTTP/2 to clients that open with its
    /// preface (prior knowledge, as `curl --http2-prior-knowledge` and `h2load` do).
    pub h2c: bool,
    /// `http2_max_concurrent_streams` (default 128, nginx's): streams an HTTP/2 client may
    /// have open at once on one connection.
    pub http2_max_concurrent_streams: u32,
}

/// `proxy.request_id:` — `{ enabled, header }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestIdConfig {
    /// `header` (default `X-Request-Id`), lower-cased; only `[A-Za-z0-9-]`, so that FastCGI
    /// gets it as `HTTP_*`.
    pub header: String,
}

/// `proxy.traceparent:` — `{ enabled, start, new_span }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceparentConfig {
    /// `start` (default true): start a trace for a request that brings none (or a malformed one).
    pub start: bool,
    /// `new_span` (default false): director is a hop with a span of its own: a passed
    /// trace's parent-id is replaced by a new one.
    pub new_span: bool,
}

/// `admin:` — the listener of the dashboard, `/api/v1`, HAProxy stats and `/metrics`.
#[derive(Debug, Clone, PartialEq)]
pub struct AdminConfig {
    /// `listen` (default `127.0.0.1:8081`).
    pub listen: ListenAddr,
    /// `token`: required by every admin call when set; an empty string means none.
    pub token: Option<String>,
    /// `session_ttl` (default 12h): how long a dashboard login lasts.
    pub session_ttl: Duration,
    /// `max_event_streams` (default 16): how many `/api/v1/events` streams may be open at once.
    pub max_event_streams: usize,
    /// `max_connections` (default 64): admin connections served at once.
    pub max_connections: usize,
    /// `tls`: the admin listener serves HTTPS (its session cookie is then `Secure`).
    pub tls: Option<TlsConfig>,
}

/// One `proxy.listen` entry: an address string, or a map `{ address, tls, redirect_to_https,
/// hsts }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerConfig {
    pub address: ListenAddr,
    /// `tls`: the listener serves HTTPS.
    pub tls: Option<TlsConfig>,
    /// `redirect_to_https` (plain listeners only): every request is answered with a redirect
    /// to `https://` on this port (`true` means 443, left out of the URL).
    pub redirect_to_https: Option<u16>,
    /// `hsts` (TLS listeners only): the `Strict-Transport-Security` header of its responses.
    pub hsts: Option<HstsConfig>,
}

impl ListenerConfig {
    /// A plain listener at `address` (what a bare address string means).
    pub fn plain(address: ListenAddr) -> ListenerConfig {
        ListenerConfig {
            address,
            tls: None,
            redirect_to_https: None,
            hsts: None,
        }
    }
}

/// `tls:` of a listener — `{ certificates: [{ cert, key }, ...] }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// Chosen by the client's SNI among their names; the first is the default (no SNI, or a
    /// name none of them has).
    pub certificates: Vec<CertificateFiles>,
}

/// One certificate: PEM files of the chain (end-entity first) and of its private key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CertificateFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// `hsts:` — `{ max_age, include_subdomains, preload }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HstsConfig {
    /// `max_age` (default 365 days, written e.g. `8760h`).
    pub max_age: Duration,
    /// `include_subdomains` (default false).
    pub include_subdomains: bool,
    /// `preload` (default false).
    pub preload: bool,
}

impl HstsConfig {
    /// The header value: `max-age=31536000; includeSubDomains; preload`.
    pub fn header_value(&self) -> String {
        let mut value = format!("max-age={}", self.max_age.as_secs());
        if self.include_subdomains {
            value.push_str("; includeSubDomains");
        }
        if self.preload {
            value.push_str("; preload");
        }
        value
    }
}

/// One listener address: `"0.0.0.0:8080"`, `"[::]:8080"` or `"unix:/run/director.sock"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ListenAddr {
    Tcp(std::net::SocketAddr),
    Unix(PathBuf),
}

/// As written in `config.yaml`: `0.0.0.0:8080`, `[::]:8080`, `unix:/run/director.sock`.
impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAddr::Tcp(sa) => write!(f, "{sa}"),
            ListenAddr::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// `access_log:` — where and how requests are logged.
#[derive(Debug, Clone, PartialEq)]
pub struct AccessLogConfig {
    /// `enabled` (default false).
    pub enabled: bool,
    /// `format`: `combined` (default) or `json`.
    pub format: AccessLogFormat,
    /// `path`: `"-"` (default) for stdout, else a file appended to.
    pub path: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessLogFormat {
    Combined,
    Json,
}

/// One entry of `routes:`; the first match wins.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteConfig {
    /// Exact host name (case-insensitive, port ignored); `None` matches any host.
    pub host: Option<String>,
    /// Path prefix; default `/`.
    pub path_prefix: String,
    pub target: RouteTarget,
    /// `cache`: for a route that names a single backend, its object cache.
    pub cache: CacheConfig,
    /// `fastcgi`: for a route to a single FastCGI address, its script mapping (required there).
    pub fastcgi: Option<FastCgiConfig>,
    /// `connect_timeout`, `read_timeout`, `write_timeout`: this route's, over its cluster's.
    pub timeouts: RouteTimeouts,
    /// `tls`: for a route to a single `https://` address, how it is reached (`None` otherwise).
    pub tls: Option<BackendTls>,
}

/// A route's own backend timeouts; `None` keeps the cluster's (for a route to a single
/// address: the defaults, 4s / 30s / 8s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RouteTimeouts {
    pub connect: Option<Duration>,
    pub read: Option<Duration>,
    pub write: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RouteTarget {
    /// `cluster: NAME` — must name a key of `clusters`.
    Cluster(String),
    /// `backend: URL` — "road warrior": plain proxying to one address (HTTP, or FastCGI with
    /// the route's `fastcgi` mapping), no balancing, never taken out by passive health.
    Backend(BackendUrl),
}

/// Scheduler of a cluster (`scheduler:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchedulerKind {
    /// `rr`: round-robin, each call starts after the last winner.
    RoundRobin,
    /// `chance`: fill the first backend to capacity before the next.
    Chance,
    /// `least-load`: most free capacity (or fewest in flight for unlimited backends).
    LeastLoad,
}

/// How long an idle backend connection is kept for reuse when `backend_keep_alive` is not
/// given: backends commonly close idle keep-alive connections after 5–75 s, and reusing one
/// they are closing costs a retry.
pub const DEFAULT_BACKEND_KEEP_ALIVE: Duration = Duration::from_secs(4);

/// One entry of `clusters:`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterConfig {
    /// `enabled` (default true): a maintenance switch; a disabled cluster answers every request
    /// routed to it with 503 and `Retry-After`, while its health checks keep running.
    pub enabled: bool,
    /// `scheduler` (default `rr`).
    pub scheduler: SchedulerKind,
    /// `queue_limit` (default 128): requests that may wait for capacity.
    pub queue_limit: usize,
    /// `queue_timeout` (default 10s): longest wait in the queue, then 504.
    pub queue_timeout: Duration,
    /// `retry_after` seconds on generated 503/504 (default 10; 0 omits the header).
    pub retry_after: u32,
    /// `max_retry_count` (default 3): further attempts after the first one failed.
    pub max_retry_count: u32,
    /// `enqueue_on_unavailable` (default false): queue even when no backend is available.
    pub enqueue_on_unavailable: bool,
    /// `connect_timeout` (default 4s).
    pub connect_timeout: Duration,
    /// `read_timeout` (default 30s): wait for the response head and between body chunks.
    pub read_timeout: Duration,
    /// `write_timeout` (default 8s): a stalled write of the request to the backend.
    pub write_timeout: Duration,
    /// `backends`, in configuration order (order matters for `chance`): the fixed ones, and
    /// (once the Director has expanded [`Self::discover`]) the discovered ones.
    pub backends: Vec<BackendConfig>,
    /// The `backends` entries with `discover:` instead of `url:`, in configuration order.
    pub discover: Vec<DiscoveryConfig>,
    /// `buckets`: the children of the root bucket (HTB partitioning), in configuration order.
    pub buckets: Vec<BucketConfig>,
    /// `default_bucket`: where requests that match no bucket rule go (default: the root).
    pub default_bucket: Option<String>,
    /// `debug_headers` (default false): add `X-Director-Bucket` and `X-Director-Backend` to
    /// responses.
    pub debug_headers: bool,
    /// `health`: active health checks; `None` = passive health only.
    pub health: Option<HealthConfig>,
    /// `sticky_offline` (default false): a backend that comes back online after being offline
    /// stays disabled until an operator enables it.
    pub sticky_offline: bool,
    /// `client_routing`: a cookie or header naming the backend a request must go to.
    pub client_routing: Option<ClientRouting>,
    /// `fastcgi`: how requests map to scripts on the cluster's FastCGI backends.
    pub fastcgi: Option<FastCgiConfig>,
    /// `x_sendfile`: serve files named by a backend's `X-Sendfile` / `X-Accel-Redirect`.
    pub x_sendfile: XSendfileConfig,
    /// `passive_health`: when failed requests take a backend out of rotation.
    pub passive_health: PassiveHealthConfig,
    /// `forwarded_for` (default `append`): how `X-Forwarded-For` is written upstream.
    pub forwarded_for: ForwardedFor,
    /// `via` (default `director`): the pseudonym in the `Via` entry director adds to requests
    /// and responses (`1.1 <via>`), the original plugin's `pseudonym`.
    pub via: String,
    /// `client_body_timeout` (default 60s, nginx's): the longest a client may pause while
    /// sending a request body before it gets 408.
    pub client_body_timeout: Duration,
    /// `backend_keep_alive` (default [`DEFAULT_BACKEND_KEEP_ALIVE`]): how long an idle
    /// connection to a backend is kept for reuse (nginx's upstream `keepalive_timeout`); keep
    /// it below the backends' own.
    pub backend_keep_alive: Duration,
    /// `cache`: the cluster's object cache (disabled by default).
    pub cache: CacheConfig,
    /// `on_client_abort` (default `close`): what a backend is told when the client leaves
    /// before its answer is complete.
    pub on_client_abort: OnClientAbort,
    /// `upgrades`: WebSocket and other `Upgrade` tunnels to HTTP backends.
    pub upgrades: UpgradesConfig,
}

/// `upgrades:` of a cluster: requests asking to switch protocols (`Connection: upgrade` with
/// `Upgrade: websocket` or another protocol) that an HTTP backend answers with `101` become a
/// byte tunnel between client and backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpgradesConfig {
    /// `enabled` (default true): forward `Upgrade`; off, it is dropped as nginx does without
    /// `proxy_set_header Upgrade`, and the backend answers a plain request.
    pub enabled: bool,
    /// `hold_capacity` (default true): a tunnel keeps its admission slot (backend capacity
    /// and bucket token) until it closes; false gives it back once the backend said `101`.
    pub hold_capacity: bool,
    /// `idle_timeout` (default 60s, nginx's `proxy_read_timeout`; HAProxy's `timeout
    /// tunnel`): a tunnel with no byte in either direction for this long is closed.
    pub idle_timeout: Duration,
    /// `max_lifetime` (default none, `0s`): a tunnel open this long is closed however busy.
    pub max_lifetime: Option<Duration>,
}

impl Default for UpgradesConfig {
    fn default() -> Self {
        UpgradesConfig {
            enabled: true,
            hold_capacity: true,
            idle_timeout: Duration::from_secs(60),
            max_lifetime: None,
        }
    }
}

/// `on_client_abort:` of a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnClientAbort {
    /// Close the backend connection (nginx's default).
    #[default]
    Close,
    /// Tell the backend first: a FastCGI `ABORT_REQUEST`, then close; an HTTP backend's
    /// connection is closed (HTTP has nothing else to say it).
    Notify,
    /// Let the backend finish (non-idempotent work): the request runs to its end, its answer
    /// read and dropped, holding its capacity until then (nginx's `proxy_ignore_client_abort`).
    Ignore,
}

/// `cache:` of a cluster (or of a route that names a single backend).
#[derive(Debug, Clone, PartialEq)]
pub struct CacheConfig {
    /// `enabled` (default false).
    pub enabled: bool,
    /// `max_memory` (default 256MiB): a hard bound for everything stored, keys and headers
    /// included.
    pub max_memory: u64,
    /// `max_object_size` (default 8MiB): larger responses stream through unstored.
    pub max_object_size: u64,
    /// `default_ttl` (default 0s): freshness of cacheable responses that carry none; 0 = such
    /// responses are not stored.
    pub default_ttl: Duration,
    /// `update` (default `locked`).
    pub update: CacheUpdate,
    /// `lock_timeout` (default 5s, nginx's `proxy_cache_lock_timeout`): how long requests wait
    /// for the one fetching a key, then go to the backend themselves.
    pub lock_timeout: Duration,
    /// `stale_if_error` (default 5m): how long past its freshness an object may be served when
    /// the backend fails or nothing can take the request.
    pub stale_if_error: Duration,
    /// `stale_while_revalidate` (default 30s): with `update: shadowed`, how long past its
    /// freshness an object is served at once while one background request refreshes it.
    pub stale_while_revalidate: Duration,
    /// `stale_on_status` (default `[]`): backend statuses treated as failures for
    /// `stale_if_error` (e.g. `[500, 502, 503, 504]`).
    pub stale_on_status: Vec<u16>,
    /// `max_variants` (default 16): variants (by `Vary`) kept per key.
    pub max_variants: usize,
    /// `key`: the request parts the key is made of.
    pub key: CacheKeyConfig,
    /// `ignore_client_no_cache` (default false): a request's `Cache-Control: no-cache`,
    /// `max-age=0` and `Pragma: no-cache` don't force a revalidation (origin protection).
    pub ignore_client_no_cache: bool,
    /// `purge_method`: an HTTP `PURGE` on the proxy listener, from allowed client addresses.
    pub purge_method: PurgeMethodConfig,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            enabled: false,
            max_memory: 256 << 20,
            max_object_size: 8 << 20,
            default_ttl: Duration::ZERO,
            update: CacheUpdate::Locked,
            lock_timeout: Duration::from_secs(5),
            stale_if_error: Duration::from_secs(300),
            stale_while_revalidate: Duration::from_secs(30),
            stale_on_status: Vec::new(),
            max_variants: 16,
            key: CacheKeyConfig::default(),
            ignore_client_no_cache: false,
            purge_method: PurgeMethodConfig::default(),
        }
    }
}

/// `cache.update`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheUpdate {
    /// One request fetches a missing or expired object; the others wait for it.
    Locked,
    /// An expired object within `stale_while_revalidate` is served to everyone while one
    /// background request refreshes it.
    Shadowed,
}

/// `cache.key`: which request parts form the key (the path always does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheKeyConfig {
    /// `method` (default false): GET and HEAD get separate objects.
    pub method: bool,
    /// `host` (default true).
    pub host: bool,
    /// `query` (default `full`): `full`, `sorted` (parameters sorted) or `ignore`.
    pub query: CacheQuery,
}

impl Default for CacheKeyConfig {
    fn default() -> Self {
        CacheKeyConfig {
            method: false,
            host: true,
            query: CacheQuery::Full,
        }
    }
}

/// `cache.key.query`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheQuery {
    Full,
    Sorted,
    Ignore,
}

/// `cache.purge_method`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PurgeMethodConfig {
    /// `enabled` (default false).
    pub enabled: bool,
    /// `allow`: client networks (`127.0.0.1/32`, `10.0.0.0/8`, `::1/128`) allowed to purge.
    pub allow: Vec<IpNet>,
}

/// An address block: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    pub addr: std::net::IpAddr,
    pub prefix: u8,
}

impl IpNet {
    /// Parses `ADDR/LEN` or a bare address (a single host).
    pub fn parse(text: &str) -> Result<IpNet, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: std::net::IpAddr = addr
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| format!("`{text}` is not an address or network (e.g. 10.0.0.0/8)"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{text}`: the prefix length must be 0..={max}"))?,
        };
        Ok(IpNet { addr, prefix })
    }

    /// Whether `ip` lies in the block (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr::{V4, V6};
        let ip = match ip {
            V6(v6) => v6.to_ipv4_mapped().map_or(V6(v6), V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (V4(net), V4(ip)) => prefix_match(&net.octets(), &ip.octets(), self.prefix),
            (V6(net), V6(ip)) => prefix_match(&net.octets(), &ip.octets(), self.prefix),
            _ => false,
        }
    }
}

fn prefix_match(net: &[u8], ip: &[u8], prefix: u8) -> bool {
    let (whole, bits) = (usize::from(prefix / 8), prefix % 8);
    if net[..whole] != ip[..whole] {
        return false;
    }
    bits == 0 || (net[whole] ^ ip[whole]) >> (8 - bits) == 0
}

/// `passive_health:` of a cluster — HAProxy/nginx style `max_fails` within `fail_timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PassiveHealthConfig {
    /// `max_fails` (default 3): failed requests within `fail_timeout` that take a backend out;
    /// 0 never takes one out. One client request counts at most one failure.
    pub max_fails: u32,
    /// `fail_timeout` (default 10s): the window failures are counted in, and (without active
    /// health checks) how long a backend stays out.
    pub fail_timeout: Duration,
}

impl Default for PassiveHealthConfig {
    fn default() -> Self {
        PassiveHealthConfig {
            max_fails: 3,
            fail_timeout: Duration::from_secs(10),
        }
    }
}

/// `forwarded_for:` of a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ForwardedFor {
    /// Append the client's address to the list the client sent (behind a trusted proxy).
    #[default]
    Append,
    /// Send only the client's address (an edge deployment: what clients send is not trusted).
    Replace,
}

/// `x_sendfile:` of a cluster.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct XSendfileConfig {
    /// `enabled` (default false): without it the headers are relayed like any other.
    pub enabled: bool,
    /// `roots`: absolute directories files may be served from; required when enabled.
    pub roots: Vec<PathBuf>,
}

/// `client_routing:` — exactly one of `{ cookie: NAME }` or `{ header: NAME }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientRouting {
    Cookie(String),
    Header(String),
}

/// One bucket of a cluster's HTB tree.
#[derive(Debug, Clone, PartialEq)]
pub struct BucketConfig {
    /// `name`: unique within the cluster, `[A-Za-z0-9_.-]+`, not `root`.
    pub name: String,
    /// `rate`: assured share of the parent, `0 <= rate <= ceil`.
    pub rate: f64,
    /// `ceil`: maximum share of the parent, `ceil <= 1`.
    pub ceil: f64,
    /// `match`: which requests belong here; `None` = only via `default_bucket` or the API.
    pub rule: Option<BucketRule>,
    /// `buckets`: nested children; their rates sum to at most 1.
    pub children: Vec<BucketConfig>,
}

/// `match:` of a bucket; every given condition must hold.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BucketRule {
    /// `host`: exact, case-insensitive, port ignored.
    pub host: Option<String>,
    /// `path_prefix`.
    pub path_prefix: Option<String>,
    /// `method`: e.g. `POST` (case-sensitive, as HTTP methods are).
    pub method: Option<String>,
    /// `header: { name, value }`: the request has this header with exactly this value.
    pub header: Option<(String, String)>,
}

/// One entry of a cluster's `backends:`.
#[derive(Debug, Clone, PartialEq)]
pub struct BackendConfig {
    /// `name`, unique within the cluster.
    pub name: String,
    pub url: BackendUrl,
    /// `capacity` concurrent requests (default 0 = unlimited).
    pub capacity: u32,
    /// `role` (default active).
    pub role: Role,
    /// `enabled` (default true).
    pub enabled: bool,
    /// `fastcgi`: this backend's own script mapping, overriding the cluster's.
    pub fastcgi: Option<FastCgiConfig>,
    /// `health`: this backend's own health checks — its keys laid over the cluster's `health`
    /// (checks run even when the cluster has none); `None` = the cluster's apply.
    pub health: Option<HealthConfig>,
    /// `terminate_protection` (default false): the API refuses to delete the backend (403)
    /// until it is turned off.
    pub terminate_protection: bool,
    /// How an `https://` backend is reached: its `tls` keys laid over its cluster's
    /// `backend_tls`, with the client configuration built from them; `None` for every other URL.
    pub tls: Option<BackendTls>,
    /// The `discover:` entry this backend was found by; `None` for a backend of the file or
    /// the API.
    pub discovered_by: Option<String>,
}

impl BackendConfig {
    /// The health checks that apply to this backend in `cluster`: its own, else the cluster's.
    pub fn health_in<'a>(&'a self, cluster: &'a ClusterConfig) -> Option<&'a HealthConfig> {
        self.health.as_ref().or(cluster.health.as_ref())
    }
}

/// A parsed backend address: `http://host:port`, `https://host:port`, `http://[v6]:port`,
/// `http+unix:///path`, `fastcgi://host:port`, `fastcgi+unix:///path`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BackendUrl {
    pub protocol: Protocol,
    pub endpoint: Endpoint,
    /// `https://`: HTTP over TLS (TCP endpoints only).
    pub tls: bool,
    /// The URL as written, for logs and the API.
    pub text: String,
}

/// Where a backend listens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// Host name or IP literal (without brackets) and port; names are resolved at connect time.
    Tcp {
        host: String,
        port: u16,
    },
    Unix(PathBuf),
}
