//! The Backend actor: sole owner of one backend's mutable state (enabled, health, role,
//! capacity). Control plane; runs on a worker arbiter.
//!
//! Every change is reported to the Cluster actor as [`BackendChanged`], which reshapes the
//! admission state. Until health probes exist, a backend taken offline by a passive failure
//! comes back after [`PASSIVE_RECOVERY`].

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix::prelude::*;
use serde::Serialize;

use super::backend::{Backend, BackendId};
use super::cluster_actor::ClusterActor;
use crate::config::{BackendConfig, Role};

/// How long a backend stays offline after a passive failure before it is tried again.
pub const PASSIVE_RECOVERY: Duration = Duration::from_secs(2);

/// Health of a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Online,
    Offline,
}

/// Everything the control plane knows about one backend, as published to readers.
#[derive(Debug, Clone, Serialize)]
pub struct BackendStatus {
    #[serde(skip)]
    pub id: BackendId,
    pub name: String,
    pub url: String,
    #[serde(serialize_with = "serialize_role")]
    pub role: Role,
    pub capacity: u32,
    pub enabled: bool,
    pub health: Health,
    /// Seconds since the Unix epoch of the last health change.
    pub health_changed_at: f64,
    /// Why the backend last went offline.
    pub last_failure: Option<String>,
}

impl BackendStatus {
    /// Enabled and online.
    pub fn usable(&self) -> bool {
        self.enabled && self.health == Health::Online
    }
}

fn serialize_role<S: serde::Serializer>(role: &Role, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(role_name(*role))
}

/// The configuration word for a role.
pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Active => "active",
        Role::Standby => "standby",
        Role::Backup => "backup",
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Event: a backend's state changed.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct BackendChanged(pub BackendStatus);

/// Event from the data plane: a request failed because of this backend.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct PassiveFailure {
    pub reason: String,
}

/// Command: enable or disable the backend (administrative, independent of health).
#[derive(Message, Debug)]
#[rtype(result = "BackendStatus")]
pub struct SetEnabled(pub bool);

/// Query: the backend's status.
#[derive(Message, Debug)]
#[rtype(result = "BackendStatus")]
pub struct GetBackendStatus;

/// The actor owning one backend.
pub struct BackendActor {
    backend: Arc<Backend>,
    cluster: Addr<ClusterActor>,
    status: BackendStatus,
    recovery: Option<SpawnHandle>,
}

impl BackendActor {
    /// The initial status of a configured backend: online (no probes yet) and as configured.
    pub fn initial_status(backend: &Backend, config: &BackendConfig) -> BackendStatus {
        BackendStatus {
            id: backend.id,
            name: backend.name.clone(),
            url: backend.url.text.clone(),
            role: config.role,
            capacity: config.capacity,
            enabled: config.enabled,
            health: Health::Online,
            health_changed_at: unix_now(),
            last_failure: None,
        }
    }

    pub fn new(backend: Arc<Backend>, cluster: Addr<ClusterActor>, status: BackendStatus) -> Self {
        BackendActor {
            backend,
            cluster,
            status,
            recovery: None,
        }
    }

    fn publish(&self) {
        self.cluster.do_send(BackendChanged(self.status.clone()));
    }

    fn set_health(&mut self, health: Health, reason: &str) {
        if self.status.health == health {
            return;
        }
        log::info!(
            "cluster '{}': backend '{}' is now {:?} ({reason})",
            self.backend.cluster,
            self.backend.name,
            health
        );
        self.status.health = health;
        self.status.health_changed_at = unix_now();
        if health == Health::Offline {
            self.status.last_failure = Some(reason.to_owned());
        }
        self.publish();
    }
}

impl Actor for BackendActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.backend.attach(ctx.address());
    }
}

impl Handler<PassiveFailure> for BackendActor {
    type Result = ();

    fn handle(&mut self, msg: PassiveFailure, ctx: &mut Context<Self>) {
        self.set_health(Health::Offline, &msg.reason);
        if self.recovery.is_none() {
            self.recovery = Some(ctx.run_later(PASSIVE_RECOVERY, |act, _| {
                act.recovery = None;
                act.set_health(Health::Online, "recovery period elapsed");
            }));
        }
    }
}

impl Handler<SetEnabled> for BackendActor {
    type Result = MessageResult<SetEnabled>;

    fn handle(&mut self, SetEnabled(enabled): SetEnabled, _: &mut Context<Self>) -> Self::Result {
        if self.status.enabled != enabled {
            log::info!(
                "cluster '{}': backend '{}' {}",
                self.backend.cluster,
                self.backend.name,
                if enabled { "enabled" } else { "disabled" }
            );
            self.status.enabled = enabled;
            self.publish();
        }
        MessageResult(self.status.clone())
    }
}

impl Handler<GetBackendStatus> for BackendActor {
    type Result = MessageResult<GetBackendStatus>;

    fn handle(&mut self, _: GetBackendStatus, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.status.clone())
    }
}
