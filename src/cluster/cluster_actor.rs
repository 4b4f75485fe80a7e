//! The Cluster actor: owns one cluster's membership and reshapes its admission state.
//!
//! Control plane; runs on a worker arbiter. Backend actors report [`BackendChanged`]; the
//! cluster recomputes the slot table and root capacity from scratch (never by deltas) and
//! publishes the member list to its [`ClusterHandle`].

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use serde::Serialize;

use super::admission::{BucketState, SlotSpec};
use super::arbiters::Arbiters;
use super::backend::Backend;
use super::backend_actor::{BackendActor, BackendChanged, BackendStatus, SetEnabled, StopBackend, Watch};
use super::buckets::validate_tree;
use super::classify::Classifier;
use super::topology::{ClusterHandle, ClusterSettings};
use crate::cache::CacheSnapshot;
use crate::config::{
    BucketConfig, BucketRule, CacheConfig, CacheQuery, CacheUpdate, ClusterConfig, ForwardedFor,
    SchedulerKind,
};
use crate::stats::TrafficSnapshot;

/// Errors of cluster commands.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClusterError {
    #[error("cluster '{cluster}' has no backend '{backend}'")]
    UnknownBackend { cluster: String, backend: String },
    #[error("cluster '{cluster}' has no bucket '{bucket}'")]
    UnknownBucket { cluster: String, bucket: String },
    #[error("invalid buckets for cluster '{cluster}': {}", .errors.join("; "))]
    InvalidBuckets { cluster: String, errors: Vec<String> },
}

/// Command: replace the whole bucket tree and the default bucket.
#[derive(Message, Debug)]
#[rtype(result = "Result<Vec<BucketState>, ClusterError>")]
pub struct SetBuckets {
    pub buckets: Vec<BucketConfig>,
    pub default_bucket: Option<String>,
}

/// Command: add a bucket under `parent` (the root when `None`).
#[derive(Message, Debug)]
#[rtype(result = "Result<Vec<BucketState>, ClusterError>")]
pub struct AddBucket {
    pub parent: Option<String>,
    pub bucket: BucketConfig,
}

/// Command: change a bucket's shares or rule; `None` leaves a field as it is.
#[derive(Message, Debug)]
#[rtype(result = "Result<Vec<BucketState>, ClusterError>")]
pub struct UpdateBucket {
    pub name: String,
    pub rate: Option<f64>,
    pub ceil: Option<f64>,
    pub rule: Option<Option<BucketRule>>,
}

/// Command: delete a bucket and its subtree; their queued requests go to the parent.
#[derive(Message, Debug)]
#[rtype(result = "Result<Vec<BucketState>, ClusterError>")]
pub struct RemoveBucket {
    pub name: String,
}

/// Command: enable or disable a backend by name.
#[derive(Message, Debug)]
#[rtype(result = "Result<BackendStatus, ClusterError>")]
pub struct SetBackendEnabled {
    pub backend: String,
    pub enabled: bool,
}

/// Command: remove a backend; it stops getting requests, finishes those in flight, then
/// goes away (its state shows `draining` meanwhile).
#[derive(Message, Debug)]
#[rtype(result = "Result<BackendStatus, ClusterError>")]
pub struct RemoveBackend {
    pub name: String,
}

/// Query: the cluster's full state.
#[derive(Message, Debug)]
#[rtype(result = "ClusterState")]
pub struct GetClusterState;

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
}

/// A cluster's settings as readers see them.
#[derive(Debug, Clone, Serialize)]
pub struct SettingsView {
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
    /// The object cache's settings (`cache:`).
    pub cache: CacheSettingsView,
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
    pub stats: TrafficSnapshot,
}

pub(super) struct Member {
    pub(super) backend: Arc<Backend>,
    pub(super) addr: Addr<BackendActor>,
    pub(super) status: BackendStatus,
}

impl Member {
    /// Starts the actor of `backend` on the next arbiter.
    pub(super) fn spawn(
        backend: Arc<Backend>,
        status: BackendStatus,
        cluster: &Addr<ClusterActor>,
        watch: &Watch,
    ) -> Member {
        let (b, cluster, w, s) = (backend.clone(), cluster.clone(), watch.clone(), status.clone());
        let addr = BackendActor::start_in_arbiter(&watch.arbiters.next(), move |_| {
            BackendActor::new(b, cluster, s, w)
        });
        backend.attach(addr.clone());
        Member {
            backend,
            addr,
            status,
        }
    }
}

/// The actor owning one cluster.
pub struct ClusterActor {
    pub(super) handle: Arc<ClusterHandle>,
    pub(super) members: Vec<Member>,
    /// Removed backends still finishing requests.
    pub(super) draining: Vec<Member>,
    /// The cluster's configuration as it is now, runtime changes included.
    pub(super) config: ClusterConfig,
    pub(super) watch: Watch,
}

/// A backend created for a cluster before its actor runs.
pub struct Prepared {
    backend: Arc<Backend>,
    status: BackendStatus,
}

impl ClusterActor {
    /// Creates the cluster's backends and publishes them to the handle at once, so the
    /// topology is complete before any actor has started.
    pub fn prepare(handle: &ClusterHandle, config: &ClusterConfig) -> Vec<Prepared> {
        let prepared: Vec<Prepared> = config
            .backends
            .iter()
            .map(|b| {
                let fastcgi = b.fastcgi.as_ref().or(config.fastcgi.as_ref()).cloned();
                let backend = Backend::new(&handle.name, &b.name, b.url.clone(), fastcgi);
                let status = BackendActor::initial_status(&backend, b, config.health.as_ref());
                Prepared { backend, status }
            })
            .collect();
        let (settings, admission) = ClusterSettings::from_config(config);
        handle.settings.store(Arc::new(settings));
        handle.admission.configure(admission);
        handle.configure_cache(&config.cache);
        apply_buckets(handle, &config.buckets, config.default_bucket.as_deref());
        publish(handle, prepared.iter().map(|p| (&p.backend, &p.status)));
        handle
            .statuses
            .store(Arc::new(prepared.iter().map(|p| p.status.clone()).collect()));
        prepared
    }

    /// Validates and applies a new bucket tree; nothing changes when it is invalid.
    pub(super) fn change_buckets(
        &mut self,
        buckets: Vec<BucketConfig>,
        default_bucket: Option<String>,
    ) -> Result<Vec<BucketState>, ClusterError> {
        let invalid = |errors| ClusterError::InvalidBuckets {
            cluster: self.handle.name.clone(),
            errors,
        };
        validate_tree(&buckets).map_err(invalid)?;
        if let Some(name) = &default_bucket {
            if find(&buckets, name).is_none() {
                return Err(self.unknown_bucket(name));
            }
        }
        apply_buckets(&self.handle, &buckets, default_bucket.as_deref());
        log::info!("cluster '{}': buckets changed", self.handle.name);
        self.config.buckets = buckets;
        self.config.default_bucket = default_bucket;
        Ok(self.handle.admission.buckets())
    }

    fn unknown_bucket(&self, name: &str) -> ClusterError {
        ClusterError::UnknownBucket {
            cluster: self.handle.name.clone(),
            bucket: name.to_owned(),
        }
    }

    /// Starts the cluster's actor and one actor per backend, spread over `arbiters`.
    pub fn start(
        handle: Arc<ClusterHandle>,
        config: &ClusterConfig,
        prepared: Vec<Prepared>,
        arbiters: &Arbiters,
    ) {
        let watch = Watch {
            health: config.health.clone(),
            sticky_offline: config.sticky_offline,
            passive_recovery: config.passive_health.fail_timeout,
            admission: handle.admission.clone(),
            arbiters: arbiters.clone(),
        };
        // The mailbox exists before the actor runs, so every address is attached (and usable)
        // before the topology is published; messages wait in the mailbox meanwhile.
        let (tx, rx) = actix::dev::channel::channel(16);
        let cluster = Addr::new(tx);
        handle.attach(cluster.clone());
        let members: Vec<Member> = prepared
            .into_iter()
            .map(|p| Member::spawn(p.backend, p.status, &cluster, &watch))
            .collect();
        let config = config.clone();
        arbiters.next().spawn_fn(move || {
            let actor = ClusterActor {
                handle,
                members,
                draining: Vec::new(),
                config,
                watch,
            };
            Context::with_receiver(rx).run(actor);
        });
    }
}

fn settings_view(c: &ClusterConfig) -> SettingsView {
    let ms = millis;
    SettingsView {
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
        cache: CacheSettingsView::new(&c.cache),
    }
}

/// Rebuilds the admission bucket tree and the classifier.
fn apply_buckets(handle: &ClusterHandle, buckets: &[BucketConfig], default_bucket: Option<&str>) {
    handle.admission.set_buckets(buckets);
    let admission = &handle.admission;
    let classifier = Classifier::new(buckets, default_bucket, |name| admission.bucket_key(name));
    handle.classifier.store(Arc::new(classifier));
}

fn find<'a>(buckets: &'a [BucketConfig], name: &str) -> Option<&'a BucketConfig> {
    buckets.iter().find_map(|b| {
        if b.name == name {
            Some(b)
        } else {
            find(&b.children, name)
        }
    })
}

fn find_mut<'a>(buckets: &'a mut [BucketConfig], name: &str) -> Option<&'a mut BucketConfig> {
    for b in buckets {
        if b.name == name {
            return Some(b);
        }
        if let Some(found) = find_mut(&mut b.children, name) {
            return Some(found);
        }
    }
    None
}

/// Removes bucket `name` from the tree; false when it is not there.
fn remove(buckets: &mut Vec<BucketConfig>, name: &str) -> bool {
    if let Some(pos) = buckets.iter().position(|b| b.name == name) {
        buckets.remove(pos);
        return true;
    }
    buckets.iter_mut().any(|b| remove(&mut b.children, name))
}

/// Pushes a member list to the handle: readers' list and the admission slot table.
pub(super) fn publish<'a>(
    handle: &ClusterHandle,
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
            SlotSpec {
                backend: backend.clone(),
                role: status.role,
                capacity: status.capacity,
                usable: status.usable(),
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

/// How often removed backends are checked for their last request.
const DRAIN_CHECK: Duration = Duration::from_millis(50);

impl ClusterActor {
    /// Publishes every member's and draining backend's status to the handle.
    pub(super) fn publish_statuses(&self) {
        let all = self
            .members
            .iter()
            .chain(&self.draining)
            .map(|m| m.status.clone())
            .collect();
        self.handle.statuses.store(Arc::new(all));
    }

    /// Stops the actors of removed backends whose last request has finished.
    /// Moves a removed member to the draining list: it gets no new requests and goes away
    /// once its last one has finished. The caller publishes.
    pub(super) fn drain(&mut self, mut member: Member) -> BackendStatus {
        member.status.draining = true;
        member.backend.conns.retire();
        log::info!(
            "cluster '{}': backend '{}' removed; draining {} request(s) in flight",
            self.handle.name,
            member.backend.name,
            member.backend.stats.in_flight.current()
        );
        let status = member.status.clone();
        self.draining.push(member);
        status
    }

    pub(super) fn reap_drained(&mut self) {
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
}

impl Handler<RemoveBackend> for ClusterActor {
    type Result = Result<BackendStatus, ClusterError>;

    fn handle(&mut self, msg: RemoveBackend, _: &mut Context<Self>) -> Self::Result {
        let Some(i) = self.members.iter().position(|m| m.backend.name == msg.name) else {
            return Err(ClusterError::UnknownBackend {
                cluster: self.handle.name.clone(),
                backend: msg.name,
            });
        };
        let member = self.members.remove(i);
        self.config.backends.retain(|b| b.name != msg.name);
        let status = self.drain(member);
        publish(&self.handle, self.members.iter().map(|m| (&m.backend, &m.status)));
        self.publish_statuses();
        self.reap_drained();
        Ok(status)
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
                publish(&self.handle, self.members.iter().map(|m| (&m.backend, &m.status)));
            }
            self.publish_statuses();
        }
    }
}

impl Handler<SetBackendEnabled> for ClusterActor {
    type Result = ResponseFuture<Result<BackendStatus, ClusterError>>;

    fn handle(&mut self, msg: SetBackendEnabled, _: &mut Context<Self>) -> Self::Result {
        let Some(m) = self.members.iter().find(|m| m.backend.name == msg.backend) else {
            let err = ClusterError::UnknownBackend {
                cluster: self.handle.name.clone(),
                backend: msg.backend,
            };
            return Box::pin(async move { Err(err) });
        };
        let request = m.addr.send(SetEnabled(msg.enabled));
        let name = m.backend.name.clone();
        let cluster = self.handle.name.clone();
        Box::pin(async move {
            request.await.map_err(|_| ClusterError::UnknownBackend {
                cluster,
                backend: name,
            })
        })
    }
}

impl Handler<GetClusterState> for ClusterActor {
    type Result = MessageResult<GetClusterState>;

    fn handle(&mut self, _: GetClusterState, _: &mut Context<Self>) -> Self::Result {
        let (capacity, in_use) = self.handle.admission.capacity();
        MessageResult(ClusterState {
            name: self.handle.name.clone(),
            settings: settings_view(&self.config),
            capacity,
            in_use,
            buckets: self.handle.admission.buckets(),
            backends: self
                .members
                .iter()
                .chain(&self.draining)
                .map(|m| BackendState {
                    status: m.status.clone(),
                    stats: m.backend.stats.snapshot(),
                })
                .collect(),
            stats: self.handle.admission.stats.snapshot(),
            cache: self.handle.cache_snapshot().unwrap_or_default(),
        })
    }
}

impl Handler<SetBuckets> for ClusterActor {
    type Result = Result<Vec<BucketState>, ClusterError>;

    fn handle(&mut self, msg: SetBuckets, _: &mut Context<Self>) -> Self::Result {
        self.change_buckets(msg.buckets, msg.default_bucket)
    }
}

impl Handler<AddBucket> for ClusterActor {
    type Result = Result<Vec<BucketState>, ClusterError>;

    fn handle(&mut self, msg: AddBucket, _: &mut Context<Self>) -> Self::Result {
        let mut buckets = self.config.buckets.clone();
        let siblings = match &msg.parent {
            None => &mut buckets,
            Some(parent) => match find_mut(&mut buckets, parent) {
                Some(p) => &mut p.children,
                None => return Err(self.unknown_bucket(parent)),
            },
        };
        siblings.push(msg.bucket);
        self.change_buckets(buckets, self.config.default_bucket.clone())
    }
}

impl Handler<UpdateBucket> for ClusterActor {
    type Result = Result<Vec<BucketState>, ClusterError>;

    fn handle(&mut self, msg: UpdateBucket, _: &mut Context<Self>) -> Self::Result {
        let mut buckets = self.config.buckets.clone();
        let Some(b) = find_mut(&mut buckets, &msg.name) else {
            return Err(self.unknown_bucket(&msg.name));
        };
        b.rate = msg.rate.unwrap_or(b.rate);
        b.ceil = msg.ceil.unwrap_or(b.ceil);
        if let Some(rule) = msg.rule {
            b.rule = rule;
        }
        self.change_buckets(buckets, self.config.default_bucket.clone())
    }
}

impl Handler<RemoveBucket> for ClusterActor {
    type Result = Result<Vec<BucketState>, ClusterError>;

    fn handle(&mut self, msg: RemoveBucket, _: &mut Context<Self>) -> Self::Result {
        let mut buckets = self.config.buckets.clone();
        if !remove(&mut buckets, &msg.name) {
            return Err(self.unknown_bucket(&msg.name));
        }
        // A default bucket that was removed (or was inside the subtree) falls back to the root.
        let default = self
            .config
            .default_bucket
            .clone()
            .filter(|d| find(&buckets, d).is_some());
        self.change_buckets(buckets, default)
    }
}
