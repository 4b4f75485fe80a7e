//! Passive health on the request path: a failed attempt that is the backend's fault counts
//! against it, at most once per client request, and takes it out of rotation only after
//! `passive_health.max_fails` such failures within `passive_health.fail_timeout`.
//!
//! Hot path only when an attempt failed. One client request counts at most one failure
//! however many backends it visits, so a request that breaks every backend (or a client that
//! makes requests fail) can't eject them one after the other.

use super::error::ProxyError;
use crate::cluster::{ClusterHandle, Grant};
use crate::stats::TrafficStats;

/// Records the failure of `grant`'s backend and returns the capacity: as a plain release, or,
/// when the backend reached its failure limit, by taking the backend out of rotation until
/// the control plane brings it back. `counts`: this request has not counted a failure yet.
pub fn backend_failed(grant: Grant, cluster: &ClusterHandle, error: &ProxyError, counts: bool) {
    TrafficStats::count(&cluster.admission.stats.failures);
    let policy = counts.then(|| cluster.settings.load().passive_health);
    if grant.backend().record_failure(error.to_string(), policy.as_ref()) {
        grant.fail();
    }
}
