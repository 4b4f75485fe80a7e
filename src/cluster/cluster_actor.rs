//! The Cluster actor: owns one cluster's membership and reshapes its admission state.
//!
//! Control plane; runs on a worker arbiter. Backend actors report [`BackendChanged`]; the
//! cluster recomputes the slot table and root capacity from scratch (never by deltas) and
//! publishes the member list to its [`ClusterHandle`].

use std::sync::Arc;

use actix::prelude::*;
use serde::Serialize;

use super::admission::SlotSpec;
use super::arbiters::Arbiters;
use super::backend::Backend;
use super::backend_actor::{BackendActor, BackendChanged, BackendStatus, SetEnabled};
use super::topology::{ClusterHandle, ClusterSettings};
use crate::config::ClusterConfig;
use crate::stats::TrafficSnapshot;

/// Errors of cluster commands.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClusterError {
    #[error("cluster '{cluster}' has no backend '{backend}'")]
    UnknownBackend { cluster: String, backend: String },
}

/// Command: enable or disable a backend by name.
#[derive(Message, Debug)]
#[rtype(result = "Result<BackendStatus, ClusterError>")]
pub struct SetBackendEnabled {
    pub backend: String,
    pub enabled: bool,
}

/// Query: the cluster's full state.
#[derive(Message, Debug)]
#[rtype(result = "ClusterState")]
pub struct GetClusterState;

/// A cluster's state and stats, for readers.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterState {
    pub name: String,
    /// Root capacity (`None` = unlimited) and tokens in use.
    pub capacity: Option<u32>,
    pub in_use: u32,
    pub backends: Vec<BackendState>,
    pub stats: TrafficSnapshot,
}

/// A backend's status and counters.
#[derive(Debug, Clone, Serialize)]
pub struct BackendState {
    #[serde(flatten)]
    pub status: BackendStatus,
    pub stats: TrafficSnapshot,
}

struct Member {
    backend: Arc<Backend>,
    addr: Addr<BackendActor>,
    status: BackendStatus,
}

/// The actor owning one cluster.
pub struct ClusterActor {
    handle: Arc<ClusterHandle>,
    members: Vec<Member>,
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
                let backend = Backend::new(&handle.name, &b.name, b.url.clone());
                let status = BackendActor::initial_status(&backend, b);
                Prepared { backend, status }
            })
            .collect();
        let (settings, admission) = ClusterSettings::from_config(config);
        handle.settings.store(Arc::new(settings));
        handle.admission.configure(admission);
        publish(handle, prepared.iter().map(|p| (&p.backend, &p.status)));
        prepared
    }

    /// Starts the cluster's actor and one actor per backend, spread over `arbiters`.
    pub fn start(handle: Arc<ClusterHandle>, prepared: Vec<Prepared>, arbiters: &Arbiters) {
        let backend_arbiters = arbiters.clone();
        ClusterActor::start_in_arbiter(&arbiters.next(), move |ctx| {
            handle.attach(ctx.address());
            let members = prepared
                .into_iter()
                .map(|p| {
                    let (backend, cluster) = (p.backend.clone(), ctx.address());
                    let status = p.status.clone();
                    let addr = BackendActor::start_in_arbiter(&backend_arbiters.next(), move |_| {
                        BackendActor::new(backend, cluster, status)
                    });
                    Member {
                        backend: p.backend,
                        addr,
                        status: p.status,
                    }
                })
                .collect();
            ClusterActor { handle, members }
        });
    }
}

/// Pushes a member list to the handle: readers' list and the admission slot table.
fn publish<'a>(
    handle: &ClusterHandle,
    members: impl Iterator<Item = (&'a Arc<Backend>, &'a BackendStatus)> + Clone,
) {
    handle
        .backends
        .store(Arc::new(members.clone().map(|(b, _)| b.clone()).collect()));
    let specs = members
        .map(|(backend, status)| SlotSpec {
            backend: backend.clone(),
            role: status.role,
            capacity: status.capacity,
            usable: status.usable(),
        })
        .collect();
    handle.admission.set_backends(specs);
}

impl Actor for ClusterActor {
    type Context = Context<Self>;
}

impl Handler<BackendChanged> for ClusterActor {
    type Result = ();

    fn handle(&mut self, BackendChanged(status): BackendChanged, _: &mut Context<Self>) {
        if let Some(m) = self.members.iter_mut().find(|m| m.backend.id == status.id) {
            m.status = status;
            publish(&self.handle, self.members.iter().map(|m| (&m.backend, &m.status)));
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
            capacity,
            in_use,
            backends: self
                .members
                .iter()
                .map(|m| BackendState {
                    status: m.status.clone(),
                    stats: m.backend.stats.snapshot(),
                })
                .collect(),
            stats: self.handle.admission.stats.snapshot(),
        })
    }
}
