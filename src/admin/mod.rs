//! The admin surface: a separate actix-web server on the admin listener with the JSON API,
//! HAProxy-compatible stats, Prometheus metrics, the event stream and the dashboard.
//!
//! Control plane. Handlers read published snapshots and talk to the actors by message
//! (`send().await`); nothing here is on the request path of proxied traffic.

pub mod api;
pub mod api_support;
pub mod auth;
pub mod basic_auth;
pub mod cache_api;
pub mod dashboard;
pub mod error;
pub mod events;
pub mod haproxy;
pub mod haproxy_compat;
pub mod haproxy_html;
pub mod live;
pub mod metrics;
pub mod session;
pub mod stats_routes;
pub mod topology_api;

use std::sync::Arc;
use std::time::Instant;

use actix::Addr;
use actix_web::{middleware, web, App};
use events::EventStreams;

use crate::cluster::cluster_actor::{GetClusterState, RunningCluster, SharedClusters};
use crate::cluster::cluster_state::ClusterState;
use crate::cluster::director_actor::{DirectorActor, SharedStatus};
use crate::cluster::ClusterHandle;
use crate::config::{AdminConfig, SharedAdmin, SharedHaproxyCompat};
use crate::listener::tls::TlsListeners;
use crate::listener::{self, Bound, ServerOptions};
use crate::replicas::sync_actor::StateSync;
use crate::replicas::SharedReplication;
use basic_auth::BasicAuth;
use live::LiveStats;

/// Largest request body the admin API accepts.
pub const MAX_BODY: usize = 64 * 1024;

/// What every admin handler shares.
pub struct AdminState {
    /// The running clusters and their actors, as the Director last published them.
    pub clusters: SharedClusters,
    pub status: SharedStatus,
    pub director: Addr<DirectorActor>,
    /// When the process started (for uptime).
    pub started: Instant,
    /// The admin settings in force (token, session lifetime, stream limit); the Director actor
    /// swaps them on reload.
    pub settings: SharedAdmin,
    /// The stats collector's samples and event stream.
    pub live: Arc<LiveStats>,
    /// The open `/api/v1/events` streams, against `admin.max_event_streams`.
    pub streams: web::Data<EventStreams>,
    /// The `haproxy_compat` settings in force; the Director actor swaps them on reload.
    pub haproxy_compat: SharedHaproxyCompat,
    /// HTTP Basic verification of the stats users, shared by both listeners.
    pub basic_auth: BasicAuth,
    /// The runtime state shared with other replicas, when `cluster_state` is configured.
    pub replication: Option<Replication>,
    /// The certificates of the TLS listeners, for the status.
    pub tls: TlsListeners,
}

/// This replica's link to the shared runtime state: its status, and where purges go.
#[derive(Clone)]
pub struct Replication {
    pub status: SharedReplication,
    pub sync: Addr<StateSync>,
}

impl AdminState {
    pub fn new(
        clusters: SharedClusters,
        status: SharedStatus,
        director: Addr<DirectorActor>,
        settings: SharedAdmin,
        live: Arc<LiveStats>,
    ) -> AdminState {
        let streams = web::Data::new(EventStreams::new(settings.clone()));
        AdminState {
            clusters,
            status,
            director,
            started: Instant::now(),
            settings,
            live,
            streams,
            haproxy_compat: SharedHaproxyCompat::default(),
            basic_auth: BasicAuth::default(),
            replication: None,
            tls: TlsListeners::default(),
        }
    }

    /// Shows the certificates of `tls` in the status.
    pub fn with_tls(mut self, tls: TlsListeners) -> Self {
        self.tls = tls;
        self
    }

    /// Reports on (and passes purges to) the shared runtime state.
    pub fn with_replication(mut self, replication: Option<Replication>) -> Self {
        self.replication = replication;
        self
    }

    /// Serves HAProxy's URIs as `shared` says (default: `haproxy_compat`'s defaults).
    pub fn with_haproxy_compat(mut self, shared: SharedHaproxyCompat) -> Self {
        self.haproxy_compat = shared;
        self
    }

    /// The admin settings in force now.
    pub fn settings(&self) -> Option<Arc<AdminConfig>> {
        self.settings.load_full()
    }

    /// The admin token in force now; `None`: the listener is open.
    pub fn token(&self) -> Option<String> {
        self.settings.load().as_ref()?.token.clone()
    }

    /// The running clusters, in name order.
    pub fn clusters(&self) -> Vec<Arc<ClusterHandle>> {
        self.clusters.load().values().map(|c| c.handle.clone()).collect()
    }

    /// A running cluster by name.
    pub fn cluster(&self, name: &str) -> Option<Arc<ClusterHandle>> {
        self.running(name).map(|c| c.handle)
    }

    /// A running cluster and its actor by name.
    pub fn running(&self, name: &str) -> Option<RunningCluster> {
        self.clusters.load().get(name).cloned()
    }

    /// The full state of every cluster, asked of each cluster actor.
    pub async fn cluster_states(&self) -> Vec<ClusterState> {
        let running: Vec<RunningCluster> = self.clusters.load().values().cloned().collect();
        let mut states = Vec::new();
        for cluster in &running {
            if let Some(state) = self.cluster_state(cluster).await {
                states.push(state);
            }
        }
        states
    }

    /// The full state of one cluster, asked of its actor, with how its `discover:` entries
    /// are doing.
    pub async fn cluster_state(&self, cluster: &RunningCluster) -> Option<ClusterState> {
        let mut state = cluster.actor.send(GetClusterState).await.ok()?;
        state.discovery = (self.status.load().discovery.iter())
            .filter(|d| d.cluster == state.name)
            .cloned()
            .collect();
        Some(state)
    }
}

/// The admin HTTP server (one worker: the admin surface is light), under the connection
/// guard of `listener` with `options`. Each request is tracked on its connection by the
/// outermost middleware, so event streams are not cut by the head deadline.
pub fn server(
    state: web::Data<AdminState>,
    listener: Bound,
    options: ServerOptions,
) -> std::io::Result<actix_web::dev::Server> {
    let live = web::Data::new(state.live.clone());
    let streams = state.streams.clone();
    listener::http_server(vec![listener], options, move || {
        App::new()
            .app_data(state.clone())
            .app_data(live.clone())
            .app_data(streams.clone())
            .app_data(web::PayloadConfig::new(MAX_BODY))
            .wrap(middleware::from_fn(haproxy_compat::admin_front))
            .wrap(middleware::from_fn(auth::guard))
            .wrap(middleware::from_fn(listener::track_requests))
            .configure(routes)
    })
}

/// Registers every admin route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    stats_routes::routes(cfg);
    api::routes(cfg);
    dashboard::routes(cfg);
}
