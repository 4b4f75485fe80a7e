//! The Director's discovery entries (control plane): one Discovery actor per `discover:`
//! entry of each cluster, the last good answer of each, and their status.
//!
//! Owned by the Director actor, which is the only writer: it reconciles the set with each
//! configuration it adopts (a reload or a runtime change), expands a cluster's entries into
//! backends before applying the cluster, and takes each round's outcome. An entry whose query
//! (name, type, port) is unchanged keeps its last good answer across reloads — its backends
//! stay as they are, no flapping — and its actor, unless the resolver or the interval bounds
//! changed. A failed round changes no backend.
//!
//! An operator may switch a discovered backend off and on (its only setting that is not
//! DNS's): the choice is kept here while its address stays in the answers, over the entry's
//! `enabled`, and not in the state file — discovered backends are not persisted.

use std::collections::BTreeMap;

use actix::prelude::*;

use super::arbiters::Arbiters;
use super::discovery::{expand, DiscoveryStatus, Target};
use super::discovery_actor::{DiscoveryActor, Resolved, StopDiscovery};
use crate::config::edit::{ClusterEdit, EditError};
use crate::config::{ClusterConfig, Config, DiscoveryConfig, ResolverConfig};

/// Every running discovery entry, by cluster and entry name.
#[derive(Default)]
pub(super) struct DiscoverySet {
    running: BTreeMap<(String, String), Running>,
    /// Tells each actor's reports apart from those of the actor it replaced.
    next_id: u64,
    /// An operator's `enabled` for discovered backends, by cluster and backend name.
    enabled: BTreeMap<(String, String), bool>,
}

struct Running {
    id: u64,
    actor: Addr<DiscoveryActor>,
    entry: DiscoveryConfig,
    resolver: ResolverConfig,
    /// The targets of the last good answer (sorted); `None` before the first.
    last_good: Option<Vec<Target>>,
    status: DiscoveryStatus,
}

impl Running {
    /// Whether the actor asking for `self.entry` must be replaced to ask for `entry`.
    fn asks_differently(&self, entry: &DiscoveryConfig, resolver: &ResolverConfig) -> bool {
        let asking = |e: &DiscoveryConfig| (e.query.clone(), e.min_interval, e.max_interval);
        asking(&self.entry) != asking(entry) || self.resolver != *resolver
    }
}

impl DiscoverySet {
    /// Brings the set to `config`: starts actors for new entries, replaces those that ask
    /// differently now, stops those whose entry (or cluster) is gone.
    pub(super) fn reconcile(&mut self, config: &Config, report: &Recipient<Resolved>, arbiters: &Arbiters) {
        let mut next = BTreeMap::new();
        for (cluster, cluster_config) in &config.clusters {
            for entry in &cluster_config.discover {
                let key = (cluster.clone(), entry.name.clone());
                let running = match self.running.remove(&key) {
                    Some(mut kept) if !kept.asks_differently(entry, &config.resolver) => {
                        kept.entry = entry.clone();
                        kept
                    }
                    Some(replaced) => {
                        replaced.actor.do_send(StopDiscovery);
                        let mut running = self.start(cluster, entry, &config.resolver, report, arbiters);
                        if replaced.entry.query == entry.query {
                            running.last_good = replaced.last_good;
                            running.status = replaced.status;
                        }
                        running
                    }
                    None => {
                        log::info!(
                            "cluster '{cluster}': discovering backends '{}' by DNS ({} {})",
                            entry.name,
                            entry.query.record.as_str(),
                            entry.query.name
                        );
                        self.start(cluster, entry, &config.resolver, report, arbiters)
                    }
                };
                next.insert(key, running);
            }
        }
        for ((cluster, entry), gone) in std::mem::replace(&mut self.running, next) {
            log::info!("cluster '{cluster}': discovery '{entry}' stopped");
            gone.actor.do_send(StopDiscovery);
        }
    }

    fn start(
        &mut self,
        cluster: &str,
        entry: &DiscoveryConfig,
        resolver: &ResolverConfig,
        report: &Recipient<Resolved>,
        arbiters: &Arbiters,
    ) -> Running {
        self.next_id += 1;
        Running {
            id: self.next_id,
            actor: DiscoveryActor::start(self.next_id, cluster, entry, resolver, report.clone(), arbiters),
            entry: entry.clone(),
            resolver: resolver.clone(),
            last_good: None,
            status: DiscoveryStatus::new(cluster, entry),
        }
    }

    /// `config` of cluster `cluster` with its entries' backends, from their last good
    /// answers; records in each entry's status which backends it stands for.
    pub(super) fn expand(&mut self, cluster: &str, config: &ClusterConfig) -> ClusterConfig {
        if config.discover.is_empty() {
            return config.clone();
        }
        let key = |entry: &str| (cluster.to_owned(), entry.to_owned());
        let running = &self.running;
        let (mut expanded, taken) = expand(config, |entry| {
            running.get(&key(entry)).and_then(|r| r.last_good.as_deref())
        });
        for b in expanded.backends.iter_mut().filter(|b| b.discovered_by.is_some()) {
            if let Some(enabled) = self.enabled.get(&key(&b.name)) {
                b.enabled = *enabled;
            }
        }
        // An address that left the answers takes its operator's choice along.
        self.enabled
            .retain(|(c, name), _| c != cluster || expanded.backends.iter().any(|b| b.name == *name));
        for entry in &config.discover {
            if let Some(r) = self.running.get_mut(&key(&entry.name)) {
                r.status.backends = expanded
                    .backends
                    .iter()
                    .filter(|b| b.discovered_by.as_deref() == Some(entry.name.as_str()))
                    .map(|b| b.name.clone())
                    .collect();
                r.status.names_taken = taken
                    .iter()
                    .filter(|t| t.entry == entry.name)
                    .map(|t| t.backend.clone())
                    .collect();
                for name in &r.status.names_taken {
                    log::warn!(
                        "cluster '{cluster}': discovery '{}': backend name '{name}' is taken; that address is left out",
                        entry.name
                    );
                }
            }
        }
        expanded
    }

    /// The entry that found backend `backend` of `cluster` (in its last expansion), if any.
    fn entry_of(&self, cluster: &str, backend: &str) -> Option<&str> {
        self.running
            .iter()
            .find(|((c, _), r)| c == cluster && r.status.backends.iter().any(|b| b == backend))
            .map(|((_, entry), _)| entry.as_str())
    }

    /// An operator's edit of a discovered backend of `cluster` (`None`: `edit` is not about
    /// one). DNS adds and removes it and its entry sets it up, so only `{"enabled": bool}` is
    /// taken (kept here; the caller re-applies the cluster): `Ok(backend)`. Anything else is a
    /// conflict pointing at the entry.
    pub(super) fn operator_edit(
        &mut self,
        cluster: &str,
        edit: &ClusterEdit,
    ) -> Option<Result<String, EditError>> {
        let (name, patch) = match edit {
            ClusterEdit::PatchBackend(name, patch) => (name, Some(patch)),
            ClusterEdit::RemoveBackend(name) => (name, None),
            _ => return None,
        };
        let entry = self.entry_of(cluster, name)?;
        let enabled = patch
            .filter(|patch| patch.len() == 1)
            .and_then(|patch| patch.get("enabled")?.as_bool());
        let Some(enabled) = enabled else {
            return Some(Err(EditError::Conflict(format!(
                "backend `{name}` was found by DNS through the entry `{entry}`: only `enabled` can be set on it; \
                 change or remove the entry `{entry}` for anything else"
            ))));
        };
        self.enabled.insert((cluster.to_owned(), name.clone()), enabled);
        Some(Ok(name.clone()))
    }

    /// Takes one round's outcome; answers the cluster whose backends it changes, if any.
    pub(super) fn resolved(&mut self, msg: Resolved) -> Option<String> {
        let key = (msg.cluster, msg.entry);
        let running = self.running.get_mut(&key).filter(|r| r.id == msg.id)?;
        let status = &mut running.status;
        status.last_resolution = Some(msg.at);
        status.next_in_ms = Some(u64::try_from(msg.next_in.as_millis()).unwrap_or(u64::MAX));
        match msg.outcome {
            Err(e) => {
                status.error = Some(e);
                None
            }
            Ok(answer) => {
                status.error = None;
                status.last_success = Some(msg.at);
                status.records = answer.records;
                status.ttl = Some(answer.ttl.as_secs());
                let mut targets = answer.targets;
                targets.sort();
                targets.dedup();
                if running.last_good.as_ref() == Some(&targets) {
                    return None;
                }
                log::info!(
                    "cluster '{}': discovery '{}' found {} address(es)",
                    key.0,
                    key.1,
                    targets.len()
                );
                running.last_good = Some(targets);
                Some(key.0)
            }
        }
    }

    /// Every entry's status, by cluster and entry name.
    pub(super) fn statuses(&self) -> Vec<DiscoveryStatus> {
        self.running.values().map(|r| r.status.clone()).collect()
    }
}
