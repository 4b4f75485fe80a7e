//! The immutable topology snapshot the data plane reads: routes and cluster handles.
//!
//! Published by the Director actor through an `ArcSwapOption`; a request loads it once. Holds
//! no actor addresses (the control plane keeps those apart).
//! A [`ClusterHandle`] is stable for the life of a cluster; its settings and backend list are
//! swapped by the Cluster actor, its admission state is shared with every worker.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use bytes::Bytes;

use super::admission::{Admission, AdmissionSettings};
use super::backend::Backend;
use super::backend_status::BackendStatus;
use super::classify::{host_matches, Classifier};
use crate::cache::{CacheSnapshot, CacheStats, ClusterCache};
use crate::config::{
    CacheConfig, ClientRouting, ClusterConfig, ForwardedFor, OnClientAbort, PassiveHealthConfig,
    RouteTimeouts, UpgradesConfig,
};

/// Where the current topology lives; `None` until the control plane has started.
pub type SharedTopology = Arc<ArcSwapOption<Topology>>;

/// Routes and clusters at one moment.
#[derive(Debug)]
pub struct Topology {
    pub routes: Vec<Route>,
    pub clusters: Vec<Arc<ClusterHandle>>,
}

/// One compiled route.
#[derive(Debug)]
pub struct Route {
    /// Lower-case host without port; `None` matches any.
    pub host: Option<String>,
    pub path_prefix: String,
    pub cluster: Arc<ClusterHandle>,
    /// The route's own backend timeouts, over the cluster's.
    pub timeouts: RouteTimeouts,
}

impl Topology {
    /// The first route matching `host` (as sent, port allowed) and `path`.
    pub fn route(&self, host: Option<&str>, path: &str) -> Option<&Route> {
        self.routes.iter().find(|r| {
            path.starts_with(r.path_prefix.as_str())
                && r.host
                    .as_deref()
                    .is_none_or(|h| host.is_some_and(|x| host_matches(x, h)))
        })
    }

    pub fn cluster(&self, name: &str) -> Option<&Arc<ClusterHandle>> {
        self.clusters.iter().find(|c| c.name == name)
    }
}

/// Request-path settings of a cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterSettings {
    /// `false` while the cluster is switched off for maintenance: every request gets 503.
    pub enabled: bool,
    pub queue_timeout: Duration,
    pub retry_after: u32,
    pub max_retry_count: u32,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub write_timeout: Duration,
    /// Add `X-Director-Bucket` and `X-Director-Backend` to responses.
    pub debug_headers: bool,
    /// A cookie or header that pins a request to a named backend.
    pub client_routing: Option<ClientRouting>,
    /// Where files named by `X-Sendfile` / `X-Accel-Redirect` may come from; `None` when
    /// X-Sendfile is disabled (the headers are relayed as they are).
    pub x_sendfile_roots: Option<Arc<[PathBuf]>>,
    pub passive_health: PassiveHealthConfig,
    pub forwarded_for: ForwardedFor,
    pub client_body_timeout: Duration,
    /// How long an idle backend connection is kept for reuse.
    pub backend_keep_alive: Duration,
    /// The `Via` entry director adds (`1.1 <via>`).
    pub via: Bytes,
    /// What the backend is told when the client leaves early.
    pub on_client_abort: OnClientAbort,
    /// WebSocket and other `Upgrade` tunnels.
    pub upgrades: UpgradesConfig,
}

impl ClusterSettings {
    pub fn from_config(c: &ClusterConfig) -> (ClusterSettings, AdmissionSettings) {
        let settings = ClusterSettings {
            enabled: c.enabled,
            queue_timeout: c.queue_timeout,
            retry_after: c.retry_after,
            max_retry_count: c.max_retry_count,
            connect_timeout: c.connect_timeout,
            read_timeout: c.read_timeout,
            write_timeout: c.write_timeout,
            debug_headers: c.debug_headers,
            client_routing: c.client_routing.clone(),
            x_sendfile_roots: c.x_sendfile.enabled.then(|| c.x_sendfile.roots.clone().into()),
            passive_health: c.passive_health,
            forwarded_for: c.forwarded_for,
            client_body_timeout: c.client_body_timeout,
            backend_keep_alive: c.backend_keep_alive,
            via: Bytes::from(crate::proto::http_headers::via_entry(&c.via)),
            on_client_abort: c.on_client_abort,
            upgrades: c.upgrades,
        };
        let admission = AdmissionSettings {
            scheduler: c.scheduler,
            queue_limit: c.queue_limit,
            enqueue_on_unavailable: c.enqueue_on_unavailable,
        };
        (settings, admission)
    }
}

/// A cluster as requests and readers see it.
pub struct ClusterHandle {
    pub name: String,
    pub settings: ArcSwap<ClusterSettings>,
    pub admission: Arc<Admission>,
    /// Current members (not draining ones), for stats readers.
    pub backends: ArcSwap<Vec<Arc<Backend>>>,
    /// Status of every member and draining backend (health, last change, last probe),
    /// swapped by the Cluster actor on every change.
    pub statuses: ArcSwap<Vec<BackendStatus>>,
    /// Bucket rules, swapped by the Cluster actor when buckets change.
    pub classifier: ArcSwap<Classifier>,
    /// The object cache; `None` while disabled. Swapped by the Cluster actor.
    pub cache: ArcSwapOption<ClusterCache>,
    /// The cache's counters, kept across settings changes and while disabled.
    cache_stats: Arc<CacheStats>,
}

impl std::fmt::Debug for ClusterHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterHandle")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl ClusterHandle {
    pub fn new(name: &str, config: &ClusterConfig) -> Arc<ClusterHandle> {
        let (settings, admission) = ClusterSettings::from_config(config);
        Arc::new(ClusterHandle {
            name: name.to_owned(),
            settings: ArcSwap::from_pointee(settings),
            admission: Admission::new(admission),
            backends: ArcSwap::from_pointee(Vec::new()),
            statuses: ArcSwap::from_pointee(Vec::new()),
            classifier: ArcSwap::from_pointee(Classifier::default()),
            cache: ArcSwapOption::empty(),
            cache_stats: Arc::default(),
        })
    }

    /// Applies `cache:` settings: builds, reconfigures or drops the cache.
    pub fn configure_cache(&self, config: &CacheConfig) {
        let current = self.cache.load();
        if current.as_ref().is_some_and(|c| c.config == *config) {
            return;
        }
        let next = config.enabled.then(|| {
            Arc::new(ClusterCache::new(
                config,
                current.as_deref(),
                self.cache_stats.clone(),
            ))
        });
        self.cache.store(next);
    }

    /// The cache's counters and size; `None` while it is disabled.
    pub fn cache_snapshot(&self) -> Option<CacheSnapshot> {
        self.cache.load().as_ref().map(|c| c.snapshot())
    }

    /// A current member by name.
    pub fn backend(&self, name: &str) -> Option<Arc<Backend>> {
        self.backends.load().iter().find(|b| b.name == name).cloned()
    }
}
