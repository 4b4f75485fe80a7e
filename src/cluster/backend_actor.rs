//! The Backend actor: sole owner of one backend's mutable state (enabled, health, role,
//! capacity). Control plane; runs on a worker arbiter, which its health monitor shares.
//!
//! Every change is reported to the Cluster actor as [`BackendChanged`], which reshapes the
//! admission state. With active health checks configured, the backend's [`HealthMonitor`]
//! decides its health (passive ejections are forwarded to it); without them, a backend taken
//! offline by passive health comes back after the cluster's `passive_health.fail_timeout`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::admission::Admission;
use super::arbiters::Arbiters;
use super::backend::{Backend, PassiveFailure};
use super::backend_status::BackendStatus;
use super::health::Health;
use super::health_monitor::{
    HealthChanged, HealthMonitor, MonitorOwner, PassiveFailureObserved, ProbeCompleted, StopMonitor,
};
use crate::config::{BackendConfig, HealthConfig, InitialHealth, Role};
use actix::prelude::*;
use tokio::sync::mpsc;

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Event: a backend's state changed.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct BackendChanged(pub BackendStatus);

/// Command: change the backend's role and capacity, and `enabled` (administrative,
/// independent of health) when given.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Reconfigure {
    pub role: Role,
    pub capacity: u32,
    pub enabled: Option<bool>,
}

/// Command: watch health differently (the cluster's health checks or sticky offline changed):
/// the monitor is restarted with the new settings, the current health kept.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetWatch(pub Watch);

/// Command: stop the actor and its monitor (the backend was removed and has drained).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct StopBackend;

/// How a backend's health is watched.
#[derive(Clone)]
pub struct Watch {
    /// The active checks that apply to the backend (its own or its cluster's).
    pub health: Option<HealthConfig>,
    pub sticky_offline: bool,
    /// Without active checks: how long a backend taken out by passive health stays out.
    pub passive_recovery: Duration,
    pub admission: Arc<Admission>,
    pub arbiters: Arbiters,
}

impl Watch {
    /// The watch of a backend with its own health checks `own` (see
    /// [`BackendConfig::health_in`]); without them, the cluster's.
    pub fn for_backend(&self, own: Option<&HealthConfig>) -> Watch {
        let mut watch = self.clone();
        if let Some(own) = own {
            watch.health = Some(own.clone());
        }
        watch
    }
}

/// The actor owning one backend.
pub struct BackendActor {
    backend: Arc<Backend>,
    /// The Cluster actor, told of every change.
    cluster: Recipient<BackendChanged>,
    status: BackendStatus,
    watch: Watch,
    monitor: Option<Addr<HealthMonitor>>,
    recovery: Option<SpawnHandle>,
    /// Went offline after having been online (sticky offline applies on its return).
    fell_offline: bool,
}

impl BackendActor {
    /// The initial status of a configured backend: health as `health.initial` says (online
    /// without active checks), the rest as configured.
    pub fn initial_status(
        backend: &Backend,
        config: &BackendConfig,
        health: Option<&HealthConfig>,
    ) -> BackendStatus {
        let initial = match health.map(|h| h.initial) {
            Some(InitialHealth::Offline) => Health::Offline,
            _ => Health::Online,
        };
        BackendStatus {
            id: backend.id,
            name: backend.name.clone(),
            url: backend.url.text.clone(),
            role: config.role,
            capacity: config.capacity,
            enabled: config.enabled,
            health: initial,
            health_changed_at: unix_now(),
            health_reason: Some("initial state".to_owned()),
            last_probe: None,
            draining: false,
            checks_failed: 0,
            times_down: 0,
            downtime_before: 0.0,
            health_progress: None,
        }
    }

    /// Starts the actor owning `backend` on the next arbiter of `watch`; it reports to
    /// `cluster` and receives the backend's passive ejections from the data plane.
    pub fn start(
        backend: Arc<Backend>,
        cluster: Recipient<BackendChanged>,
        status: BackendStatus,
        watch: Watch,
    ) -> Addr<BackendActor> {
        let (ejections, ejected) = mpsc::unbounded_channel();
        backend.send_ejections_to(ejections);
        let arbiter = watch.arbiters.next();
        BackendActor::start_in_arbiter(&arbiter, move |ctx| {
            ctx.add_stream(futures_util::stream::unfold(ejected, |mut rx| async move {
                rx.recv().await.map(|failure| (failure, rx))
            }));
            BackendActor {
                backend,
                cluster,
                status,
                watch,
                monitor: None,
                recovery: None,
                fell_offline: false,
            }
        })
    }

    fn publish(&self) {
        self.cluster.do_send(BackendChanged(self.status.clone()));
    }

    fn set_health(&mut self, health: Health, reason: &str) {
        if self.status.health == health {
            return;
        }
        log::info!(
            "cluster '{}': backend '{}' is now {} ({reason})",
            self.backend.cluster,
            self.backend.name,
            match health {
                Health::Online => "online",
                Health::Offline => "offline",
            }
        );
        let now = unix_now();
        match health {
            Health::Offline => self.status.times_down += 1,
            Health::Online => self.status.downtime_before += (now - self.status.health_changed_at).max(0.0),
        }
        self.status.health = health;
        self.status.health_progress = None;
        self.status.health_changed_at = now;
        self.status.health_reason = Some(reason.to_owned());
        match health {
            Health::Offline => self.fell_offline = true,
            Health::Online if self.fell_offline && self.watch.sticky_offline && self.status.enabled => {
                log::info!(
                    "cluster '{}': backend '{}' stays disabled (sticky offline) until an operator enables it",
                    self.backend.cluster,
                    self.backend.name
                );
                self.status.enabled = false;
            }
            Health::Online => {}
        }
        self.publish();
    }
}

impl Actor for BackendActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.start_monitor(ctx);
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        if let Some(m) = self.monitor.take() {
            m.do_send(StopMonitor);
        }
    }
}

impl BackendActor {
    /// Starts a health monitor when the cluster has active checks.
    fn start_monitor(&mut self, ctx: &mut Context<Self>) {
        if let Some(config) = self.watch.health.clone() {
            let owner = MonitorOwner {
                health: ctx.address().recipient(),
                probes: ctx.address().recipient(),
            };
            let backend = self.backend.clone();
            let (admission, initial) = (self.watch.admission.clone(), self.status.health);
            // On this actor's own arbiter, like the original plugin: a backend's monitor lives
            // on the backend's worker thread.
            self.monitor = Some(HealthMonitor::new(backend, owner, admission, config, initial).start());
        }
    }
}

/// Passive ejections from the data plane.
impl StreamHandler<PassiveFailure> for BackendActor {
    fn handle(&mut self, msg: PassiveFailure, ctx: &mut Context<Self>) {
        if let Some(monitor) = &self.monitor {
            monitor.do_send(PassiveFailureObserved { reason: msg.reason });
            return;
        }
        self.set_health(Health::Offline, &msg.reason);
        if self.recovery.is_none() {
            self.recovery = Some(ctx.run_later(msg.recovery, |act, _| {
                act.recovery = None;
                act.set_health(Health::Online, "recovery period elapsed");
            }));
        }
    }
}

impl Handler<HealthChanged> for BackendActor {
    type Result = ();

    fn handle(&mut self, msg: HealthChanged, _: &mut Context<Self>) {
        self.set_health(msg.health, &msg.reason);
    }
}

impl Handler<ProbeCompleted> for BackendActor {
    type Result = ();

    fn handle(&mut self, ProbeCompleted(result, progress): ProbeCompleted, _: &mut Context<Self>) {
        self.status.health_progress = progress;
        if !result.ok {
            self.status.checks_failed += 1;
        }
        self.status.last_probe = Some(result);
        self.publish();
    }
}

impl Handler<Reconfigure> for BackendActor {
    type Result = ();

    fn handle(&mut self, msg: Reconfigure, _: &mut Context<Self>) {
        self.status.role = msg.role;
        self.status.capacity = msg.capacity;
        if let Some(enabled) = msg.enabled.filter(|e| *e != self.status.enabled) {
            log::info!(
                "cluster '{}': backend '{}' {}",
                self.backend.cluster,
                self.backend.name,
                if enabled { "enabled" } else { "disabled" }
            );
            self.status.enabled = enabled;
        }
        self.publish();
    }
}

impl Handler<SetWatch> for BackendActor {
    type Result = ();

    fn handle(&mut self, SetWatch(watch): SetWatch, ctx: &mut Context<Self>) {
        if let Some(m) = self.monitor.take() {
            m.do_send(StopMonitor);
        }
        if watch.health.is_none() && self.status.health == Health::Offline && self.recovery.is_none() {
            // Without probes nothing would bring it back: use the passive recovery period.
            self.recovery = Some(ctx.run_later(watch.passive_recovery, |act, _| {
                act.recovery = None;
                act.set_health(Health::Online, "recovery period elapsed");
            }));
        }
        self.watch = watch;
        self.start_monitor(ctx);
    }
}

impl Handler<StopBackend> for BackendActor {
    type Result = ();

    fn handle(&mut self, _: StopBackend, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

/// Query (tests only): the thread the actor runs on, and its health monitor.
#[cfg(test)]
#[derive(Message, Debug)]
#[rtype(result = "(std::thread::ThreadId, Option<Addr<HealthMonitor>>)")]
pub struct Placement;

#[cfg(test)]
impl Handler<Placement> for BackendActor {
    type Result = MessageResult<Placement>;

    fn handle(&mut self, _: Placement, _: &mut Context<Self>) -> Self::Result {
        MessageResult((std::thread::current().id(), self.monitor.clone()))
    }
}

#[cfg(test)]
mod tests;
