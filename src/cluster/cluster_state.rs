//! A cluster's state as readers see it (control plane, pure): settings, buckets, backends and
//! counters, as the admin API, dashboard, HAProxy stats and `/metrics` show them. Built by the
//! Cluster actor (the only one that knows its configuration and draining backends) in answer to
//! `GetClusterState`; plain serde structs, no actor types.

use std::time::Duration;

use serde::Serialize;

use super::admission::BucketState;
use super::backend_status::BackendStatus;
use super::discovery::DiscoveryStatus;
use crate::cache::CacheSnapshot;
use crate::config::{
    CacheConfig, CacheQuery, CacheUpdate, ClusterConfig, ForwardedFor, OnClientAbort, SchedulerKind,
};
use crate::stats::TrafficSnapshot;

/// A cluster's state and stats, for readers.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterState {
    pub name: String,
    pub settings: SettingsView,
    /// Root capacity (`None` = unlimited) and tokens in use.
    pub capacity: Option<u32>,
    pub in_use: u32,
    pub buckets: Vec<BucketState>,
    pub backends: Vec<BackendState>,
    pub stats: TrafficSnapshot,
    /// The object cache's counters (`enabled: false` while it is off).
    pub cache: CacheSnapshot,
    /// How the cluster's `discover:` entries are doing (added by the admin surface from the
    /// Director's status; left out when the cluster has none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub discovery: Vec<DiscoveryStatus>,
}

/// A cluster's settings as readers see them.
#[derive(Debug, Clone, Serialize)]
pub struct SettingsView {
    /// The cluster's maintenance switch (`enabled`): `false` answers every request with 503.
    pub enabled: bool,
    pub scheduler: &'static str,
    pub queue_limit: usize,
    pub queue_timeout_ms: u64,
    pub retry_after: u32,
    pub max_retry_count: u32,
    pub enqueue_on_unavailable: bool,
    pub connect_timeout_ms: u64,
    pub read_timeout_ms: u64,
    pub write_timeout_ms: u64,
    pub sticky_offline: bool,
    pub health_checks: bool,
    pub x_sendfile: bool,
    /// `passive_health.max_fails` / `fail_timeout`.
    pub max_fails: u32,
    pub fail_timeout_ms: u64,
    pub forwarded_for: &'static str,
    pub client_body_timeout_ms: u64,
    /// `via`: the pseudonym in the cluster's `Via` entry.
    pub via: String,
    /// `on_client_abort`: `close`, `notify` or `ignore`.
    pub on_client_abort: &'static str,
    /// The object cache's settings (`cache:`).
    pub cache: CacheSettingsView,
    /// WebSocket and other `Upgrade` tunnels (`upgrades:`).
    pub upgrades: UpgradesView,
}

/// A cluster's `upgrades:` settings as readers see them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UpgradesView {
    pub enabled: bool,
    pub hold_capacity: bool,
    pub idle_timeout_ms: u64,
    /// `None`: no limit.
    pub max_lifetime_ms: Option<u64>,
}

impl UpgradesView {
    pub fn new(c: &crate::config::UpgradesConfig) -> UpgradesView {
        UpgradesView {
            enabled: c.enabled,
            hold_capacity: c.hold_capacity,
            idle_timeout_ms: millis(c.idle_timeout),
            max_lifetime_ms: c.max_lifetime.map(millis),
        }
    }
}

/// A cluster's `cache:` settings as readers see them (the `purge_method` networks left out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CacheSettingsView {
    pub enabled: bool,
    pub max_memory: u64,
    pub max_object_size: u64,
    pub default_ttl_ms: u64,
    /// `locked` or `shadowed`.
    pub update: &'static str,
    pub lock_timeout_ms: u64,
    pub stale_if_error_ms: u64,
    pub stale_while_revalidate_ms: u64,
    pub stale_on_status: Vec<u16>,
    pub max_variants: usize,
    /// Whether the method and the host are part of the key.
    pub key_method: bool,
    pub key_host: bool,
    /// `full`, `sorted` or `ignore`.
    pub key_query: &'static str,
    pub ignore_client_no_cache: bool,
    /// The `PURGE` method is accepted (from the allowed networks).
    pub purge_method: bool,
}

impl CacheSettingsView {
    /// The `cache:` settings of `c`.
    pub fn new(c: &CacheConfig) -> CacheSettingsView {
        CacheSettingsView {
            enabled: c.enabled,
            max_memory: c.max_memory,
            max_object_size: c.max_object_size,
            default_ttl_ms: millis(c.default_ttl),
            update: match c.update {
                CacheUpdate::Locked => "locked",
                CacheUpdate::Shadowed => "shadowed",
            },
            lock_timeout_ms: millis(c.lock_timeout),
            stale_if_error_ms: millis(c.stale_if_error),
            stale_while_revalidate_ms: millis(c.stale_while_revalidate),
            stale_on_status: c.stale_on_status.clone(),
            max_variants: c.max_variants,
            key_method: c.key.method,
            key_host: c.key.host,
            key_query: match c.key.query {
                CacheQuery::Full => "full",
                CacheQuery::Sorted => "sorted",
                CacheQuery::Ignore => "ignore",
            },
            ignore_client_no_cache: c.ignore_client_no_cache,
            purge_method: c.purge_method.enabled,
        }
    }
}

/// A duration in whole milliseconds (saturating).
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A backend's status and counters.
#[derive(Debug, Clone, Serialize)]
pub struct BackendState {
    #[serde(flatten)]
    pub status: BackendStatus,
    /// `terminate_protection` as configured (false while draining: it is being removed).
    pub terminate_protection: bool,
    /// The `discover:` entry that found the backend; `null` for one of the file or the API.
    pub discovered_by: Option<String>,
    pub stats: TrafficSnapshot,
}

impl SettingsView {
    /// The settings of `c`.
    pub fn new(c: &ClusterConfig) -> SettingsView {
        let ms = millis;
        SettingsView {
            enabled: c.enabled,
            scheduler: match c.scheduler {
                SchedulerKind::RoundRobin => "rr",
                SchedulerKind::Chance => "chance",
                SchedulerKind::LeastLoad => "least-load",
            },
            queue_limit: c.queue_limit,
            queue_timeout_ms: ms(c.queue_timeout),
            retry_after: c.retry_after,
            max_retry_count: c.max_retry_count,
            enqueue_on_unavailable: c.enqueue_on_unavailable,
            connect_timeout_ms: ms(c.connect_timeout),
            read_timeout_ms: ms(c.read_timeout),
            write_timeout_ms: ms(c.write_timeout),
            sticky_offline: c.sticky_offline,
            health_checks: c.health.is_some(),
            x_sendfile: c.x_sendfile.enabled,
            max_fails: c.passive_health.max_fails,
            fail_timeout_ms: ms(c.passive_health.fail_timeout),
            forwarded_for: match c.forwarded_for {
                ForwardedFor::Append => "append",
                ForwardedFor::Replace => "replace",
            },
            client_body_timeout_ms: ms(c.client_body_timeout),
            via: c.via.clone(),
            on_client_abort: match c.on_client_abort {
                OnClientAbort::Close => "close",
                OnClientAbort::Notify => "notify",
                OnClientAbort::Ignore => "ignore",
            },
            cache: CacheSettingsView::new(&c.cache),
            upgrades: UpgradesView::new(&c.upgrades),
        }
    }
}
