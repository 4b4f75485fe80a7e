//! HAProxy-compatible statistics: the `show stat` CSV (`GET /haproxy?stats;csv`) and the HTML
//! stats page (`GET /haproxy?stats`, rendered by `haproxy_html` from the same rows).
//!
//! Control plane: pure functions of the cluster snapshots and [`Extras`].
//!
//! **Layout.** The columns are HAProxy 2.5's, names and order exactly (`pxname` ...
//! `agg_server_check_status`, 101 columns, as a real 2.5 `show stat` prints them before the
//! optional per-module columns). The header is `# ` and the names, each data line has as many
//! fields, and every line ends with a comma, as HAProxy's do. Tools should look columns up by
//! name in the header. Values with a comma, quote or line break are quoted like HAProxy's
//! `csv_enc` does. Rows: one proxy `director` with its `FRONTEND` row (type 0) summing every
//! cluster; then one proxy per cluster, named after it, with a server row per backend (type 2,
//! `sid` = position in the cluster from 1) and its `BACKEND` row (type 1). `pid` is 1, `iid` 1
//! for `director` and 2, 3, ... for the clusters in the order given (the admin surface passes
//! them sorted by name).
//!
//! **Mapping** (a cell is empty when the director does not know the value, or when HAProxy
//! leaves it empty for that row type):
//! - `qcur`/`qmax`: the cluster's queue (backends have no queue of their own: 0); `qlimit`:
//!   the cluster's `queue_limit`, on the `BACKEND` row (HAProxy's per-server `maxqueue` does not
//!   exist here).
//! - `scur`/`smax`: requests in flight now / at most; `slim`: capacity (empty when unlimited);
//!   `stot` and `lbtot`: requests handed to the backend(s), retries included; `req_tot`:
//!   responses sent. `FRONTEND` sums the clusters, so its `smax` is the sum of their peaks.
//! - `bin`/`bout`: request body bytes to backends / response body bytes to clients. On
//!   `BACKEND`, these and `eresp` are at least the sum over the cluster's backends.
//! - `econ` (`BACKEND` only): requests answered with a generated 503/504 because no backend
//!   could take them — HAProxy counts "no server available" there. `eresp`: attempts that
//!   failed because of the backend (connect, I/O, protocol, timeout). `wretr`: retries.
//! - `status`: `FRONTEND` is `OPEN`. A server is `MAINT` when disabled, else `DOWN` when
//!   offline, else `DRAIN` when removed and finishing its requests, else `no check` when the
//!   cluster has no active health checks (what HAProxy prints for a server without `check`;
//!   such a backend can still go `DOWN` by a passive failure), else `UP`. While probes count
//!   toward a change, HAProxy's transitional forms: `UP x/fall` with `x` the failed probes it
//!   can still take before it goes down (fall 3: `UP 2/3` after one failure, `UP 1/3` after
//!   two), `DOWN x/rise` with `x` the successful probes so far (rise 2: `DOWN 1/2`). `BACKEND` is `UP` when a backend is in service, else `DOWN` (also when the
//!   cluster has no backend, where HAProxy would say `UP`: such a cluster answers 503).
//! - `weight`/`uweight`: the capacity, 1 when unlimited (0 `weight` while draining); on
//!   `BACKEND`, the sum over the backends in service. `act`/`bck`: active and standby
//!   backends are active, backups are backup; on `BACKEND`, how many of each are usable.
//! - `chkfail`, `chkdown`: failed probes, online-to-offline transitions. `lastchg`: seconds
//!   since the health last changed; `downtime`: seconds offline in total (both need
//!   [`Extras::now_unix`] where the current period counts).
//! - `check_status`/`check_code`/`check_desc` (only with active checks): `L7OK`/`L7STS` with
//!   the probe's status code, `L7TOUT` (the probe timeout spans connect and exchange),
//!   `L7RSP` (protocol error), `L4CON` (any other connection problem), `INI` before the first
//!   probe.
//! - `rate`/`rate_max` (and `req_rate`/`req_rate_max` on `FRONTEND`) from [`Extras::rates`]:
//!   the last second's rate and the highest per-second rate since director started;
//!   `ttime` is the mean request duration in ms from [`Extras::latency`] (a mean over all
//!   requests, not HAProxy's last 1024). `hrsp_other` is 0: other statuses are not relayed.
//! - `cache_lookups`/`cache_hits` (`FRONTEND` and `BACKEND`, as HAProxy fills them for HTTP
//!   proxies): the cluster's object cache lookups and fresh hits, 0 while its cache is off;
//!   `FRONTEND` sums the clusters. Server rows leave them empty.
//! - `mode` is `http`; `algo` maps the scheduler: `rr` roundrobin, `least-load` leastconn,
//!   `chance` random.

use std::borrow::Cow;

use super::metrics::{Extras, Rate, Scope};
use crate::cache::CacheSnapshot;
use crate::cluster::backend_status::BackendStatus;
use crate::cluster::cluster_state::{BackendState, ClusterState};
use crate::cluster::health::Health;
use crate::cluster::health::ProbeResult;
use crate::config::Role;
use crate::stats::{GaugeSnapshot, TrafficSnapshot};

/// HAProxy 2.5's `show stat` columns, in order.
const COLUMN_NAMES: &str = "pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,\
    eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,\
    lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,\
    hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,\
    comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,\
    agent_code,agent_duration,check_desc,agent_desc,check_rise,check_fall,check_health,agent_rise,\
    agent_fall,agent_health,addr,cookie,mode,algo,conn_rate,conn_rate_max,conn_tot,intercepted,dcon,dses,\
    wrew,connect,reuse,cache_lookups,cache_hits,srv_icur,src_ilim,qtime_max,ctime_max,rtime_max,\
    ttime_max,eint,idle_conn_cur,safe_conn_cur,used_conn_cur,need_conn_est,uweight,agg_server_check_status";

/// The `pxname` of the frontend row.
const FRONTEND_PROXY: &str = "director";

/// HAProxy's `type` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RowType {
    Frontend = 0,
    Backend = 1,
    Server = 2,
}

/// The HAProxy `show stat` CSV of `states`.
pub fn csv(states: &[ClusterState], extras: &Extras) -> String {
    let mut out = format!("# {},\n", COLUMN_NAMES);
    for row in rows(states, extras) {
        for cell in &row.cells {
            out.push_str(&csv_field(cell));
            out.push(',');
        }
        out.push('\n');
    }
    out
}

/// One line of the stats: every column's text, empty when unknown.
#[derive(Debug, Clone)]
pub(super) struct Row {
    cells: Vec<String>,
}

impl Row {
    fn new(pxname: &str, svname: &str, kind: RowType, iid: usize, sid: usize) -> Row {
        let mut row = Row {
            cells: vec![String::new(); COLUMN_NAMES.split(',').count()],
        };
        row.set("pxname", pxname);
        row.set("svname", svname);
        row.set("type", kind as u8);
        row.set("pid", 1);
        row.set("iid", iid);
        row.set("sid", sid);
        row.set("mode", "http");
        row
    }

    fn set(&mut self, column: &str, value: impl ToString) {
        let index = column_index(column);
        debug_assert!(index.is_some(), "unknown HAProxy column {column}");
        if let Some(cell) = index.and_then(|i| self.cells.get_mut(i)) {
            *cell = value.to_string();
        }
    }

    fn set_some(&mut self, column: &str, value: Option<impl ToString>) {
        if let Some(v) = value {
            self.set(column, v);
        }
    }

    /// The text of `column` (empty when unknown or not a column).
    pub(super) fn get(&self, column: &str) -> &str {
        column_index(column)
            .and_then(|i| self.cells.get(i))
            .map_or("", String::as_str)
    }

    /// Fills what every row type reports the same way from its counters.
    fn traffic(&mut self, stats: &TrafficSnapshot, rate: Option<Rate>) {
        self.set("scur", stats.in_flight.current);
        self.set("smax", stats.in_flight.max);
        self.set("stot", stats.in_flight.total);
        self.set("bin", stats.bytes_in);
        self.set("bout", stats.bytes_out);
        for (class, count) in ["hrsp_1xx", "hrsp_2xx", "hrsp_3xx", "hrsp_4xx", "hrsp_5xx"]
            .into_iter()
            .zip(stats.responses)
        {
            self.set(class, count);
        }
        self.set("hrsp_other", 0);
        self.set("req_tot", stats.responses.iter().sum::<u64>());
        self.set_some("rate", rate.map(|r| per_second(r.current)));
        self.set_some("rate_max", rate.map(|r| per_second(r.max)));
    }

    /// The object cache's lookups and hits (all zero while it is off).
    fn cache(&mut self, cache: &CacheSnapshot) {
        self.set("cache_lookups", cache.lookups);
        self.set("cache_hits", cache.hits);
    }
}

fn column_index(column: &str) -> Option<usize> {
    COLUMN_NAMES.split(',').position(|c| c == column)
}

/// A rate as HAProxy prints it: whole events per second.
fn per_second(rate: f64) -> u64 {
    rate.round() as u64
}

/// Every row, in HAProxy's order: the frontend, then per cluster its servers and `BACKEND`.
pub(super) fn rows(states: &[ClusterState], extras: &Extras) -> Vec<Row> {
    let mut rows = vec![frontend_row(states, extras)];
    for (index, cluster) in states.iter().enumerate() {
        let iid = index + 2;
        for (position, backend) in cluster.backends.iter().enumerate() {
            rows.push(server_row(cluster, backend, iid, position + 1, extras));
        }
        rows.push(backend_row(cluster, iid, extras));
    }
    rows
}

fn frontend_row(states: &[ClusterState], extras: &Extras) -> Row {
    let mut row = Row::new(FRONTEND_PROXY, "FRONTEND", RowType::Frontend, 1, 0);
    let total = states
        .iter()
        .fold(TrafficSnapshot::default(), |sum, c| add(&sum, &cluster_totals(c)));
    let rate = extras.rate(&Scope::Director);
    row.traffic(&total, rate);
    row.set_some("req_rate", rate.map(|r| per_second(r.current)));
    row.set_some("req_rate_max", rate.map(|r| per_second(r.max)));
    let capacity: Option<u64> = states.iter().map(|c| c.capacity.map(u64::from)).sum();
    row.set_some("slim", capacity);
    row.set("status", "OPEN");
    let cache = CacheSnapshot::sum(states.iter().map(|c| &c.cache));
    row.cache(&cache);
    row
}

fn server_row(
    cluster: &ClusterState,
    backend: &BackendState,
    iid: usize,
    sid: usize,
    extras: &Extras,
) -> Row {
    let status = &backend.status;
    let mut row = Row::new(&cluster.name, &status.name, RowType::Server, iid, sid);
    let scope = Scope::backend(&cluster.name, &status.name);
    row.traffic(&backend.stats, extras.rate(&scope));
    row.set("qcur", backend.stats.queued.current);
    row.set("qmax", backend.stats.queued.max);
    row.set_some("slim", (status.capacity > 0).then_some(status.capacity));
    row.set("lbtot", backend.stats.in_flight.total);
    row.set("eresp", backend.stats.failures);
    row.set("wretr", backend.stats.retries);
    row.set("status", server_status(cluster.settings.health_checks, status));
    row.set("weight", if status.draining { 0 } else { weight(status) });
    row.set("uweight", weight(status));
    let backup = status.role == Role::Backup;
    row.set("act", u8::from(!backup));
    row.set("bck", u8::from(backup));
    row.set("chkfail", status.checks_failed);
    row.set("chkdown", status.times_down);
    row.set_some(
        "lastchg",
        extras
            .now_unix
            .map(|now| whole_seconds(now - status.health_changed_at)),
    );
    row.set_some("downtime", downtime(status, extras.now_unix));
    if cluster.settings.health_checks {
        let check = CheckStatus::of(status.last_probe.as_ref());
        row.set("check_status", check.name);
        row.set_some("check_code", check.code);
        row.set("check_desc", check.description);
    }
    row.set_some("ttime", mean_ms(extras, &scope));
    row
}

fn backend_row(cluster: &ClusterState, iid: usize, extras: &Extras) -> Row {
    let mut row = Row::new(&cluster.name, "BACKEND", RowType::Backend, iid, 0);
    let scope = Scope::cluster(&cluster.name);
    let totals = cluster_totals(cluster);
    row.traffic(&totals, extras.rate(&scope));
    row.set("qcur", cluster.stats.queued.current);
    row.set("qmax", cluster.stats.queued.max);
    row.set("qlimit", cluster.settings.queue_limit);
    row.set_some("slim", cluster.capacity);
    row.set("lbtot", cluster.stats.in_flight.total);
    row.set("econ", cluster.stats.dropped);
    row.set("eresp", totals.failures);
    row.set("wretr", cluster.stats.retries);
    let serving: Vec<&BackendStatus> = in_service(&cluster.backends).collect();
    row.set("status", if serving.is_empty() { "DOWN" } else { "UP" });
    let total_weight: u64 = serving.iter().map(|s| weight(s)).sum();
    row.set("weight", total_weight);
    row.set("uweight", total_weight);
    let (backups, actives): (Vec<&BackendStatus>, Vec<&BackendStatus>) = cluster
        .backends
        .iter()
        .map(|b| &b.status)
        .filter(|s| usable(s))
        .partition(|s| s.role == Role::Backup);
    row.set("act", actives.len());
    row.set("bck", backups.len());
    row.set("algo", algorithm(cluster.settings.scheduler));
    row.set_some("ttime", mean_ms(extras, &scope));
    row.cache(&cluster.cache);
    row
}

/// The server `status` word (see the module docs for the precedence and the transitional
/// forms).
fn server_status(health_checks: bool, status: &BackendStatus) -> Cow<'static, str> {
    let progress = status
        .health_progress
        .filter(|p| p.toward != status.health && p.count < p.needed);
    Cow::Borrowed(if !status.enabled {
        "MAINT"
    } else if status.health == Health::Offline {
        return match progress {
            // HAProxy: "DOWN <health>/<rise>", its health counting the successes so far.
            Some(p) => Cow::Owned(format!("DOWN {}/{}", p.count, p.needed)),
            None => Cow::Borrowed("DOWN"),
        };
    } else if status.draining {
        "DRAIN"
    } else if !health_checks {
        "no check"
    } else {
        return match progress {
            // HAProxy: "UP <health - rise + 1>/<fall>", the failures it can still take.
            Some(p) => Cow::Owned(format!("UP {}/{}", p.needed - p.count, p.needed)),
            None => Cow::Borrowed("UP"),
        };
    })
}

/// Enabled, online and not draining.
fn usable(status: &BackendStatus) -> bool {
    status.usable() && !status.draining
}

/// The usable backends that take requests now: active and standby ones, or the backups when
/// none of those is usable.
fn in_service(backends: &[BackendState]) -> impl Iterator<Item = &BackendStatus> {
    let candidates = || backends.iter().map(|b| &b.status).filter(|s| usable(s));
    let primary = candidates().any(|s| s.role != Role::Backup);
    candidates().filter(move |s| (s.role == Role::Backup) != primary)
}

fn weight(status: &BackendStatus) -> u64 {
    u64::from(status.capacity.max(1))
}

/// HAProxy's name for the scheduler.
fn algorithm(scheduler: &str) -> &'static str {
    match scheduler {
        "rr" => "roundrobin",
        "least-load" => "leastconn",
        "chance" => "random",
        _ => "",
    }
}

/// The cluster's counters, with failures and body bytes raised to at least their sum over the
/// backends: the data plane counts those per backend, not always for the cluster too.
fn cluster_totals(cluster: &ClusterState) -> TrafficSnapshot {
    let backends_sum = |counter: fn(&TrafficSnapshot) -> u64| -> u64 {
        cluster.backends.iter().map(|b| counter(&b.stats)).sum()
    };
    let mut totals = cluster.stats.clone();
    totals.failures = totals.failures.max(backends_sum(|s| s.failures));
    totals.bytes_in = totals.bytes_in.max(backends_sum(|s| s.bytes_in));
    totals.bytes_out = totals.bytes_out.max(backends_sum(|s| s.bytes_out));
    totals
}

/// Seconds offline in total: the earlier periods, plus the current one when offline (which
/// needs the current time).
fn downtime(status: &BackendStatus, now_unix: Option<f64>) -> Option<u64> {
    match status.health {
        Health::Online => Some(whole_seconds(status.downtime_before)),
        Health::Offline => {
            now_unix.map(|now| whole_seconds(status.downtime_before + (now - status.health_changed_at)))
        }
    }
}

fn whole_seconds(seconds: f64) -> u64 {
    seconds.max(0.0) as u64
}

fn mean_ms(extras: &Extras, scope: &Scope) -> Option<u64> {
    let mean = extras.latency(scope)?.mean_seconds()?;
    Some((mean * 1000.0).round() as u64)
}

/// The sum of two counter snapshots (maxima are added: an upper bound of the joint peak).
fn add(a: &TrafficSnapshot, b: &TrafficSnapshot) -> TrafficSnapshot {
    let gauge = |x: GaugeSnapshot, y: GaugeSnapshot| GaugeSnapshot {
        current: x.current + y.current,
        max: x.max + y.max,
        total: x.total + y.total,
    };
    TrafficSnapshot {
        in_flight: gauge(a.in_flight, b.in_flight),
        queued: gauge(a.queued, b.queued),
        responses: std::array::from_fn(|i| a.responses[i] + b.responses[i]),
        failures: a.failures + b.failures,
        retries: a.retries + b.retries,
        dropped: a.dropped + b.dropped,
        bytes_in: a.bytes_in + b.bytes_in,
        bytes_out: a.bytes_out + b.bytes_out,
        tunnels: gauge(a.tunnels, b.tunnels),
    }
}

/// The last probe in HAProxy's check vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CheckStatus {
    name: &'static str,
    code: Option<u16>,
    description: &'static str,
}

impl CheckStatus {
    fn of(probe: Option<&ProbeResult>) -> CheckStatus {
        let Some(probe) = probe else {
            return CheckStatus::new("INI", None, "Initializing");
        };
        let code = probe
            .detail
            .strip_prefix("status ")
            .and_then(|c| c.trim().parse().ok());
        if probe.ok {
            CheckStatus::new("L7OK", code, "Layer7 check passed")
        } else if code.is_some() {
            CheckStatus::new("L7STS", code, "Layer7 wrong status")
        } else if probe.detail == "timeout" {
            CheckStatus::new("L7TOUT", None, "Layer7 timeout")
        } else if probe.detail.starts_with("protocol error") {
            CheckStatus::new("L7RSP", None, "Layer7 invalid response")
        } else {
            CheckStatus::new("L4CON", None, "Layer4 connection problem")
        }
    }

    fn new(name: &'static str, code: Option<u16>, description: &'static str) -> CheckStatus {
        CheckStatus {
            name,
            code,
            description,
        }
    }
}

/// A CSV field as HAProxy's `csv_enc` writes it: quoted (quotes doubled) when it holds a
/// comma, a quote or a line break.
fn csv_field(text: &str) -> Cow<'_, str> {
    if text.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\"")).into()
    } else {
        text.into()
    }
}

/// Hand-built cluster states shared by the stats renderers' tests.
#[cfg(test)]
pub(crate) mod test_fixtures {
    use std::time::Duration;

    use crate::admin::metrics::{Extras, LatencyHistogram, Rate, Scope};
    use crate::cluster::admission::BucketState;
    use crate::cluster::backend_status::BackendStatus;
    use crate::cluster::cluster_state::{BackendState, CacheSettingsView, ClusterState, SettingsView};
    use crate::cluster::health::Health;
    use crate::cluster::health::ProbeResult;
    use crate::config::Role;
    use crate::stats::{GaugeSnapshot, TrafficSnapshot};

    /// The fixtures' "now", seconds since the Unix epoch.
    pub const NOW: f64 = 1_700_000_000.0;

    pub fn traffic(in_flight: (u64, u64, u64), responses: [u64; 5]) -> TrafficSnapshot {
        let (current, max, total) = in_flight;
        TrafficSnapshot {
            in_flight: GaugeSnapshot { current, max, total },
            responses,
            ..TrafficSnapshot::default()
        }
    }

    fn probe(ok: bool, detail: &str) -> Option<ProbeResult> {
        Some(ProbeResult {
            ok,
            detail: detail.to_owned(),
            at: NOW - 1.0,
        })
    }

    /// An enabled, online backend whose last probe passed, without traffic.
    pub fn backend(name: &str, role: Role, capacity: u32) -> BackendState {
        BackendState {
            terminate_protection: false,
            discovered_by: None,
            status: BackendStatus {
                id: 0,
                name: name.to_owned(),
                url: format!("http://127.0.0.1:9000/{name}"),
                role,
                capacity,
                enabled: true,
                health: Health::Online,
                health_changed_at: NOW - 100.0,
                health_reason: None,
                last_probe: probe(true, "status 200"),
                draining: false,
                checks_failed: 0,
                times_down: 0,
                downtime_before: 0.0,
                health_progress: None,
            },
            stats: TrafficSnapshot::default(),
        }
    }

    fn bucket(name: &str, in_use: u32, queued: u32, assured: Option<u32>) -> BucketState {
        BucketState {
            name: name.to_owned(),
            parent: None,
            rate: 0.5,
            ceil: 1.0,
            assured,
            ceiling: assured.map(|a| a * 2),
            in_use,
            borrowed: 0,
            queued,
            queued_max: queued,
            queued_total: 7,
            dropped: 1,
            served: 50,
        }
    }

    pub fn cluster(name: &str, health_checks: bool, backends: Vec<BackendState>) -> ClusterState {
        ClusterState {
            cache: Default::default(),
            discovery: Vec::new(),
            name: name.to_owned(),
            settings: SettingsView {
                enabled: true,
                scheduler: "least-load",
                queue_limit: 128,
                queue_timeout_ms: 10_000,
                retry_after: 10,
                max_retry_count: 3,
                enqueue_on_unavailable: false,
                connect_timeout_ms: 4_000,
                read_timeout_ms: 30_000,
                write_timeout_ms: 8_000,
                sticky_offline: false,
                health_checks,
                x_sendfile: false,
                max_fails: 3,
                fail_timeout_ms: 10_000,
                forwarded_for: "append",
                client_body_timeout_ms: 60_000,
                via: "director".to_owned(),
                on_client_abort: "close",
                cache: CacheSettingsView::new(&crate::config::CacheConfig::default()),
                upgrades: crate::cluster::cluster_state::UpgradesView::new(&Default::default()),
            },
            capacity: None,
            in_use: 0,
            buckets: Vec::new(),
            backends,
            stats: TrafficSnapshot::default(),
        }
    }

    /// `shop` (health checks) with backends up (`app01`), down (`app02`), disabled (`app03`),
    /// draining (`app04`), standby with a failed probe (`app05`) and backup (`php01`); `api`
    /// (no health checks, round robin, unlimited) with `api01` online and `api02` offline.
    pub fn clusters() -> Vec<ClusterState> {
        let mut app01 = backend("app01", Role::Active, 8);
        app01.stats = traffic((3, 6, 100), [0, 90, 2, 3, 5]);
        (app01.stats.failures, app01.stats.retries) = (1, 1);
        (app01.stats.bytes_in, app01.stats.bytes_out) = (1_000, 5_000);
        let mut app02 = backend("app02", Role::Active, 8);
        app02.status.health = Health::Offline;
        app02.status.health_changed_at = NOW - 30.0;
        app02.status.last_probe = probe(false, "connection refused");
        (app02.status.checks_failed, app02.status.times_down) = (4, 2);
        app02.status.downtime_before = 10.0;
        app02.stats.failures = 2;
        let mut app03 = backend("app03", Role::Active, 8);
        app03.status.enabled = false;
        let mut app04 = backend("app04", Role::Active, 8);
        app04.status.draining = true;
        let mut app05 = backend("app05", Role::Standby, 8);
        app05.status.last_probe = probe(false, "status 503");
        let php01 = backend("php01", Role::Backup, 16);
        let mut shop = cluster("shop", true, vec![app01, app02, app03, app04, app05, php01]);
        shop.capacity = Some(16);
        shop.stats = traffic((3, 8, 130), [0, 100, 2, 3, 9]);
        shop.stats.queued = GaugeSnapshot {
            current: 2,
            max: 5,
            total: 20,
        };
        (shop.stats.dropped, shop.stats.retries) = (4, 2);
        shop.buckets = vec![bucket("vip", 1, 0, Some(4)), bucket("main", 2, 2, None)];

        let mut api01 = backend("api01", Role::Active, 0);
        api01.stats = traffic((1, 2, 10), [0, 9, 0, 0, 1]);
        api01.status.last_probe = None;
        let mut api02 = backend("api02", Role::Active, 4);
        api02.status.health = Health::Offline;
        api02.status.last_probe = None;
        let mut api = cluster("api", false, vec![api01, api02]);
        api.settings.scheduler = "rr";
        api.stats = traffic((1, 2, 10), [0, 9, 0, 0, 1]);
        vec![shop, api]
    }

    /// Uptime 1h2m5s, rates for the director, `shop` and `shop/app01`, and a duration
    /// histogram for `shop/app01` (100 requests, mean 0.2 s).
    pub fn extras() -> Extras {
        let rate = |current, max| Rate { current, max };
        let histogram = LatencyHistogram {
            buckets: vec![(0.1, 50), (0.5, 90), (1.0, 99), (f64::INFINITY, 100)],
            sum_seconds: 20.0,
            count: 100,
        };
        Extras {
            uptime: Duration::from_secs(3_725),
            now_unix: Some(NOW),
            rates: [
                (Scope::Director, rate(5.0, 12.0)),
                (Scope::cluster("shop"), rate(4.0, 10.0)),
                (Scope::backend("shop", "app01"), rate(3.0, 7.4)),
            ]
            .into(),
            latency: [(Scope::backend("shop", "app01"), histogram)].into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::test_fixtures::{backend, cluster, clusters, extras, NOW};
    use super::*;

    type CsvRow = HashMap<String, String>;

    /// The CSV's header names and its rows as name -> value maps (fixture names hold no comma).
    fn parse(csv: &str) -> (Vec<String>, Vec<CsvRow>) {
        let mut lines = csv.lines();
        let header = lines
            .next()
            .and_then(|h| h.strip_prefix("# "))
            .expect("header line");
        let names: Vec<String> = header.split(',').map(str::to_owned).collect();
        let rows = lines
            .map(|line| {
                names
                    .iter()
                    .cloned()
                    .zip(line.split(',').map(str::to_owned))
                    .collect()
            })
            .collect();
        (names, rows)
    }

    /// Asserts the cells of the row `pxname/svname`; `expected` is `column=value;...`.
    fn assert_cells(rows: &[CsvRow], pxname: &str, svname: &str, expected: &str) {
        let row = rows
            .iter()
            .find(|r| r["pxname"] == pxname && r["svname"] == svname)
            .unwrap_or_else(|| panic!("no row {pxname}/{svname}"));
        for pair in expected.split(';') {
            let (column, value) = pair.split_once('=').expect("column=value");
            assert_eq!(row[column], value, "{pxname}/{svname} {column}");
        }
    }

    #[test]
    fn every_line_has_the_header_field_count_and_ends_with_a_comma() {
        let csv = csv(&clusters(), &extras());
        assert!(csv.starts_with("# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,"));
        let counts: Vec<usize> = csv.lines().map(|l| l.split(',').count()).collect();
        assert_eq!(
            counts.len(),
            1 + 1 + 7 + 3,
            "header, frontend, shop (6 + BACKEND), api (2 + BACKEND)"
        );
        assert!(counts.iter().all(|&c| c == counts[0]), "{counts:?}");
        assert!(csv.lines().all(|l| l.ends_with(',')));
        let (names, rows) = parse(&csv);
        assert_eq!(
            names.len(),
            102,
            "101 columns and the empty field after the last comma"
        );
        assert_eq!(names[100], "agg_server_check_status");
        let distinct: std::collections::HashSet<&String> = names.iter().collect();
        assert_eq!(distinct.len(), names.len());
        let order: Vec<&str> = rows.iter().map(|r| r["svname"].as_str()).collect();
        assert_eq!(order[0], "FRONTEND");
        assert_eq!((order[7], order[10]), ("BACKEND", "BACKEND"));
    }

    #[test]
    fn server_rows_carry_the_backend_state() {
        let (_, rows) = parse(&csv(&clusters(), &extras()));
        let app01 = "type=2;scur=3;smax=6;stot=100;lbtot=100;slim=8;hrsp_2xx=90;hrsp_5xx=5;req_tot=100;\
            eresp=1;wretr=1;bin=1000;bout=5000;status=UP;weight=8;act=1;bck=0;check_status=L7OK;\
            check_code=200;rate=3;rate_max=7;ttime=200;pid=1;iid=2;sid=1;lastchg=100;downtime=0";
        assert_cells(&rows, "shop", "app01", app01);
        let app02 = "status=DOWN;chkfail=4;chkdown=2;lastchg=30;downtime=40;check_status=L4CON;\
            check_code=;sid=2";
        assert_cells(&rows, "shop", "app02", app02);
        assert_cells(&rows, "shop", "app03", "status=MAINT;weight=8");
        assert_cells(&rows, "shop", "app04", "status=DRAIN;weight=0;uweight=8");
        assert_cells(
            &rows,
            "shop",
            "app05",
            "status=UP;act=1;bck=0;check_status=L7STS;check_code=503",
        );
        assert_cells(&rows, "shop", "php01", "status=UP;act=0;bck=1;weight=16");
        let api01 = "status=no check;slim=;weight=1;check_status=;iid=3;rate=;hrsp_5xx=1";
        assert_cells(&rows, "api", "api01", api01);
        assert_cells(&rows, "api", "api02", "status=DOWN");
    }

    #[test]
    fn backend_rows_aggregate_their_cluster() {
        let (_, rows) = parse(&csv(&clusters(), &extras()));
        let shop = "type=1;status=UP;qcur=2;qmax=5;qlimit=128;scur=3;stot=130;slim=16;hrsp_5xx=9;\
            econ=4;eresp=3;wretr=2;act=2;bck=1;weight=16;algo=leastconn;sid=0;rate=4;chkfail=;\
            bin=1000;bout=5000";
        assert_cells(&rows, "shop", "BACKEND", shop);
        assert_cells(
            &rows,
            "api",
            "BACKEND",
            "status=UP;slim=;weight=1;act=1;algo=roundrobin",
        );
    }

    #[test]
    fn rise_and_fall_progress_shows_haproxys_transitional_states() {
        use crate::cluster::health::HealthProgress;
        let with = |health: Health, progress: Option<(Health, u32, u32)>| {
            let mut b = backend("b", Role::Active, 1);
            b.status.health = health;
            b.status.health_progress = progress.map(|(toward, count, needed)| HealthProgress {
                toward,
                count,
                needed,
            });
            let (_, rows) = parse(&csv(&[cluster("c", true, vec![b])], &Extras::default()));
            rows[1]["status"].clone()
        };
        assert_eq!(with(Health::Online, None), "UP");
        assert_eq!(with(Health::Online, Some((Health::Offline, 1, 3))), "UP 2/3");
        assert_eq!(with(Health::Online, Some((Health::Offline, 2, 3))), "UP 1/3");
        assert_eq!(with(Health::Offline, Some((Health::Online, 1, 2))), "DOWN 1/2");
        assert_eq!(with(Health::Offline, None), "DOWN");
        // Stale progress (the flip already happened) is not shown.
        assert_eq!(with(Health::Offline, Some((Health::Offline, 2, 3))), "DOWN");
    }

    #[test]
    fn backups_weigh_in_only_when_no_primary_is_usable() {
        let mut down = backend("a", Role::Active, 8);
        down.status.health = Health::Offline;
        let states = [cluster("c", true, vec![down, backend("b", Role::Backup, 3)])];
        let (_, rows) = parse(&csv(&states, &Extras::default()));
        assert_cells(&rows, "c", "BACKEND", "status=UP;weight=3;act=0;bck=1");
        let (_, rows) = parse(&csv(&[cluster("empty", true, Vec::new())], &Extras::default()));
        assert_cells(&rows, "empty", "BACKEND", "status=DOWN;weight=0");
    }

    #[test]
    fn frontend_row_sums_the_clusters() {
        let (_, rows) = parse(&csv(&clusters(), &extras()));
        let front = "type=0;status=OPEN;scur=4;smax=10;stot=140;hrsp_2xx=109;hrsp_5xx=10;req_tot=124;\
            slim=;qcur=;rate=5;req_rate=5;req_rate_max=12;iid=1;sid=0;mode=http;bin=1000;eresp=";
        assert_cells(&rows, FRONTEND_PROXY, "FRONTEND", front);
    }

    #[test]
    fn cache_columns_show_lookups_and_hits_on_frontend_and_backend_rows() {
        let mut states = clusters();
        states[0].cache = CacheSnapshot {
            enabled: true,
            lookups: 40,
            hits: 30,
            misses: 10,
            ..CacheSnapshot::default()
        };
        let (_, rows) = parse(&csv(&states, &extras()));
        assert_cells(&rows, "shop", "BACKEND", "cache_lookups=40;cache_hits=30");
        assert_cells(&rows, "api", "BACKEND", "cache_lookups=0;cache_hits=0");
        assert_cells(
            &rows,
            FRONTEND_PROXY,
            "FRONTEND",
            "cache_lookups=40;cache_hits=30",
        );
        assert_cells(&rows, "shop", "app01", "cache_lookups=;cache_hits=");

        states[1].cache = CacheSnapshot {
            enabled: true,
            lookups: 2,
            hits: 1,
            ..CacheSnapshot::default()
        };
        let (_, rows) = parse(&csv(&states, &extras()));
        assert_cells(
            &rows,
            FRONTEND_PROXY,
            "FRONTEND",
            "cache_lookups=42;cache_hits=31",
        );
        assert_cells(&rows, "api", "BACKEND", "cache_lookups=2;cache_hits=1");
    }

    #[test]
    fn ages_need_the_current_time() {
        let (_, rows) = parse(&csv(&clusters(), &Extras::default()));
        assert_cells(&rows, "shop", "app02", "lastchg=;downtime=");
        assert_cells(&rows, "shop", "app01", "lastchg=;downtime=0;ttime=;rate=");
    }

    #[test]
    fn probe_details_map_to_haproxy_check_statuses() {
        let status = |ok: bool, detail: &str| {
            let probe = ProbeResult {
                ok,
                detail: detail.to_owned(),
                at: NOW,
            };
            let check = CheckStatus::of(Some(&probe));
            (check.name, check.code)
        };
        assert_eq!(status(true, "status 204"), ("L7OK", Some(204)));
        assert_eq!(status(false, "status 500"), ("L7STS", Some(500)));
        assert_eq!(status(false, "timeout"), ("L7TOUT", None));
        assert_eq!(status(false, "protocol error: bad header"), ("L7RSP", None));
        assert_eq!(status(false, "connection refused"), ("L4CON", None));
        assert_eq!(
            status(false, "No such file or directory (os error 2)"),
            ("L4CON", None)
        );
        assert_eq!(CheckStatus::of(None).name, "INI");
    }

    #[test]
    fn fields_with_separators_are_quoted() {
        assert_eq!(csv_field("app01"), "app01");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        let states = [cluster("odd,name", false, vec![backend("x", Role::Active, 1)])];
        assert!(csv(&states, &Extras::default()).contains("\n\"odd,name\",x,"));
    }
}
