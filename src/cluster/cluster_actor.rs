//! The Cluster actor: owns one cluster's membership and configuration, reshapes its admission
//! state and publishes the member list to its [`ClusterHandle`].
//!
//! Control plane; runs on a worker arbiter. It changes in two ways only:
//! - [`ApplyConfig`] from the Director actor (a reload or a runtime change from the admin API,
//!   validated and persisted there) brings it from its current configuration to a new one —
//!   settings, bucket tree, health checks and membership — with the least disturbance.
//!   Backends whose address and script mapping are unchanged keep their actor, health,
//!   counters and pooled connections (a changed role, capacity or `enabled` goes to their
//!   actor as [`Reconfigure`]); removed ones drain (requests in flight finish); ones whose
//!   address changed are drained and replaced by a new backend of the same name.
//! - [`BackendChanged`] from a Backend actor: the cluster recomputes the slot table and root
//!   capacity from scratch (never by deltas) and publishes.
//!
//! - [`SetShare`] from the Director actor when the number of live replicas sharing the
//!   backends changes: each backend's slot takes this replica's share of its capacity.
//!
//! It never waits for another actor: everything it tells them goes by `do_send`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use arc_swap::ArcSwap;

use super::admission::SlotSpec;
use super::arbiters::Arbiters;
use super::backend::Backend;
use super::backend_actor::{BackendActor, BackendChanged, Reconfigure, SetWatch, StopBackend, Watch};
use super::backend_status::BackendStatus;
use super::buckets::validate_tree;
use super::classify::Classifier;
use super::cluster_state::{BackendState, ClusterState, SettingsView};
use super::replica_share::ReplicaShare;
use super::topology::{ClusterHandle, ClusterSettings};
use crate::config::{BackendConfig, BucketConfig, ClusterConfig, HealthConfig};

/// Why a configuration could not be applied (nothing changed). The config loader refuses such
/// documents first; this guards the admission state all the same.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClusterError {
    #[error("cluster '{cluster}' has no bucket '{bucket}'")]
    UnknownBucket { cluster: String, bucket: String },
    #[error("invalid buckets for cluster '{cluster}': {}", .errors.join("; "))]
    InvalidBuckets { cluster: String, errors: Vec<String> },
}

/// Command: make the cluster match `config` (already validated by the config loader).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct ApplyConfig {
    pub config: ClusterConfig,
    /// The backend whose `enabled` an operator has just set: it is applied even when the
    /// configuration said so already (re-enabling a backend that sticky offline disabled).
    /// Otherwise `enabled` is applied only where the configuration changed it, so a reload
    /// doesn't undo an operator's (or sticky offline's) decision.
    pub operator_set_enabled: Option<String>,
}

impl ApplyConfig {
    /// A change that no operator made (a reload, a cluster leaving, a road-warrior route).
    pub fn from_config(config: ClusterConfig) -> ApplyConfig {
        ApplyConfig {
            config,
            operator_set_enabled: None,
        }
    }
}

/// Command: this replica's share of each backend's capacity is now this.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct SetShare(pub ReplicaShare);

/// A running cluster: the data plane's handle and the address of the actor owning it.
#[derive(Clone)]
pub struct RunningCluster {
    pub handle: Arc<ClusterHandle>,
    pub actor: Addr<ClusterActor>,
}

/// The running clusters by name (road-warrior clusters by address), published by the Director
/// with each topology: where the admin surface sends its queries. Control plane only; the data
/// plane reads the [`Topology`](super::topology::Topology), which holds no actor addresses.
pub type SharedClusters = Arc<ArcSwap<BTreeMap<String, RunningCluster>>>;

/// Query: the cluster's full state.
#[derive(Message, Debug)]
#[rtype(result = "ClusterState")]
pub struct GetClusterState;

/// A backend of the cluster and its actor.
struct Member {
    backend: Arc<Backend>,
    addr: Addr<BackendActor>,
    /// As last reported by its actor (or as last told to it).
    status: BackendStatus,
}

impl Member {
    /// Starts the actor of `backend` on the next arbiter.
    fn spawn(
        backend: Arc<Backend>,
        status: BackendStatus,
        cluster: &Addr<ClusterActor>,
        watch: &Watch,
    ) -> Member {
        let addr = BackendActor::start(
            backend.clone(),
            cluster.clone().recipient(),
            status.clone(),
            watch.clone(),
        );
        Member {
            backend,
            addr,
            status,
        }
    }
}

/// The actor owning one cluster.
pub struct ClusterActor {
    handle: Arc<ClusterHandle>,
    members: Vec<Member>,
    /// Removed backends still finishing requests.
    draining: Vec<Member>,
    /// The cluster's configuration as it is now, runtime changes included.
    config: ClusterConfig,
    watch: Watch,
    /// This replica's share of each backend's capacity.
    share: ReplicaShare,
}

/// A backend created for a cluster before its actor runs.
pub struct Prepared {
    backend: Arc<Backend>,
    status: BackendStatus,
    /// The backend's own health checks, if it has any.
    health: Option<HealthConfig>,
}

/// How often removed backends are checked for their last request.
const DRAIN_CHECK: Duration = Duration::from_millis(50);

impl ClusterActor {
    /// Creates the cluster's backends and publishes them to the handle at once, so the
    /// topology is complete before any actor has started.
    pub fn prepare(handle: &ClusterHandle, config: &ClusterConfig, share: ReplicaShare) -> Vec<Prepared> {
        let prepared: Vec<Prepared> = config
            .backends
            .iter()
            .map(|b| {
                let backend = new_backend(&handle.name, b, config);
                let status = BackendActor::initial_status(&backend, b, b.health_in(config));
                Prepared {
                    backend,
                    status,
                    health: b.health.clone(),
                }
            })
            .collect();
        let (settings, admission) = ClusterSettings::from_config(config);
        handle.settings.store(Arc::new(settings));
        handle.admission.configure(admission);
        handle.configure_cache(&config.cache);
        apply_buckets(handle, &config.buckets, config.default_bucket.as_deref());
        publish(handle, share, prepared.iter().map(|p| (&p.backend, &p.status)));
        handle
            .statuses
            .store(Arc::new(prepared.iter().map(|p| p.status.clone()).collect()));
        prepared
    }

    /// Starts the cluster's actor and one actor per backend, spread over `arbiters`.
    pub fn start(
        handle: Arc<ClusterHandle>,
        config: &ClusterConfig,
        prepared: Vec<Prepared>,
        arbiters: &Arbiters,
        share: ReplicaShare,
    ) -> RunningCluster {
        let watch = Watch {
            health: config.health.clone(),
            sticky_offline: config.sticky_offline,
            passive_recovery: config.passive_health.fail_timeout,
            admission: handle.admission.clone(),
            arbiters: arbiters.clone(),
        };
        // The mailbox exists before the actor runs, so its address is usable before the
        // topology is published; messages wait in the mailbox meanwhile.
        let (tx, rx) = actix::dev::channel::channel(16);
        let cluster = Addr::new(tx);
        let members: Vec<Member> = prepared
            .into_iter()
            .map(|p| {
                let watch = watch.for_backend(p.health.as_ref());
                Member::spawn(p.backend, p.status, &cluster, &watch)
            })
            .collect();
        let config = config.clone();
        let running = RunningCluster {
            handle: handle.clone(),
            actor: cluster,
        };
        arbiters.next().spawn_fn(move || {
            let actor = ClusterActor {
                handle,
                members,
                draining: Vec::new(),
                config,
                watch,
                share,
            };
            Context::with_receiver(rx).run(actor);
        });
        running
    }

    /// Brings the cluster to `new`; an invalid bucket tree changes nothing.
    fn apply_config(
        &mut self,
        new: ClusterConfig,
        operator_set_enabled: Option<&str>,
        me: &Addr<ClusterActor>,
    ) -> Result<(), ClusterError> {
        if new == self.config && operator_set_enabled.is_none() {
            return Ok(());
        }
        if (&new.buckets, &new.default_bucket) != (&self.config.buckets, &self.config.default_bucket) {
            self.change_buckets(&new.buckets, new.default_bucket.as_deref())?;
        }
        let (settings, admission) = ClusterSettings::from_config(&new);
        self.handle.settings.store(Arc::new(settings));
        self.handle.admission.configure(admission);
        self.handle.configure_cache(&new.cache);
        let watch_of =
            |c: &ClusterConfig| (c.health.clone(), c.sticky_offline, c.passive_health.fail_timeout);
        let watch_changed = watch_of(&new) != watch_of(&self.config);
        if watch_changed {
            self.watch.health = new.health.clone();
            self.watch.sticky_offline = new.sticky_offline;
            self.watch.passive_recovery = new.passive_health.fail_timeout;
        }
        self.change_members(&new, operator_set_enabled, watch_changed, me);
        log::info!("cluster '{}': configuration applied", self.handle.name);
        self.config = new;
        publish(
            &self.handle,
            self.share,
            self.members.iter().map(|m| (&m.backend, &m.status)),
        );
        self.publish_statuses();
        self.reap_drained();
        Ok(())
    }

    /// Validates and applies a new bucket tree; nothing changes when it is invalid.
    fn change_buckets(
        &mut self,
        buckets: &[BucketConfig],
        default_bucket: Option<&str>,
    ) -> Result<(), ClusterError> {
        let cluster = self.handle.name.clone();
        validate_tree(buckets).map_err(|errors| ClusterError::InvalidBuckets {
            cluster: cluster.clone(),
            errors,
        })?;
        if let Some(name) = default_bucket.filter(|name| !contains_bucket(buckets, name)) {
            return Err(ClusterError::UnknownBucket {
                cluster,
                bucket: name.to_owned(),
            });
        }
        apply_buckets(&self.handle, buckets, default_bucket);
        log::info!("cluster '{}': buckets changed", self.handle.name);
        Ok(())
    }

    /// Rebuilds the member list in `new`'s order; the caller publishes.
    fn change_members(
        &mut self,
        new: &ClusterConfig,
        operator_set_enabled: Option<&str>,
        watch_changed: bool,
        me: &Addr<ClusterActor>,
    ) {
        let mut old = std::mem::take(&mut self.members);
        for b in &new.backends {
            let fastcgi = b.fastcgi.as_ref().or(new.fastcgi.as_ref());
            let kept = old.iter().position(|m| {
                m.backend.name == b.name
                    && m.backend.url == b.url
                    && m.backend.fastcgi.as_ref() == fastcgi
                    && m.backend.tls == b.tls
            });
            let member = match kept {
                Some(i) => {
                    let mut m = old.remove(i);
                    let before = self.config.backends.iter().find(|o| o.name == b.name);
                    let enabled = (before.is_none_or(|o| o.enabled != b.enabled)
                        || operator_set_enabled == Some(b.name.as_str()))
                    .then_some(b.enabled);
                    if (m.status.role, m.status.capacity) != (b.role, b.capacity) || enabled.is_some() {
                        m.status.role = b.role;
                        m.status.capacity = b.capacity;
                        if let Some(enabled) = enabled {
                            m.status.enabled = enabled;
                        }
                        m.addr.do_send(Reconfigure {
                            role: b.role,
                            capacity: b.capacity,
                            enabled,
                        });
                    }
                    if watch_changed || before.is_none_or(|o| o.health != b.health) {
                        m.addr
                            .do_send(SetWatch(self.watch.for_backend(b.health.as_ref())));
                    }
                    m
                }
                None => {
                    let backend = new_backend(&self.handle.name, b, new);
                    let status = BackendActor::initial_status(&backend, b, b.health_in(new));
                    log::info!(
                        "cluster '{}': backend '{}' added ({})",
                        self.handle.name,
                        b.name,
                        b.url.text
                    );
                    Member::spawn(backend, status, me, &self.watch.for_backend(b.health.as_ref()))
                }
            };
            self.members.push(member);
        }
        for gone in old {
            self.drain(gone);
        }
    }

    /// Moves a removed member to the draining list: it gets no new requests and goes away
    /// once its last one has finished. The caller publishes.
    fn drain(&mut self, mut member: Member) {
        member.status.draining = true;
        member.backend.conns.retire();
        log::info!(
            "cluster '{}': backend '{}' removed; draining {} request(s) in flight",
            self.handle.name,
            member.backend.name,
            member.backend.stats.in_flight.current()
        );
        self.draining.push(member);
    }

    /// Stops the actors of removed backends whose last request has finished.
    fn reap_drained(&mut self) {
        let before = self.draining.len();
        let admission = &self.handle.admission;
        let cluster = &self.handle.name;
        self.draining.retain(|m| {
            let done = !admission.has_slot(m.backend.id);
            if done {
                log::info!(
                    "cluster '{cluster}': backend '{}' drained and removed",
                    m.backend.name
                );
                m.addr.do_send(StopBackend);
            }
            !done
        });
        if self.draining.len() != before {
            self.publish_statuses();
        }
    }

    /// Publishes every member's and draining backend's status to the handle.
    fn publish_statuses(&self) {
        let all = self
            .members
            .iter()
            .chain(&self.draining)
            .map(|m| m.status.clone())
            .collect();
        self.handle.statuses.store(Arc::new(all));
    }
}

/// The data-plane view of configured backend `b` of `cluster`: its own script mapping, else
/// the cluster's.
fn new_backend(cluster: &str, b: &BackendConfig, config: &ClusterConfig) -> Arc<Backend> {
    let fastcgi = b.fastcgi.as_ref().or(config.fastcgi.as_ref()).cloned();
    if b.tls.as_ref().is_some_and(|tls| !tls.settings.verify) {
        log::warn!(
            "cluster '{cluster}': backend '{}' ({}): TLS certificate verification is OFF (`verify: false`); \
             anyone on the network path can impersonate it",
            b.name,
            b.url.text
        );
    }
    Backend::new(cluster, &b.name, b.url.clone(), fastcgi, b.tls.clone())
}

/// Rebuilds the admission bucket tree and the classifier.
fn apply_buckets(handle: &ClusterHandle, buckets: &[BucketConfig], default_bucket: Option<&str>) {
    handle.admission.set_buckets(buckets);
    let admission = &handle.admission;
    let classifier = Classifier::new(buckets, default_bucket, |name| admission.bucket_key(name));
    handle.classifier.store(Arc::new(classifier));
}

/// Whether bucket `name` is anywhere in the tree.
fn contains_bucket(buckets: &[BucketConfig], name: &str) -> bool {
    buckets
        .iter()
        .any(|b| b.name == name || contains_bucket(&b.children, name))
}

/// Pushes a member list to the handle: readers' list and the admission slot table, each
/// backend with this replica's `share` of its capacity (none at all is a slot out of service).
fn publish<'a>(
    handle: &ClusterHandle,
    share: ReplicaShare,
    members: impl Iterator<Item = (&'a Arc<Backend>, &'a BackendStatus)> + Clone,
) {
    handle
        .backends
        .store(Arc::new(members.clone().map(|(b, _)| b.clone()).collect()));
    let keep_alive = handle.settings.load().backend_keep_alive;
    let specs = members
        .map(|(backend, status)| {
            backend.conns.set_limit(status.capacity);
            backend.conns.set_idle_timeout(keep_alive);
            let capacity = share.of(status.capacity);
            let none_here = capacity == 0 && status.capacity != 0;
            SlotSpec {
                backend: backend.clone(),
                role: status.role,
                capacity,
                usable: status.usable() && !none_here,
                healthy: status.healthy(),
            }
        })
        .collect();
    handle.admission.set_backends(specs);
}

impl Actor for ClusterActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(DRAIN_CHECK, |act, _| act.reap_drained());
    }
}

impl Handler<ApplyConfig> for ClusterActor {
    type Result = ();

    fn handle(&mut self, msg: ApplyConfig, ctx: &mut Context<Self>) {
        let me = ctx.address();
        if let Err(e) = self.apply_config(msg.config, msg.operator_set_enabled.as_deref(), &me) {
            log::error!("{e}");
        }
    }
}

impl Handler<SetShare> for ClusterActor {
    type Result = ();

    fn handle(&mut self, SetShare(share): SetShare, _: &mut Context<Self>) {
        if share != self.share {
            self.share = share;
            publish(
                &self.handle,
                share,
                self.members.iter().map(|m| (&m.backend, &m.status)),
            );
        }
    }
}

impl Handler<BackendChanged> for ClusterActor {
    type Result = ();

    fn handle(&mut self, BackendChanged(status): BackendChanged, _: &mut Context<Self>) {
        if let Some(m) = self.members.iter_mut().find(|m| m.backend.id == status.id) {
            // A probe result alone changes nothing for admission.
            let reshape = (
                m.status.role,
                m.status.capacity,
                m.status.usable(),
                m.status.healthy(),
            ) != (status.role, status.capacity, status.usable(), status.healthy());
            m.status = status;
            if reshape {
                publish(
                    &self.handle,
                    self.share,
                    self.members.iter().map(|m| (&m.backend, &m.status)),
                );
            }
            self.publish_statuses();
        }
    }
}

impl Handler<GetClusterState> for ClusterActor {
    type Result = MessageResult<GetClusterState>;

    fn handle(&mut self, _: GetClusterState, _: &mut Context<Self>) -> Self::Result {
        let (capacity, in_use) = self.handle.admission.capacity();
        MessageResult(ClusterState {
            name: self.handle.name.clone(),
            settings: SettingsView::new(&self.config),
            capacity,
            in_use,
            buckets: self.handle.admission.buckets(),
            backends: self
                .members
                .iter()
                .chain(&self.draining)
                .map(|m| {
                    let configured = self.config.backends.iter().find(|b| b.name == m.status.name);
                    BackendState {
                        terminate_protection: !m.status.draining
                            && configured.is_some_and(|b| b.terminate_protection),
                        discovered_by: configured.and_then(|b| b.discovered_by.clone()),
                        status: m.status.clone(),
                        stats: m.backend.stats.snapshot(),
                    }
                })
                .collect(),
            stats: self.handle.admission.stats.snapshot(),
            cache: self.handle.cache_snapshot().unwrap_or_default(),
            discovery: Vec::new(),
        })
    }
}
