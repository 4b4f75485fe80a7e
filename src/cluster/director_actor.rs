//! The Director actor: owns the configuration (the `config.yaml` document, the runtime
//! changes laid over it and the state file), the set of clusters and routes, and publishes the
//! topology.
//!
//! Control plane; runs on a worker arbiter, which it shares with proxied requests: so the
//! file I/O (reading `config.yaml`, reading the state file at start, writing it with its
//! fsyncs) and the validation run on the blocking pool, and the actor answers when they are
//! done. Every
//! change — a reload of `config.yaml` ([`Reload`]) or a runtime change from the admin API
//! ([`ChangeCluster`] for one cluster's content, [`ChangeTopology`] to create or delete a
//! cluster or change the route list) — is validated as a whole document by the config loader first; an
//! invalid one changes nothing. Changes are serialised (an atomic response each), so each one
//! starts from the document the previous one left. A valid one is written to the state file,
//! then applied as a diff: clusters get [`ApplyConfig`] by message, never awaited (unchanged
//! backends keep their health, counters and connections; removed ones drain), new clusters
//! start, removed ones drain, and a new topology with the new routes is published.
//!
//! It also owns backend discovery by DNS (`discovery_set`): each cluster is applied with its
//! `discover:` entries expanded into the backends of their last good answers, and a changed
//! answer ([`Resolved`], from a Discovery actor) re-applies its cluster the same way — not
//! validated or persisted again: only addresses changed, and they are DNS's, not the state
//! file's.
//! With `cluster_state` configured, the runtime changes are also shared with the other
//! replicas (see [`shared`]): a local change is pushed after it is adopted, and the shared
//! overlay, as it changes, is adopted like a reload adopts the state file.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use arc_swap::ArcSwap;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::oneshot;

use super::arbiters::Arbiters;
use super::cluster_actor::{ApplyConfig, ClusterActor, RunningCluster, SharedClusters};
use super::discovery::DiscoveryStatus;
use super::discovery_actor::Resolved;
use super::discovery_set::DiscoverySet;
pub use super::next_config::ChangeError;
use super::next_config::{edited, off_worker, reread, reshaped, restore, save_state, NextConfig};
use super::replica_share::ReplicaShare;
use super::road_warrior::{road_warrior, road_warrior_settings};
use super::topology::{ClusterHandle, Route, SharedTopology, Topology};
use crate::config::edit::ClusterEdit;
use crate::config::overlay::{self, Overlay};
use crate::config::state_file::StateFileError;
use crate::config::topology_edit::TopologyEdit;
use crate::config::{self, ConfigError, ConfigErrors, Document, SharedAdmin, SharedHaproxyCompat};
use crate::config::{ClusterConfig, Config, RouteTarget};

pub mod shared;

/// What `/api/v1/status` reports about the configuration.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigStatus {
    /// Bumped by every applied change (reload or runtime change); 1 at start-up.
    pub generation: u64,
    pub config_path: Option<PathBuf>,
    pub state_file: Option<PathBuf>,
    pub last_reload: Option<ReloadOutcome>,
    /// A problem with the state file (unreadable, corrupt, unwritable), if the last use had one.
    pub state_file_error: Option<String>,
    /// Why the last runtime changes shared by the other replicas were not applied here (they
    /// don't fit this replica's `config.yaml`), if they weren't.
    pub shared_state_error: Option<String>,
    /// How each `discover:` entry is doing.
    pub discovery: Vec<DiscoveryStatus>,
}

/// The result of the last reload.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadOutcome {
    /// Seconds since the Unix epoch.
    pub at: f64,
    /// What asked for it: `watch`, `signal`, `api`.
    pub trigger: String,
    pub ok: bool,
    /// Every problem with its path; the last good configuration stays in force.
    pub errors: Vec<ConfigError>,
}

/// Shared, swapped by the Director actor.
pub type SharedStatus = Arc<ArcSwap<ConfigStatus>>;

/// Command: re-read `config.yaml` and apply it (with the runtime changes over it).
#[derive(Message, Debug)]
#[rtype(result = "Result<u64, ConfigErrors>")]
pub struct Reload {
    pub trigger: &'static str,
}

/// Command: change one cluster at runtime.
#[derive(Message, Debug)]
#[rtype(result = "Result<u64, ChangeError>")]
pub struct ChangeCluster {
    pub cluster: String,
    pub edit: ClusterEdit,
}

/// Command: create or delete a cluster, or change the route list, at runtime.
#[derive(Message, Debug)]
#[rtype(result = "Result<u64, ChangeError>")]
pub struct ChangeTopology {
    pub edit: TopologyEdit,
}

/// Query: the route list in force, as configured (the document's `routes`, in match order).
#[derive(Message, Debug)]
#[rtype(result = "Vec<Value>")]
pub struct GetRoutes;

/// The actor owning the configuration and the topology.
pub struct DirectorActor {
    /// `config.yaml` as last read (before the overlay).
    yaml: Value,
    /// The document in force: `yaml` with the runtime changes.
    document: Value,
    config: Config,
    overlay: Overlay,
    config_path: Option<PathBuf>,
    clusters: BTreeMap<String, RunningCluster>,
    /// Clusters of "road warrior" routes by URL, with the configuration they were given.
    road_warriors: BTreeMap<String, (RunningCluster, ClusterConfig)>,
    topology: SharedTopology,
    /// Every running cluster with its actor, published with the topology for the admin surface.
    running: SharedClusters,
    status: SharedStatus,
    arbiters: Arbiters,
    /// Told once the first topology is published.
    published: Option<oneshot::Sender<()>>,
    /// The admin listener's settings, swapped on reload (see [`Self::with_admin`]).
    admin: SharedAdmin,
    /// The `haproxy_compat` settings, swapped on reload (see [`Self::with_haproxy_compat`]).
    haproxy_compat: Option<SharedHaproxyCompat>,
    /// Where the runtime changes are shared with other replicas, once attached.
    shared: Option<shared::SharedLink>,
    /// This replica's share of each backend's capacity (the whole while it is alone).
    share: ReplicaShare,
    /// The `discover:` entries' actors, last good answers and status.
    discovery: DiscoverySet,
    /// The actor's own address (set when it starts), where Discovery actors report.
    me: Option<Addr<DirectorActor>>,
}

impl DirectorActor {
    /// Takes `document` as the base; once started, the actor lays the state file (if
    /// configured) over it before anything else, and then publishes the first topology.
    pub fn new(
        document: Document,
        topology: SharedTopology,
        running: SharedClusters,
        status: SharedStatus,
        arbiters: Arbiters,
        published: oneshot::Sender<()>,
    ) -> Self {
        let Document { raw, config, path } = document;
        DirectorActor {
            yaml: raw.clone(),
            document: raw,
            config,
            overlay: Overlay::default(),
            config_path: path,
            clusters: BTreeMap::new(),
            road_warriors: BTreeMap::new(),
            topology,
            running,
            status,
            arbiters,
            published: Some(published),
            admin: SharedAdmin::default(),
            haproxy_compat: None,
            shared: None,
            share: ReplicaShare::default(),
            discovery: DiscoverySet::default(),
            me: None,
        }
    }

    /// Publishes the admin section of every reloaded configuration to `admin` (the admin
    /// listener's token and limits), as [`config::publish_reloaded_admin`] allows.
    pub fn with_admin(mut self, admin: SharedAdmin) -> Self {
        self.admin = admin;
        self
    }

    /// Publishes the `haproxy_compat` section of every reloaded configuration to `shared`.
    pub fn with_haproxy_compat(mut self, shared: SharedHaproxyCompat) -> Self {
        self.haproxy_compat = Some(shared);
        self
    }

    fn set_state_file_error(&self, error: Option<String>) {
        let mut status = ConfigStatus::clone(&self.status.load());
        status.state_file_error = error;
        self.status.store(Arc::new(status));
    }

    /// Brings clusters and routes to `self.config` and publishes the topology. The cluster
    /// actors are told by message, never awaited: a later message to one of them (an admin
    /// query) finds the change applied, as its mailbox runs in order.
    /// `operator_set_enabled` names the cluster and backend whose `enabled` an operator has
    /// just set (see [`ApplyConfig::operator_set_enabled`]).
    fn apply(&mut self, operator_set_enabled: Option<(&str, &str)>) {
        if let Some(me) = &self.me {
            self.discovery
                .reconcile(&self.config, &me.clone().recipient(), &self.arbiters);
        }
        let mut clusters = BTreeMap::new();
        for (name, config) in &self.config.clusters {
            // With the backends its `discover:` entries last found.
            let config = &self.discovery.expand(name, config);
            let cluster = match self.clusters.remove(name) {
                Some(cluster) => {
                    cluster.actor.do_send(ApplyConfig {
                        config: config.clone(),
                        operator_set_enabled: operator_set_enabled
                            .filter(|(cluster, _)| cluster == name)
                            .map(|(_, backend)| backend.to_owned()),
                    });
                    cluster
                }
                None => self.start_cluster(name, config),
            };
            clusters.insert(name.clone(), cluster);
        }
        for (name, gone) in std::mem::take(&mut self.clusters) {
            log::info!("cluster '{name}' removed; its backends drain");
            retire(&gone);
        }
        self.clusters = clusters;
        let mut road_warriors: BTreeMap<String, (RunningCluster, ClusterConfig)> = BTreeMap::new();
        let mut routes = Vec::new();
        for route in &self.config.routes {
            let cluster = match &route.target {
                RouteTarget::Cluster(name) => self.clusters.get(name).map(|c| c.handle.clone()),
                RouteTarget::Backend(url) => {
                    // Several routes to one address share its cluster (the first one's cache
                    // and script mapping).
                    let wanted = road_warrior(url, route);
                    let (cluster, config) =
                        match (road_warriors.get(&url.text), self.road_warriors.remove(&url.text)) {
                            (Some(kept), _) => kept.clone(),
                            (None, Some((cluster, config))) if config == wanted => (cluster, config),
                            (None, Some((cluster, _))) => {
                                cluster.actor.do_send(ApplyConfig::from_config(wanted.clone()));
                                (cluster, wanted)
                            }
                            (None, None) => (self.start_cluster(&url.text, &wanted), wanted),
                        };
                    let handle = cluster.handle.clone();
                    road_warriors.insert(url.text.clone(), (cluster, config));
                    Some(handle)
                }
            };
            // Validation guarantees the cluster exists; a missing one is skipped, not a panic.
            if let Some(cluster) = cluster {
                routes.push(Route {
                    host: route.host.as_ref().map(|h| h.to_ascii_lowercase()),
                    path_prefix: route.path_prefix.clone(),
                    cluster,
                    timeouts: route.timeouts,
                });
            }
        }
        for (_, (gone, _)) in std::mem::take(&mut self.road_warriors) {
            retire(&gone);
        }
        self.road_warriors = road_warriors;
        let running: BTreeMap<String, RunningCluster> = self
            .clusters
            .iter()
            .chain(
                self.road_warriors
                    .iter()
                    .map(|(url, (cluster, _))| (url, cluster)),
            )
            .map(|(name, cluster)| (name.clone(), cluster.clone()))
            .collect();
        let clusters = running.values().map(|c| c.handle.clone()).collect();
        let topology = Topology { routes, clusters };
        log::info!(
            "topology: {} routes, {} clusters",
            topology.routes.len(),
            topology.clusters.len()
        );
        self.topology.store(Some(Arc::new(topology)));
        self.running.store(Arc::new(running));
        let mut status = ConfigStatus::clone(&self.status.load());
        status.generation += 1;
        status.discovery = self.discovery.statuses();
        self.status.store(Arc::new(status));
    }

    /// Publishes the discovery entries' status.
    fn publish_discovery_status(&self) {
        let mut status = ConfigStatus::clone(&self.status.load());
        status.discovery = self.discovery.statuses();
        self.status.store(Arc::new(status));
    }

    fn start_cluster(&self, name: &str, config: &ClusterConfig) -> RunningCluster {
        let handle = ClusterHandle::new(name, config);
        let prepared = ClusterActor::prepare(&handle, config, self.share);
        ClusterActor::start(handle, config, prepared, &self.arbiters, self.share)
    }

    /// Takes over a configuration worked out off the worker, records how writing the state
    /// file went, and brings clusters and routes to it.
    fn adopt(
        &mut self,
        next: NextConfig,
        saved: Option<Result<(), StateFileError>>,
        operator_set_enabled: Option<(&str, &str)>,
    ) {
        if let Some(yaml) = next.yaml {
            self.yaml = yaml;
        }
        self.document = next.document;
        self.config = next.config;
        self.overlay = next.overlay;
        match saved {
            None => {}
            Some(Ok(())) => self.set_state_file_error(None),
            Some(Err(e)) => {
                log::error!("{e}");
                self.set_state_file_error(Some(e.to_string()));
            }
        }
        self.apply(operator_set_enabled);
    }

    /// Tells whoever started the actor that the first topology is published.
    fn tell_published(&mut self) {
        if let Some(tx) = self.published.take() {
            let _ = tx.send(());
        }
    }

    /// Records the outcome of a reload in the status.
    fn record_reload(&self, trigger: &str, errors: Vec<ConfigError>) -> u64 {
        let mut status = ConfigStatus::clone(&self.status.load());
        status.last_reload = Some(ReloadOutcome {
            at: unix_now(),
            trigger: trigger.to_owned(),
            ok: errors.is_empty(),
            errors,
        });
        let generation = status.generation;
        self.status.store(Arc::new(status));
        generation
    }
}

/// Drains a cluster that left the configuration: its backends finish what they have in
/// flight; the handle goes with the last request holding it.
fn retire(cluster: &RunningCluster) {
    let mut empty = road_warrior_settings();
    empty.backends.clear();
    cluster.actor.do_send(ApplyConfig::from_config(empty));
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Actor for DirectorActor {
    type Context = Context<Self>;

    /// Restores the runtime changes from the state file on the blocking pool (no message is
    /// handled meanwhile), then publishes the first topology with them.
    fn started(&mut self, ctx: &mut Context<Self>) {
        self.me = Some(ctx.address());
        let Some(path) = self.config.state_file.clone() else {
            self.apply(None);
            self.tell_published();
            return;
        };
        let yaml = self.yaml.clone();
        let restoring = off_worker(move || restore(&path, yaml));
        ctx.wait(restoring.into_actor(self).map(|restored, act, _| {
            match restored.and_then(|restored| restored) {
                Ok(next) => act.adopt(next, None, None),
                Err(problem) => {
                    act.set_state_file_error(Some(problem));
                    act.apply(None);
                }
            }
            act.tell_published();
        }));
    }
}

/// The configuration file is read, validated and the state file written on the blocking
/// pool; the answer comes once the new configuration is in force in the Director and every
/// affected cluster actor has been told (a later query to one finds it applied). Atomic: the
/// next reload or change waits, so each one starts from the latest document.
impl Handler<Reload> for DirectorActor {
    type Result = AtomicResponse<Self, Result<u64, ConfigErrors>>;

    fn handle(&mut self, Reload { trigger }: Reload, _: &mut Context<Self>) -> Self::Result {
        let Some(path) = self.config_path.clone() else {
            return AtomicResponse::new(Box::pin(fut::ready(Err(ConfigErrors(vec![ConfigError {
                path: String::new(),
                message: "director was started without a configuration file".to_owned(),
            }])))));
        };
        let overlay = self.overlay.clone();
        let shown = path.display().to_string();
        let work = off_worker(move || {
            reread(&path, overlay).map(|next| {
                let saved = save_state(next.config.state_file.as_deref(), &next.overlay);
                (next, saved)
            })
        });
        AtomicResponse::new(Box::pin(work.into_actor(self).map(move |done, act, _| {
            let done = done.unwrap_or_else(|e| {
                Err(ConfigErrors(vec![ConfigError {
                    path: String::new(),
                    message: format!("the reload was interrupted: {e}"),
                }]))
            });
            match done {
                Ok((next, saved)) => {
                    if next.config.cluster_state != act.config.cluster_state {
                        log::warn!("cluster_state changed in {shown}; it takes effect at the next restart");
                    }
                    if next.config.proxy.listen != act.config.proxy.listen {
                        log::warn!(
                            "reload: proxy.listen changed; listeners (addresses, tls, redirect_to_https, hsts) \
                             change only with a restart (certificate files reload by themselves)"
                        );
                    }
                    config::publish_reloaded_admin(&act.admin, next.config.admin.as_ref());
                    if let Some(shared) = &act.haproxy_compat {
                        shared.store(Arc::new(next.config.haproxy_compat.clone()));
                    }
                    act.adopt(next, saved, None);
                    log::info!("configuration reloaded from {shown} ({trigger})");
                    Ok(act.record_reload(trigger, Vec::new()))
                }
                Err(errors) => {
                    log::error!(
                        "reload of {shown} failed ({trigger}); the last good configuration stays in force:\n{errors}"
                    );
                    act.record_reload(trigger, errors.0.clone());
                    Err(errors)
                }
            }
        })))
    }
}

/// The edit is validated against the whole document and the state file written on the
/// blocking pool; answered like [`Reload`], and as atomically.
impl Handler<ChangeCluster> for DirectorActor {
    type Result = AtomicResponse<Self, Result<u64, ChangeError>>;

    fn handle(
        &mut self,
        ChangeCluster { cluster, edit }: ChangeCluster,
        _: &mut Context<Self>,
    ) -> Self::Result {
        if !self.clusters.contains_key(&cluster) {
            return AtomicResponse::new(Box::pin(fut::ready(Err(ChangeError::UnknownCluster(cluster)))));
        }
        if let Some(answer) = self.change_discovered(&cluster, &edit) {
            return AtomicResponse::new(Box::pin(fut::ready(answer)));
        }
        let operator_set_enabled = edit
            .sets_enabled()
            .map(|backend| (cluster.clone(), backend.to_owned()));
        let base = overlay::cluster_of(&self.yaml, &cluster);
        self.change(
            move |document, overlay| edited(document, &cluster, edit, base, overlay),
            operator_set_enabled,
        )
    }
}

/// Validated, persisted and answered like [`ChangeCluster`]. A new cluster starts; a deleted
/// one drains like a removed backend.
impl Handler<ChangeTopology> for DirectorActor {
    type Result = AtomicResponse<Self, Result<u64, ChangeError>>;

    fn handle(&mut self, ChangeTopology { edit }: ChangeTopology, _: &mut Context<Self>) -> Self::Result {
        let yaml = self.yaml.clone();
        self.change(
            move |document, overlay| reshaped(document, edit, &yaml, overlay),
            None,
        )
    }
}

impl DirectorActor {
    /// An edit of a discovered backend, answered here (`None` for any other edit): only
    /// switching it off and on is an operator's (see [`DiscoverySet::operator_edit`]); the
    /// cluster is re-applied with the switch as an operator's.
    fn change_discovered(&mut self, cluster: &str, edit: &ClusterEdit) -> Option<Result<u64, ChangeError>> {
        let backend = match self.discovery.operator_edit(cluster, edit)? {
            Ok(backend) => backend,
            Err(refused) => return Some(Err(ChangeError::Edit(refused))),
        };
        if let (Some(config), Some(running)) = (self.config.clusters.get(cluster), self.clusters.get(cluster))
        {
            running.actor.do_send(ApplyConfig {
                config: self.discovery.expand(cluster, config),
                operator_set_enabled: Some(backend),
            });
        }
        Some(Ok(self.status.load().generation))
    }
}

/// A discovery round is over: a changed answer re-applies its cluster with the backends it
/// stands for (appearing ones added, vanishing ones drained by the Cluster actor, as for any
/// removed backend); a failed one only changes the status.
impl Handler<Resolved> for DirectorActor {
    type Result = ();

    fn handle(&mut self, msg: Resolved, _: &mut Context<Self>) {
        if let Some(name) = self.discovery.resolved(msg) {
            if let (Some(config), Some(cluster)) = (self.config.clusters.get(&name), self.clusters.get(&name))
            {
                let expanded = self.discovery.expand(&name, config);
                cluster.actor.do_send(ApplyConfig::from_config(expanded));
            }
        }
        self.publish_discovery_status();
    }
}

impl Handler<GetRoutes> for DirectorActor {
    type Result = MessageResult<GetRoutes>;

    fn handle(&mut self, _: GetRoutes, _: &mut Context<Self>) -> Self::Result {
        MessageResult(overlay::routes_of(&self.document))
    }
}

impl DirectorActor {
    /// Runs a runtime change: `make` turns the document in force and the overlay into the next
    /// configuration, which is then persisted — both on the blocking pool — and adopted.
    fn change(
        &mut self,
        make: impl FnOnce(Value, Overlay) -> Result<NextConfig, ChangeError> + Send + 'static,
        operator_set_enabled: Option<(String, String)>,
    ) -> AtomicResponse<Self, Result<u64, ChangeError>> {
        let (document, overlay) = (self.document.clone(), self.overlay.clone());
        let state_file = self.config.state_file.clone();
        let work = off_worker(move || {
            make(document, overlay).map(|next| {
                let saved = save_state(state_file.as_deref(), &next.overlay);
                (next, saved)
            })
        });
        AtomicResponse::new(Box::pin(work.into_actor(self).map(move |done, act, _| {
            let (next, saved) = done.map_err(ChangeError::Interrupted)??;
            let operator = operator_set_enabled
                .as_ref()
                .map(|(cluster, backend)| (cluster.as_str(), backend.as_str()));
            act.adopt(next, saved, operator);
            act.push_shared();
            Ok(act.status.load().generation)
        })))
    }
}
