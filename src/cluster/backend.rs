//! The data plane's view of one backend: identity, address and counters.
//!
//! Shared (`Arc`) between the admission state, in-flight requests and the control plane.
//! Its mutable state (enabled, health, capacity) is owned by its Backend actor, which the data
//! plane never addresses: a passive ejection goes to it as a [`PassiveFailure`] event on a
//! channel. No actor types here.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedSender;

use crate::config::{BackendTls, BackendUrl, FastCgiConfig, PassiveHealthConfig};
use crate::stats::TrafficStats;
use crate::transport::pool::BackendConns;

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
    /// How an `https://` backend is reached (its client configuration, built at load time).
    pub tls: Option<BackendTls>,
    pub stats: TrafficStats,
    /// Its connections in every worker's pool.
    pub conns: Arc<BackendConns>,
    /// When its recent counted failures happened (passive health); locked only on failure.
    recent_failures: parking_lot::Mutex<VecDeque<Instant>>,
    /// Where passive ejections go: the backend's actor, once it is started.
    ejections: OnceLock<UnboundedSender<PassiveFailure>>,
}

/// Event from the data plane: the backend reached its passive-health failure limit.
#[derive(Debug)]
pub struct PassiveFailure {
    pub reason: String,
    /// Without active health checks: how long it stays offline.
    pub recovery: Duration,
}

impl Backend {
    pub fn new(
        cluster: &str,
        name: &str,
        url: BackendUrl,
        fastcgi: Option<FastCgiConfig>,
        tls: Option<BackendTls>,
    ) -> Arc<Backend> {
        // The loader gives every https:// backend its TLS settings, and no other backend any:
        // one without them would be spoken to in plain text.
        debug_assert_eq!(url.tls, tls.is_some(), "TLS settings for {}", url.text);
        // php-fpm holds a process per open connection, idle or not.
        let conns = BackendConns::new(name, url.protocol == crate::config::Protocol::FastCgi);
        Arc::new(Backend {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            name: name.to_owned(),
            cluster: cluster.to_owned(),
            url,
            fastcgi,
            tls,
            stats: TrafficStats::default(),
            conns,
            recent_failures: parking_lot::Mutex::new(VecDeque::new()),
            ejections: OnceLock::new(),
        })
    }

    /// Sends the backend's passive ejections to `owner` (once, when its actor starts).
    pub(crate) fn send_ejections_to(&self, owner: UnboundedSender<PassiveFailure>) {
        let _ = self.ejections.set(owner);
    }

    /// A request failed because of this backend. With `policy` (the request has not counted
    /// a failure yet), the failure counts towards passive ejection: once `max_fails` of them
    /// fall within `fail_timeout`, the backend's actor is told to take it offline and this
    /// returns true. A message, never a wait: the request path goes on at once.
    pub fn record_failure(&self, reason: String, policy: Option<&PassiveHealthConfig>) -> bool {
        TrafficStats::count(&self.stats.failures);
        let Some(policy) = policy.filter(|p| p.max_fails > 0) else {
            return false;
        };
        let now = Instant::now();
        let eject = {
            let mut recent = self.recent_failures.lock();
            while recent
                .front()
                .is_some_and(|at| now.duration_since(*at) > policy.fail_timeout)
            {
                recent.pop_front();
            }
            recent.push_back(now);
            let eject = recent.len() >= policy.max_fails as usize;
            if eject {
                recent.clear();
            }
            eject
        };
        if eject {
            log::warn!(
                "cluster '{}': backend '{}' taken out after {} failure(s) within {:?}: {reason}",
                self.cluster,
                self.name,
                policy.max_fails,
                policy.fail_timeout
            );
            if let Some(owner) = self.ejections.get() {
                // The owner is gone only once the backend has been removed and drained.
                let _ = owner.send(PassiveFailure {
                    reason,
                    recovery: policy.fail_timeout,
                });
            }
        }
        eject
    }
}
