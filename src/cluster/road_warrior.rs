//! The clusters of "road warrior" routes (control plane, pure): a route that names one
//! address instead of a cluster gets a one-backend cluster of its own, built here by the
//! Director actor.

use std::time::Duration;

use crate::config::{
    self, BackendConfig, BackendUrl, CacheConfig, ClusterConfig, ForwardedFor, OnClientAbort,
    PassiveHealthConfig, Role, RouteConfig, SchedulerKind,
};

/// A one-backend cluster for a "road warrior" route: unlimited, no queue, no retries, never
/// taken out; the route's cache, FastCGI script mapping and backend TLS settings.
pub(super) fn road_warrior(url: &BackendUrl, route: &RouteConfig) -> ClusterConfig {
    let mut config = road_warrior_settings();
    config.cache = route.cache.clone();
    config.fastcgi = route.fastcgi.clone();
    config.backends.push(BackendConfig {
        name: url.text.clone(),
        url: url.clone(),
        capacity: 0,
        role: Role::Active,
        enabled: true,
        fastcgi: None,
        health: None,
        terminate_protection: false,
        discovered_by: None,
        tls: route.tls.clone(),
    });
    config
}

pub(super) fn road_warrior_settings() -> ClusterConfig {
    ClusterConfig {
        enabled: true,
        scheduler: SchedulerKind::RoundRobin,
        queue_limit: 0,
        queue_timeout: Duration::from_secs(1),
        retry_after: 0,
        max_retry_count: 0,
        enqueue_on_unavailable: false,
        connect_timeout: Duration::from_secs(4),
        read_timeout: Duration::from_secs(30),
        write_timeout: Duration::from_secs(8),
        backends: Vec::new(),
        discover: Vec::new(),
        buckets: Vec::new(),
        default_bucket: None,
        debug_headers: false,
        health: None,
        sticky_offline: false,
        client_routing: None,
        fastcgi: None,
        x_sendfile: Default::default(),
        // A road-warrior address is all there is: it is never taken out.
        passive_health: PassiveHealthConfig {
            max_fails: 0,
            ..Default::default()
        },
        forwarded_for: ForwardedFor::Append,
        via: "director".to_owned(),
        client_body_timeout: Duration::from_secs(60),
        backend_keep_alive: config::DEFAULT_BACKEND_KEEP_ALIVE,
        cache: CacheConfig::default(),
        on_client_abort: OnClientAbort::Close,
        upgrades: Default::default(),
    }
}
