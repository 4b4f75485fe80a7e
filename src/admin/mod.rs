//! The admin surface: a separate actix-web server on the admin listener with the JSON API,
//! HAProxy-compatible stats, Prometheus metrics, the event stream and the dashboard.
//!
//! Control plane. Handlers read published snapshots and talk to the actors by message
//! (`send().await`); nothing here is on the request path of proxied traffic.

pub mod auth;
pub mod error;

use std::sync::Arc;
use std::time::Instant;

use actix_web::web;

use crate::cluster::cluster_actor::{ClusterState, GetClusterState};
use crate::cluster::{ClusterHandle, SharedTopology};

/// Largest request body the admin API accepts.
pub const MAX_BODY: usize = 64 * 1024;

/// What every admin handler shares.
pub struct AdminState {
    pub topology: SharedTopology,
    /// When the process started (for uptime).
    pub started: Instant,
    /// Required by every call when set.
    pub token: Option<String>,
}

impl AdminState {
    /// The clusters of the current topology, in name order.
    pub fn clusters(&self) -> Vec<Arc<ClusterHandle>> {
        let topology = self.topology.load_full();
        let mut clusters: Vec<Arc<ClusterHandle>> = topology.map(|t| t.clusters.clone()).unwrap_or_default();
        clusters.sort_by(|a, b| a.name.cmp(&b.name));
        clusters
    }

    /// The full state of every cluster, asked of each cluster actor.
    pub async fn cluster_states(&self) -> Vec<ClusterState> {
        let mut states = Vec::new();
        for cluster in self.clusters() {
            if let Some(actor) = cluster.actor() {
                if let Ok(state) = actor.send(GetClusterState).await {
                    states.push(state);
                }
            }
        }
        states
    }
}

/// Registers every admin route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    let _ = cfg;
}
