//! The StateSync actor: this replica's session with etcd (control plane; on a worker arbiter,
//! but it only awaits network answers there, never blocks). See the module docs of
//! `replicas` for what is shared and how.
//!
//! A session: grant a lease, register `<prefix>/replicas/<id>` on it, read everything under
//! `<prefix>/`, tell the Director the shared overlay and the capacity split, then watch
//! `<prefix>/` from the next revision and renew the lease every third of its TTL. Any failure
//! (a call, the watch ending, the lease found expired) ends the session: the replica keeps
//! what it has, reports `connected: false`, and starts a new session after a backoff (100 ms
//! doubling to 2 s) — registering again, re-reading, re-watching.

use std::collections::BTreeSet;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use serde::{Deserialize, Serialize};

use super::etcd::{Etcd, EtcdError, Event, Kv};
use super::{ReplicationStatus, SharedReplication};
use crate::cache::Purge;
use crate::cluster::cluster_actor::SharedClusters;
use crate::cluster::director_actor::shared::{PushOverlay, SetReplicaShare, SharedOverlayChanged};
use crate::cluster::director_actor::DirectorActor;
use crate::cluster::replica_share::ReplicaShare;
use crate::config::overlay::Overlay;
use crate::config::EtcdConfig;

/// First and longest wait before a new session after a failure.
const FIRST_RETRY: Duration = Duration::from_millis(100);
const LONGEST_RETRY: Duration = Duration::from_secs(2);

/// Command: tell the other replicas to purge `purge` from cluster `cluster`'s cache (done here
/// already). Dropped while etcd is unreachable.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct PublishPurge {
    pub cluster: String,
    pub purge: Purge,
}

/// A purge event as stored under `<prefix>/purges/`.
#[derive(Serialize, Deserialize)]
struct PurgeEvent {
    origin: String,
    cluster: String,
    purge: Purge,
}

/// Changes seen by the watch of session `session`.
#[derive(Message)]
#[rtype(result = "()")]
struct Watched {
    session: u64,
    events: Vec<Event>,
}

/// The actor.
pub struct StateSync {
    etcd: Rc<Etcd>,
    config: EtcdConfig,
    id: String,
    director: Addr<DirectorActor>,
    clusters: SharedClusters,
    status: SharedReplication,
    /// Bumped by every new session; answers of older ones are ignored.
    session: u64,
    connected: bool,
    lease: Option<i64>,
    renewing: bool,
    /// Live replicas as last seen (kept while etcd is away).
    replicas: BTreeSet<String>,
    watch: Option<SpawnHandle>,
    retry: Duration,
    purges_sent: u64,
}

impl StateSync {
    /// Starts the actor on `arbiter`; `status` gets this replica's view from then on.
    pub fn start(
        config: EtcdConfig,
        director: Addr<DirectorActor>,
        clusters: SharedClusters,
        arbiter: &actix_rt::ArbiterHandle,
    ) -> (Addr<StateSync>, SharedReplication) {
        let id = config
            .replica_id
            .clone()
            .unwrap_or_else(super::default_replica_id);
        let status: SharedReplication = Arc::new(arc_swap::ArcSwap::from_pointee(ReplicationStatus {
            backend: "etcd",
            endpoints: config.endpoints.clone(),
            prefix: config.prefix.clone(),
            replica_id: id.clone(),
            connected: false,
            last_error: None,
            replicas: vec![id.clone()],
            share: ReplicaShare::default(),
            revision: 0,
            lease: None,
        }));
        let shared = status.clone();
        let addr = StateSync::start_in_arbiter(arbiter, move |_| StateSync {
            etcd: Rc::new(Etcd::new(config.endpoints.clone(), config.dial_timeout)),
            config,
            id,
            director,
            clusters,
            status: shared,
            session: 0,
            connected: false,
            lease: None,
            renewing: false,
            replicas: BTreeSet::new(),
            watch: None,
            retry: FIRST_RETRY,
            purges_sent: 0,
        });
        (addr, status)
    }

    fn key(&self, rest: &str) -> String {
        format!("{}/{rest}", self.config.prefix)
    }

    fn update_status(&self, change: impl FnOnce(&mut ReplicationStatus)) {
        let mut status = ReplicationStatus::clone(&self.status.load());
        change(&mut status);
        self.status.store(Arc::new(status));
    }

    /// Starts a new session (see the module docs).
    fn connect(&mut self, ctx: &mut Context<Self>) {
        self.session += 1;
        let session = self.session;
        if let Some(watch) = self.watch.take() {
            ctx.cancel_future(watch);
        }
        let etcd = self.etcd.clone();
        let (ttl, me, prefix) = (
            self.config.lease_ttl,
            self.key(&format!("replicas/{}", self.id)),
            self.key(""),
        );
        let id = self.id.clone();
        let work = async move {
            let lease = etcd.grant(ttl).await?;
            etcd.put(&me, id.as_bytes(), lease).await?;
            let (kvs, revision) = etcd.range_prefix(&prefix).await?;
            Ok::<_, EtcdError>((lease, kvs, revision))
        };
        ctx.spawn(work.into_actor(self).map(move |result, act, ctx| {
            if session != act.session {
                return;
            }
            match result {
                Ok((lease, kvs, revision)) => act.connected(ctx, lease, kvs, revision),
                Err(e) => act.lost(ctx, e),
            }
        }));
    }

    /// A session is up: everything is re-read; tell the Director and watch from here.
    fn connected(&mut self, ctx: &mut Context<Self>, lease: i64, kvs: Vec<Kv>, revision: i64) {
        self.connected = true;
        self.lease = Some(lease);
        self.retry = FIRST_RETRY;
        log::info!(
            "cluster_state: connected to etcd as replica '{}' (prefix {})",
            self.id,
            self.config.prefix
        );
        let replicas_dir = self.key("replicas/");
        self.replicas = kvs
            .iter()
            .filter_map(|kv| kv.key.strip_prefix(&replicas_dir))
            .map(str::to_owned)
            .collect();
        let state_key = self.key("state");
        match kvs.iter().find(|kv| kv.key == state_key) {
            Some(kv) => self.state_changed(kv),
            None => self.director.do_send(SharedOverlayChanged {
                overlay: None,
                revision: 0,
            }),
        }
        self.share_changed();
        self.update_status(|s| {
            s.connected = true;
            s.lease = Some(lease);
        });
        let (etcd, addr, session, prefix) = (self.etcd.clone(), ctx.address(), self.session, self.key(""));
        let watching = async move {
            etcd.watch(&prefix, revision + 1, |events| {
                addr.do_send(Watched { session, events })
            })
            .await
        };
        let handle = ctx.spawn(watching.into_actor(self).map(move |error, act, ctx| {
            if session == act.session {
                act.lost(ctx, error);
            }
        }));
        self.watch = Some(handle);
    }

    /// The session failed: keep what we have, report, and try again after a backoff.
    fn lost(&mut self, ctx: &mut Context<Self>, error: EtcdError) {
        if self.connected {
            log::warn!("cluster_state: lost etcd ({error}); serving with the last state and replica count");
        } else {
            log::debug!("cluster_state: etcd still unreachable ({error})");
        }
        self.connected = false;
        self.session += 1;
        if let Some(watch) = self.watch.take() {
            ctx.cancel_future(watch);
        }
        let message = error.to_string();
        self.update_status(|s| {
            s.connected = false;
            s.last_error = Some(message);
        });
        let retry = self.retry;
        self.retry = (self.retry * 2).min(LONGEST_RETRY);
        let session = self.session;
        ctx.run_later(retry, move |act, ctx| {
            if act.session == session {
                act.connect(ctx);
            }
        });
    }

    /// The shared overlay at `kv` goes to the Director; one that can't be read is reported and
    /// offered as nothing shared (at its revision, so this replica's overlay replaces it).
    fn state_changed(&mut self, kv: &Kv) {
        let overlay = match serde_json::from_slice::<Overlay>(&kv.value) {
            Ok(overlay) => Some(overlay),
            Err(e) => {
                log::error!(
                    "cluster_state: {} holds no valid state ({e}); it will be replaced",
                    kv.key
                );
                None
            }
        };
        let revision = kv.mod_revision;
        self.update_status(|s| s.revision = revision);
        self.director.do_send(SharedOverlayChanged { overlay, revision });
    }

    /// Tells the Director this replica's share after the replica set changed.
    fn share_changed(&self) {
        let share = ReplicaShare::among(&self.id, self.replicas.iter().map(String::as_str));
        let mut replicas: Vec<String> = self.replicas.iter().cloned().collect();
        if !self.replicas.contains(&self.id) {
            replicas.push(self.id.clone());
            replicas.sort();
        }
        self.update_status(|s| {
            s.share = share;
            s.replicas = replicas;
        });
        self.director.do_send(SetReplicaShare(share));
    }

    /// Applies another replica's purge to the cluster's cache here.
    fn purge(&self, kv: &Kv) {
        let Ok(event) = serde_json::from_slice::<PurgeEvent>(&kv.value) else {
            log::warn!("cluster_state: unreadable purge event {}", kv.key);
            return;
        };
        if event.origin == self.id {
            return;
        }
        let cache = self
            .clusters
            .load()
            .get(&event.cluster)
            .and_then(|c| c.handle.cache.load_full());
        if let Some(cache) = cache {
            let n = cache.purge(&event.purge);
            log::info!(
                "cluster '{}': cache purge {:?} from replica '{}' removed {n} object(s)",
                event.cluster,
                event.purge,
                event.origin
            );
        }
    }

    /// Renews the lease; a lease found expired (this replica was away longer than its TTL)
    /// or a failure starts a new session.
    fn renew(&mut self, ctx: &mut Context<Self>) {
        let (Some(lease), true, false) = (self.lease, self.connected, self.renewing) else {
            return;
        };
        self.renewing = true;
        let (etcd, session) = (self.etcd.clone(), self.session);
        ctx.spawn(async move { etcd.keep_alive(lease).await }.into_actor(self).map(
            move |result, act, ctx| {
                act.renewing = false;
                if session != act.session {
                    return;
                }
                match result {
                    Ok(true) => {}
                    Ok(false) => act.lost(ctx, EtcdError::Decode("the lease expired".to_owned())),
                    Err(e) => act.lost(ctx, e),
                }
            },
        ));
    }
}

impl Actor for StateSync {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.connect(ctx);
        let every = (self.config.lease_ttl / 3).max(Duration::from_millis(200));
        ctx.run_interval(every, |act, ctx| act.renew(ctx));
    }
}

impl Handler<Watched> for StateSync {
    type Result = ();

    fn handle(&mut self, Watched { session, events }: Watched, _: &mut Context<Self>) {
        if session != self.session {
            return;
        }
        let (state_key, replicas_dir, purges_dir) =
            (self.key("state"), self.key("replicas/"), self.key("purges/"));
        let mut replicas_changed = false;
        for event in events {
            match event {
                Event::Put(kv) if kv.key == state_key => self.state_changed(&kv),
                Event::Delete { key, .. } if key == state_key => {
                    self.update_status(|s| s.revision = 0);
                    self.director.do_send(SharedOverlayChanged {
                        overlay: Some(Overlay::default()),
                        revision: 0,
                    });
                }
                Event::Put(kv) if kv.key.starts_with(&purges_dir) => self.purge(&kv),
                Event::Put(kv) => {
                    if let Some(id) = kv.key.strip_prefix(&replicas_dir) {
                        replicas_changed |= self.replicas.insert(id.to_owned());
                    }
                }
                Event::Delete { key, .. } => {
                    if let Some(id) = key.strip_prefix(&replicas_dir) {
                        replicas_changed |= self.replicas.remove(id);
                    }
                }
            }
        }
        if replicas_changed {
            self.share_changed();
        }
    }
}

impl Handler<PushOverlay> for StateSync {
    type Result = ();

    /// Compare-and-swap on the shared overlay's revision. A conflict is not an error: the
    /// newer overlay comes through the watch and the Director merges and pushes again. While
    /// disconnected nothing is sent: the next session's re-read leads to the same merge.
    fn handle(&mut self, PushOverlay { overlay, based_on }: PushOverlay, ctx: &mut Context<Self>) {
        if !self.connected {
            return;
        }
        let Ok(value) = serde_json::to_vec(&overlay) else {
            return;
        };
        let (etcd, key, session) = (self.etcd.clone(), self.key("state"), self.session);
        ctx.spawn(
            async move { etcd.put_if(&key, &value, based_on).await }
                .into_actor(self)
                .map(move |result, act, ctx| match result {
                    Ok(true) => log::debug!("cluster_state: runtime changes shared"),
                    Ok(false) => log::debug!("cluster_state: the shared state moved on; merging again"),
                    Err(e) if session == act.session => act.lost(ctx, e),
                    Err(_) => {}
                }),
        );
    }
}

impl Handler<PublishPurge> for StateSync {
    type Result = ();

    fn handle(&mut self, PublishPurge { cluster, purge }: PublishPurge, ctx: &mut Context<Self>) {
        let (Some(lease), true) = (self.lease, self.connected) else {
            log::warn!(
                "cluster_state: etcd unreachable; the purge of cluster '{cluster}' stays on this replica"
            );
            return;
        };
        self.purges_sent += 1;
        let key = self.key(&format!("purges/{}/{}", self.id, self.purges_sent));
        let event = PurgeEvent {
            origin: self.id.clone(),
            cluster,
            purge,
        };
        let Ok(value) = serde_json::to_vec(&event) else {
            return;
        };
        let etcd = self.etcd.clone();
        ctx.spawn(
            async move {
                if let Err(e) = etcd.put(&key, &value, lease).await {
                    log::warn!("cluster_state: the purge could not be shared ({e})");
                }
            }
            .into_actor(self),
        );
    }
}
