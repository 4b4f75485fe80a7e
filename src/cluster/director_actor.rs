//! The Director actor: owns the set of clusters and routes, and publishes the topology.
//!
//! Control plane; runs on a worker arbiter. It builds every cluster (handle, backends,
//! admission) synchronously before publishing, so the first published topology is complete.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::oneshot;

use super::arbiters::Arbiters;
use super::cluster_actor::ClusterActor;
use super::topology::{ClusterHandle, Route, SharedTopology, Topology};
use crate::config::{BackendConfig, BackendUrl, ClusterConfig, Config, Role, RouteTarget, SchedulerKind};

/// The actor owning the topology.
pub struct DirectorActor {
    config: Config,
    topology: SharedTopology,
    arbiters: Arbiters,
    /// Told once the first topology is published.
    published: Option<oneshot::Sender<()>>,
}

impl DirectorActor {
    pub fn new(
        config: Config,
        topology: SharedTopology,
        arbiters: Arbiters,
        published: oneshot::Sender<()>,
    ) -> Self {
        DirectorActor {
            config,
            topology,
            arbiters,
            published: Some(published),
        }
    }

    fn build(&self) -> Topology {
        let mut clusters = Vec::new();
        for (name, config) in &self.config.clusters {
            clusters.push(self.start_cluster(name, config));
        }
        let mut routes = Vec::new();
        for route in &self.config.routes {
            let cluster = match &route.target {
                RouteTarget::Cluster(name) => clusters.iter().find(|c| &c.name == name).cloned(),
                RouteTarget::Backend(url) => {
                    let cluster = self.start_cluster(&url.text, &road_warrior(url));
                    clusters.push(cluster.clone());
                    Some(cluster)
                }
            };
            // Validation guarantees the cluster exists; a missing one is skipped, not a panic.
            if let Some(cluster) = cluster {
                routes.push(Route {
                    host: route.host.as_ref().map(|h| h.to_ascii_lowercase()),
                    path_prefix: route.path_prefix.clone(),
                    cluster,
                });
            }
        }
        Topology { routes, clusters }
    }

    fn start_cluster(&self, name: &str, config: &ClusterConfig) -> Arc<ClusterHandle> {
        let handle = ClusterHandle::new(name, config);
        let prepared = ClusterActor::prepare(&handle, config);
        ClusterActor::start(handle.clone(), config, prepared, &self.arbiters);
        handle
    }
}

/// A one-backend cluster for a "road warrior" route: unlimited, no queue, no retries.
fn road_warrior(url: &BackendUrl) -> ClusterConfig {
    ClusterConfig {
        scheduler: SchedulerKind::RoundRobin,
        queue_limit: 0,
        queue_timeout: Duration::from_secs(1),
        retry_after: 0,
        max_retry_count: 0,
        enqueue_on_unavailable: false,
        connect_timeout: Duration::from_secs(4),
        read_timeout: Duration::from_secs(30),
        write_timeout: Duration::from_secs(8),
        backends: vec![BackendConfig {
            name: url.text.clone(),
            url: url.clone(),
            capacity: 0,
            role: Role::Active,
            enabled: true,
            fastcgi: None,
        }],
        buckets: Vec::new(),
        default_bucket: None,
        debug_headers: false,
        health: None,
        sticky_offline: false,
        client_routing: None,
        fastcgi: None,
        x_sendfile: Default::default(),
    }
}

impl Actor for DirectorActor {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Context<Self>) {
        let topology = self.build();
        log::info!(
            "topology: {} routes, {} clusters",
            topology.routes.len(),
            topology.clusters.len()
        );
        self.topology.store(Some(Arc::new(topology)));
        if let Some(tx) = self.published.take() {
            let _ = tx.send(());
        }
    }
}
