//! What the control plane publishes about one backend (pure data): its identity, role,
//! capacity, `enabled`, health and probe history. Written by its Backend actor, gathered by
//! the Cluster actor into the [`ClusterHandle`](super::topology::ClusterHandle)'s statuses,
//! read by the admin surface and the stats collector.

use serde::Serialize;

use super::backend::BackendId;
use super::health::{Health, HealthProgress, ProbeResult};
use crate::config::Role;

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
    /// Why the health last changed.
    pub health_reason: Option<String>,
    /// The most recent active probe.
    pub last_probe: Option<ProbeResult>,
    /// Removed; finishing the requests it has in flight.
    pub draining: bool,
    /// Failed active probes so far (HAProxy's `chkfail`).
    pub checks_failed: u64,
    /// Transitions from online to offline (HAProxy's `chkdown`).
    pub times_down: u64,
    /// Seconds spent offline before the current state began (HAProxy's `downtime` adds the
    /// current offline period to it).
    pub downtime_before: f64,
    /// Active-probe results so far toward a health change (HAProxy's `UP 2/3`, `DOWN 1/2`);
    /// `None` when none are pending.
    pub health_progress: Option<HealthProgress>,
}

impl BackendStatus {
    /// Enabled and online.
    pub fn usable(&self) -> bool {
        self.enabled && self.healthy()
    }

    /// Online, whatever `enabled` says.
    pub fn healthy(&self) -> bool {
        self.health == Health::Online
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
