//! Replicas that share runtime state through etcd (control plane, off the request path).
//!
//! With `cluster_state.etcd` configured, one [`StateSync`](sync_actor::StateSync) actor per
//! process keeps this replica in step with the others:
//! - the runtime changes (the overlay laid over `config.yaml`: enable/disable, capacity,
//!   backends, buckets, cluster and cache settings, clusters and routes) are one JSON value
//!   under `<prefix>/state`, written with a compare-and-swap on its revision and watched by
//!   every replica, which applies it through the Director actor's validated path;
//! - cache purges made through the admin API are events under `<prefix>/purges/<replica>/<n>`
//!   (on the replica's lease, so they go by themselves), applied once by every other replica;
//! - each replica registers `<prefix>/replicas/<id>` under a lease it keeps alive, watches the
//!   others, and enforces its share of each backend's capacity
//!   ([`ReplicaShare`](crate::cluster::replica_share::ReplicaShare));
//! - while etcd is unreachable the replica serves with what it has (last state, last replica
//!   count), reports it ([`ReplicationStatus`]) and retries with backoff; once etcd is back it
//!   registers again, re-reads everything and watches from there — changes made here in the
//!   meantime are merged into the shared state then.
//!
//! `etcd` is the small JSON-gateway client this uses.

pub mod etcd;
pub mod sync_actor;

use std::sync::Arc;

use arc_swap::ArcSwap;
use serde::Serialize;

use crate::cluster::replica_share::ReplicaShare;
use crate::config::EtcdConfig;

/// What `GET /api/v1/status` and the dashboard show about the shared state.
#[derive(Debug, Clone, Serialize)]
pub struct ReplicationStatus {
    /// Where the state is shared: `etcd`.
    pub backend: &'static str,
    pub endpoints: Vec<String>,
    pub prefix: String,
    pub replica_id: String,
    /// Registered, reading and watching; `false` while etcd is unreachable (this replica then
    /// serves with the last state and replica count it saw).
    pub connected: bool,
    /// The last failure talking to etcd, kept after reconnecting until the next one.
    pub last_error: Option<String>,
    /// Live replicas (ids, sorted), this one included.
    pub replicas: Vec<String>,
    /// This replica's place among them: its share of each backend's capacity.
    pub share: ReplicaShare,
    /// The etcd revision of the shared state last applied (0: none shared yet).
    pub revision: i64,
    /// This replica's lease, once granted (revoked when the process stops: see [`leave`]).
    #[serde(skip)]
    pub lease: Option<i64>,
}

impl ReplicationStatus {
    /// One line for the dashboard: `etcd /director/shop: connected · 3 replicas, this one 2nd
    /// · revision 12`, or while etcd is away, what this replica serves with.
    pub fn summary(&self) -> String {
        let replicas = match self.replicas.len() {
            1 => "1 replica".to_owned(),
            n => format!("{n} replicas"),
        };
        let place = format!("this one {} of {}", self.share.rank + 1, self.share.count);
        if self.connected {
            format!(
                "etcd {}: connected as {} · {replicas}, {place} · revision {}",
                self.prefix, self.replica_id, self.revision
            )
        } else {
            format!(
                "etcd {}: unreachable ({}) · serving with the last state (revision {}) and {replicas}, {place}",
                self.prefix,
                self.last_error.as_deref().unwrap_or("not connected yet"),
                self.revision
            )
        }
    }
}

/// Written by the [`StateSync`](sync_actor::StateSync) actor, read by the admin surface.
pub type SharedReplication = Arc<ArcSwap<ReplicationStatus>>;

/// Revokes this replica's lease as the process stops gracefully, so its registration goes at
/// once and the others take its capacity share back without waiting `lease_ttl`. Called
/// after the workers (and the StateSync actor on one of them) have stopped, with a client of
/// its own; a failure only means the lease expires by itself.
pub async fn leave(status: &SharedReplication, config: &EtcdConfig) {
    let Some(lease) = status.load().lease else {
        return;
    };
    let client = etcd::Etcd::new(config.endpoints.clone(), config.dial_timeout);
    match client.revoke(lease).await {
        Ok(()) => log::info!("cluster_state: left (lease revoked)"),
        Err(e) => log::warn!("cluster_state: could not revoke the lease ({e}); it expires by itself"),
    }
}

/// This replica's id when `replica_id` is not configured: the host name and the process id
/// (unique on a host; a Kubernetes pod's host name is its name).
pub fn default_replica_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "director".to_owned());
    format!("{host}-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_says_what_this_replica_serves_with() {
        let mut status = ReplicationStatus {
            backend: "etcd",
            endpoints: vec!["http://e:2379".into()],
            prefix: "/d/shop".into(),
            replica_id: "b".into(),
            connected: true,
            last_error: None,
            replicas: vec!["a".into(), "b".into()],
            share: ReplicaShare { rank: 1, count: 2 },
            revision: 12,
            lease: Some(7),
        };
        assert_eq!(
            status.summary(),
            "etcd /d/shop: connected as b · 2 replicas, this one 2 of 2 · revision 12"
        );
        status.connected = false;
        status.last_error = Some("refused".into());
        assert_eq!(
            status.summary(),
            "etcd /d/shop: unreachable (refused) · serving with the last state (revision 12) and 2 replicas, this one 2 of 2"
        );
        let json = serde_json::to_value(&status).expect("serializes");
        assert!(json.get("lease").is_none(), "the lease id is no one's business");
    }
}
