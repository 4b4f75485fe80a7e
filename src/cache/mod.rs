//! The object cache of a cluster: what it stores ([`store`], [`object`]), under which key
//! ([`key`]), by which rules ([`policy`], RFC 9111), how concurrent misses coalesce
//! ([`lock`]), how a response body is copied into it while it streams to the client
//! ([`fill`]) and what it counts ([`stats`]).
//!
//! A [`ClusterCache`] is built by the Cluster actor from the cluster's `cache:` settings and
//! published on its handle; the data plane (`proxy::cached`) loads it once per request. A
//! settings change keeps the stored objects unless `max_memory`, `max_object_size` or
//! `max_variants` changed; the counters live as long as the cluster.

pub mod fill;
pub mod key;
pub mod lock;
pub mod object;
pub mod policy;
pub mod stats;
pub mod store;

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use actix_web::http::header::HeaderMap;

use crate::config::CacheConfig;
pub use key::PrimaryKey;
pub use lock::{FillGuard, FillLocks, Lock};
pub use object::{Object, StaleUse};
pub use stats::{CacheSnapshot, CacheStats};
pub use store::{Purge, Store};

/// One cluster's cache as requests see it.
pub struct ClusterCache {
    pub config: CacheConfig,
    pub store: Arc<Store>,
    pub locks: Arc<FillLocks>,
    pub stats: Arc<CacheStats>,
}

impl ClusterCache {
    /// A cache for `config` (enabled), reusing `previous`'s objects when its bounds are the
    /// same, and `stats` either way.
    pub fn new(
        config: &CacheConfig,
        previous: Option<&ClusterCache>,
        stats: Arc<CacheStats>,
    ) -> ClusterCache {
        let bounds = |c: &CacheConfig| (c.max_memory, c.max_object_size, c.max_variants);
        let store = match previous {
            Some(p) if bounds(&p.config) == bounds(config) && p.config.key == config.key => p.store.clone(),
            _ => Arc::new(Store::new(
                config.max_memory,
                config.max_object_size,
                config.max_variants,
            )),
        };
        let locks = previous.map_or_else(Default::default, |p| p.locks.clone());
        ClusterCache {
            config: config.clone(),
            store,
            locks,
            stats,
        }
    }

    /// Counters and size now.
    pub fn snapshot(&self) -> CacheSnapshot {
        let mut s = self
            .stats
            .snapshot(self.store.len(), self.store.bytes(), self.store.max_memory());
        s.evictions += self.store.evictions();
        s
    }

    /// Removes what `purge` names; returns the number of objects removed.
    pub fn purge(&self, purge: &Purge) -> u64 {
        let n = self.store.purge(purge);
        self.stats
            .purges
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        n
    }

    /// Stores the object a 304 revalidated: `old` with the 304's headers, fresh again.
    /// `None` when the merged headers no longer allow storing (the old object is removed).
    pub fn revalidated(
        &self,
        key: &PrimaryKey,
        old: &Arc<Object>,
        not_modified: &HeaderMap,
    ) -> Option<Arc<Object>> {
        CacheStats::count(&self.stats.revalidations);
        let now = Instant::now();
        let mut merged = old.refreshed(not_modified, old.freshness, now);
        let headers: HeaderMap = merged.headers.iter().cloned().collect();
        let freshness = policy::storable(
            merged.status,
            &headers,
            false,
            self.config.default_ttl,
            SystemTime::now(),
        );
        let Some(freshness) = freshness else {
            self.purge(&Purge::Key(key.text.clone()));
            return None;
        };
        merged.freshness = freshness;
        let object = Arc::new(merged);
        self.store.replace(key, old, object.clone());
        Some(object)
    }
}
