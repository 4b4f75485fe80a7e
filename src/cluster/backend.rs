//! The data plane's view of one backend: identity, address and counters.
//!
//! Shared (`Arc`) between the admission state, in-flight requests and the control plane.
//! Its mutable state (enabled, health, capacity) is owned by its [`BackendActor`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use actix::Addr;

use super::backend_actor::{BackendActor, PassiveFailure};
use crate::config::{BackendUrl, FastCgiConfig};
use crate::stats::TrafficStats;
use crate::transport::pool::IdleShare;

/// Process-unique backend identity; a backend re-created under the same name gets a new one.
pub type BackendId = u64;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// One backend as requests see it.
#[derive(Debug)]
pub struct Backend {
    pub id: BackendId,
    pub name: String,
    pub cluster: String,
    pub url: BackendUrl,
    /// How requests map to scripts (FastCGI backends only): the backend's own `fastcgi`
    /// mapping, else its cluster's.
    pub fastcgi: Option<FastCgiConfig>,
    pub stats: TrafficStats,
    /// Idle pooled connections across workers (FastCGI backends use it).
    pub idle: Arc<IdleShare>,
    actor: OnceLock<Addr<BackendActor>>,
}

impl Backend {
    pub fn new(cluster: &str, name: &str, url: BackendUrl, fastcgi: Option<FastCgiConfig>) -> Arc<Backend> {
        Arc::new(Backend {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            name: name.to_owned(),
            cluster: cluster.to_owned(),
            url,
            fastcgi,
            stats: TrafficStats::default(),
            idle: Arc::default(),
            actor: OnceLock::new(),
        })
    }

    /// Connects the backend to its actor (once, when the actor starts).
    pub(crate) fn attach(&self, addr: Addr<BackendActor>) {
        let _ = self.actor.set(addr);
    }

    /// Its actor, once started.
    pub fn actor(&self) -> Option<&Addr<BackendActor>> {
        self.actor.get()
    }

    /// Tells the backend's actor that a request failed because of it (passive health).
    /// A message, never a wait: the request path goes on at once.
    pub fn report_failure(&self, reason: String) {
        TrafficStats::count(&self.stats.failures);
        if let Some(addr) = self.actor.get() {
            addr.do_send(PassiveFailure { reason });
        }
    }
}
