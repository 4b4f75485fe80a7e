//! The Director's side of the runtime state shared by several replicas (control plane): the
//! replica's link to whoever shares it (the `StateSync` actor of `crate::replicas`, reached
//! only through [`PushOverlay`]), the shared overlay as last seen, and this replica's share of
//! the backends' capacity.
//!
//! - A local change (API, dashboard) is adopted as without sharing, then pushed: the
//!   overlay, with the revision of the shared overlay it was made from, so a push that raced
//!   another replica's fails instead of overwriting it.
//! - Whenever the shared overlay changes ([`SharedOverlayChanged`]: another replica's change,
//!   this replica's own coming back, or a resynchronisation after etcd was away), this
//!   replica's changes not yet in it are laid over it
//!   ([`merge_concurrent`](crate::config::overlay_merge::merge_concurrent)); the result is
//!   validated and adopted like a reload adopts the state file (the state file keeps a copy,
//!   for a restart while etcd is down) and, when it holds changes the shared one lacks,
//!   pushed in turn. Replicas converge: each push is based on the latest revision seen.
//! - Nothing shared yet (a new prefix): this replica's overlay (its state file) seeds it.
//! - [`SetReplicaShare`]: the number of live replicas changed; every cluster re-splits.

use actix::prelude::*;

use super::{DirectorActor, NextConfig};
use crate::cluster::cluster_actor::SetShare;
use crate::cluster::next_config::{off_worker, save_state, shared_overlay};
use crate::cluster::replica_share::ReplicaShare;
use crate::config::overlay::Overlay;
use crate::config::overlay_merge::merge_concurrent;

/// Command to the sharer: make `overlay` the shared overlay if that is still at revision
/// `based_on` (0: nothing shared yet); otherwise drop it (the newer one comes back as a
/// [`SharedOverlayChanged`], and this replica's changes are merged into it).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct PushOverlay {
    pub overlay: Overlay,
    pub based_on: i64,
}

/// Command: share runtime changes through `sync` from now on.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AttachShared {
    pub sync: Recipient<PushOverlay>,
}

/// Event: the shared overlay is `overlay` at `revision` (`None`: nothing is shared yet).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct SharedOverlayChanged {
    pub overlay: Option<Overlay>,
    pub revision: i64,
}

/// Command: this replica's share of each backend's capacity is now `0`.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct SetReplicaShare(pub ReplicaShare);

/// Where the runtime changes are shared, and what was shared last.
pub(super) struct SharedLink {
    sync: Recipient<PushOverlay>,
    /// The shared overlay as last seen (what this replica's own was made from).
    known: Overlay,
    /// Its revision (0: nothing shared yet).
    revision: i64,
}

impl DirectorActor {
    /// Pushes the overlay in force when it holds changes the shared one lacks.
    pub(super) fn push_shared(&self) {
        if let Some(link) = &self.shared {
            if self.overlay != link.known {
                link.sync.do_send(PushOverlay {
                    overlay: self.overlay.clone(),
                    based_on: link.revision,
                });
            }
        }
    }

    fn set_shared_state_error(&self, error: Option<String>) {
        let mut status = super::ConfigStatus::clone(&self.status.load());
        status.shared_state_error = error;
        self.status.store(std::sync::Arc::new(status));
    }
}

impl Handler<AttachShared> for DirectorActor {
    type Result = ();

    /// The overlay in force (the state file's, restored at start) counts as shared already:
    /// a replica coming back does not push what it had as changes of its own.
    fn handle(&mut self, AttachShared { sync }: AttachShared, _: &mut Context<Self>) {
        self.shared = Some(SharedLink {
            sync,
            known: self.overlay.clone(),
            revision: 0,
        });
    }
}

/// Merged, validated and persisted off the worker; atomic like a runtime change, so the next
/// change starts from the result.
impl Handler<SharedOverlayChanged> for DirectorActor {
    type Result = AtomicResponse<Self, ()>;

    fn handle(
        &mut self,
        SharedOverlayChanged { overlay, revision }: SharedOverlayChanged,
        _: &mut Context<Self>,
    ) -> Self::Result {
        let done = || AtomicResponse::new(Box::pin(fut::ready(())));
        let Some(link) = &mut self.shared else {
            return done();
        };
        link.revision = revision;
        let (merged, theirs) = match overlay {
            None => (self.overlay.clone(), Overlay::default()),
            Some(theirs) => (
                merge_concurrent(&link.known, &self.overlay, &theirs, &self.yaml),
                theirs,
            ),
        };
        link.known = theirs.clone();
        if merged == self.overlay {
            self.push_shared();
            return done();
        }
        let yaml = self.yaml.clone();
        let state_file = self.config.state_file.clone();
        let work = off_worker(move || {
            shared_overlay(&yaml, merged, &theirs).map(|next: NextConfig| {
                let saved = save_state(state_file.as_deref(), &next.overlay);
                (next, saved)
            })
        });
        AtomicResponse::new(Box::pin(work.into_actor(self).map(|done, act, _| {
            match done.map_err(|e| format!("interrupted: {e}")).and_then(|r| r) {
                Ok((next, saved)) => {
                    act.adopt(next, saved, None);
                    act.set_shared_state_error(None);
                    log::info!("runtime changes shared by the other replicas applied");
                    act.push_shared();
                }
                Err(problem) => act.set_shared_state_error(Some(problem)),
            }
        })))
    }
}

impl Handler<SetReplicaShare> for DirectorActor {
    type Result = ();

    fn handle(&mut self, SetReplicaShare(share): SetReplicaShare, _: &mut Context<Self>) {
        if share == self.share {
            return;
        }
        log::info!(
            "capacity split: this replica is {} of {} live replica(s)",
            share.rank + 1,
            share.count
        );
        self.share = share;
        let running = self
            .clusters
            .values()
            .chain(self.road_warriors.values().map(|(cluster, _)| cluster));
        for cluster in running {
            cluster.actor.do_send(SetShare(share));
        }
    }
}
