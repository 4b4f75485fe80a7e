//! The HealthMonitor actor: probes one backend on its interval according to the cluster's
//! mode, runs the rise/fall state machine, and reports flips and probe results to the
//! backend's actor. Control plane; runs on its backend actor's own arbiter (the original
//! plugin's thread model: a backend and its monitor share a worker thread, so what they tell
//! each other never crosses threads).
//!
//! Modes: `paranoid` probes always; `lazy` only while the backend is offline;
//! `opportunistic` also when it is online but idle for an interval, and then the probe holds
//! one unit of the backend's capacity while it runs.

use std::sync::Arc;
use std::time::SystemTime;

use actix::prelude::*;

use super::admission::Admission;
use super::backend::Backend;
use super::health::{Health, HealthMachine, HealthProgress, ProbeResult};
use super::health_probe;
use crate::config::{HealthConfig, HealthMode};

/// Event from the health monitor: the backend's health flipped.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct HealthChanged {
    pub health: Health,
    pub reason: String,
}

/// Event from the health monitor: a probe finished, and the results now counting toward a
/// health change.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct ProbeCompleted(pub ProbeResult, pub Option<HealthProgress>);

/// Where a monitor reports: its backend's actor.
pub struct MonitorOwner {
    pub health: Recipient<HealthChanged>,
    pub probes: Recipient<ProbeCompleted>,
}

/// Event from the data plane, via the backend actor: a request failed because of the backend.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct PassiveFailureObserved {
    pub reason: String,
}

/// Command: stop probing (the backend was removed).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct StopMonitor;

/// The actor probing one backend.
pub struct HealthMonitor {
    backend: Arc<Backend>,
    owner: MonitorOwner,
    admission: Arc<Admission>,
    config: HealthConfig,
    machine: HealthMachine,
    /// Requests started on the backend when the last tick looked (for idleness).
    last_started: u64,
    probing: bool,
}

impl HealthMonitor {
    pub fn new(
        backend: Arc<Backend>,
        owner: MonitorOwner,
        admission: Arc<Admission>,
        config: HealthConfig,
        initial: Health,
    ) -> HealthMonitor {
        let machine = HealthMachine::new(initial, config.rise, config.fall);
        HealthMonitor {
            backend,
            owner,
            admission,
            config,
            machine,
            last_started: 0,
            probing: false,
        }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.probing {
            return;
        }
        let started = self.backend.stats.in_flight.snapshot().total;
        let idle = started == self.last_started && self.backend.stats.in_flight.current() == 0;
        self.last_started = started;
        let offline = self.machine.health() == Health::Offline;
        let slot = match self.config.mode {
            HealthMode::Paranoid => None,
            HealthMode::Lazy if offline => None,
            HealthMode::Opportunistic if offline => None,
            HealthMode::Opportunistic if idle => {
                // Probing an online backend uses one unit of its capacity; none free, no probe.
                match self.admission.acquire_pinned(self.backend.id, true) {
                    Ok(grant) => Some(grant),
                    Err(_) => return,
                }
            }
            HealthMode::Lazy | HealthMode::Opportunistic => return,
        };
        self.probing = true;
        let (backend, config) = (self.backend.clone(), self.config.clone());
        let probe = async move {
            let verdict = health_probe::probe(&backend, &config).await;
            drop(slot);
            verdict
        };
        ctx.spawn(probe.into_actor(self).map(|verdict, act, _| {
            act.probing = false;
            let result = ProbeResult {
                ok: verdict.ok,
                detail: verdict.detail,
                at: unix_now(),
            };
            let flipped = act.machine.probe(result.ok);
            act.owner
                .probes
                .do_send(ProbeCompleted(result.clone(), act.machine.progress()));
            if let Some(health) = flipped {
                act.owner.health.do_send(HealthChanged {
                    health,
                    reason: result.detail,
                });
            }
        }));
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Actor for HealthMonitor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.tick(ctx);
        ctx.run_interval(self.config.interval, |act, ctx| act.tick(ctx));
    }
}

impl Handler<PassiveFailureObserved> for HealthMonitor {
    type Result = ();

    fn handle(&mut self, msg: PassiveFailureObserved, _: &mut Context<Self>) {
        if let Some(health) = self.machine.passive_failure() {
            self.owner.health.do_send(HealthChanged {
                health,
                reason: msg.reason,
            });
        }
    }
}

impl Handler<StopMonitor> for HealthMonitor {
    type Result = ();

    fn handle(&mut self, _: StopMonitor, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

/// Query (tests only): the thread the monitor runs on.
#[cfg(test)]
#[derive(Message, Debug)]
#[rtype(result = "std::thread::ThreadId")]
pub struct WhichThread;

#[cfg(test)]
impl Handler<WhichThread> for HealthMonitor {
    type Result = MessageResult<WhichThread>;

    fn handle(&mut self, _: WhichThread, _: &mut Context<Self>) -> Self::Result {
        MessageResult(std::thread::current().id())
    }
}
