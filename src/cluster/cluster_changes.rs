//! Reconfiguring a running cluster (control plane): [`ApplyConfig`] brings the Cluster actor
//! from its current configuration to a new one — settings, bucket tree, health checks and
//! membership — with the least disturbance.
//!
//! Backends whose address and script mapping are unchanged keep their actor, health, counters
//! and pooled connections (a changed role, capacity or `enabled` is applied in place); removed
//! ones drain (requests in flight finish); ones whose address changed are drained and replaced
//! by a new backend of the same name. Used by config reloads and by every runtime change made
//! through the admin API.

use std::sync::Arc;

use actix::prelude::*;

use super::backend::Backend;
use super::backend_actor::{BackendActor, Reconfigure, SetWatch};
use super::cluster_actor::{publish, ClusterActor, ClusterError, Member};
use super::topology::ClusterSettings;
use crate::config::ClusterConfig;

/// Command: make the cluster match `0` (already validated by the config loader). Fails only
/// for an invalid bucket tree, and then changes nothing.
#[derive(Message, Debug)]
#[rtype(result = "Result<(), ClusterError>")]
pub struct ApplyConfig(pub ClusterConfig);

impl Handler<ApplyConfig> for ClusterActor {
    type Result = Result<(), ClusterError>;

    fn handle(&mut self, ApplyConfig(new): ApplyConfig, ctx: &mut Context<Self>) -> Self::Result {
        if new == self.config {
            return Ok(());
        }
        if (&new.buckets, &new.default_bucket) != (&self.config.buckets, &self.config.default_bucket) {
            self.change_buckets(new.buckets.clone(), new.default_bucket.clone())?;
        }
        let (settings, admission) = ClusterSettings::from_config(&new);
        self.handle.settings.store(Arc::new(settings));
        self.handle.admission.configure(admission);
        self.handle.configure_cache(&new.cache);
        let watch_of =
            |c: &ClusterConfig| (c.health.clone(), c.sticky_offline, c.passive_health.fail_timeout);
        let watch_changed = watch_of(&new) != watch_of(&self.config);
        if watch_changed {
            self.watch.health = new.health.clone();
            self.watch.sticky_offline = new.sticky_offline;
            self.watch.passive_recovery = new.passive_health.fail_timeout;
        }
        self.change_members(&new, watch_changed, &ctx.address());
        log::info!("cluster '{}': configuration applied", self.handle.name);
        self.config = new;
        publish(&self.handle, self.members.iter().map(|m| (&m.backend, &m.status)));
        self.publish_statuses();
        self.reap_drained();
        Ok(())
    }
}

impl ClusterActor {
    /// Rebuilds the member list in `new`'s order; the caller publishes.
    fn change_members(&mut self, new: &ClusterConfig, watch_changed: bool, me: &Addr<ClusterActor>) {
        let mut old = std::mem::take(&mut self.members);
        for b in &new.backends {
            let fastcgi = b.fastcgi.as_ref().or(new.fastcgi.as_ref()).cloned();
            let kept = old.iter().position(|m| {
                m.backend.name == b.name && m.backend.url == b.url && m.backend.fastcgi == fastcgi
            });
            let member = match kept {
                Some(i) => {
                    let mut m = old.remove(i);
                    let before = self.config.backends.iter().find(|o| o.name == b.name);
                    // `enabled` is touched only when the configuration changed it, so a
                    // reload doesn't undo an operator's (or sticky offline's) decision.
                    let enabled = before.is_none_or(|o| o.enabled != b.enabled).then_some(b.enabled);
                    if (m.status.role, m.status.capacity) != (b.role, b.capacity) || enabled.is_some() {
                        m.status.role = b.role;
                        m.status.capacity = b.capacity;
                        if let Some(enabled) = enabled {
                            m.status.enabled = enabled;
                        }
                        m.addr.do_send(Reconfigure {
                            role: b.role,
                            capacity: b.capacity,
                            enabled,
                        });
                    }
                    if watch_changed {
                        m.addr.do_send(SetWatch(self.watch.clone()));
                    }
                    m
                }
                None => {
                    let backend = Backend::new(&self.handle.name, &b.name, b.url.clone(), fastcgi);
                    let status = BackendActor::initial_status(&backend, b, new.health.as_ref());
                    log::info!(
                        "cluster '{}': backend '{}' added ({})",
                        self.handle.name,
                        b.name,
                        b.url.text
                    );
                    Member::spawn(backend, status, me, &self.watch)
                }
            };
            self.members.push(member);
        }
        for gone in old {
            self.drain(gone);
        }
    }
}
