//! A cluster cache's counters (hot path writers, admin readers) and the snapshot the API,
//! event stream, history and `/metrics` show.
//!
//! Every counter is a relaxed atomic; `objects` and `bytes` are read from the store when a
//! snapshot is taken.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::Serialize;

/// What a cache counts.
#[derive(Debug, Default)]
pub struct CacheStats {
    /// Requests that consulted the cache (cacheable method, not bypassed).
    pub lookups: AtomicU64,
    /// Served from a fresh object without going to a backend.
    pub hits: AtomicU64,
    /// No usable object: forwarded.
    pub misses: AtomicU64,
    /// A stale object served because the backend failed or nothing could take the request.
    pub stale_if_error: AtomicU64,
    /// A stale object served at once while a background request refreshes it.
    pub stale_while_revalidate: AtomicU64,
    /// 304s from a backend that refreshed a stored object.
    pub revalidations: AtomicU64,
    /// Requests that waited for another request's fill of the same key.
    pub coalesced: AtomicU64,
    /// Background refreshes started (`update: shadowed`).
    pub background_refreshes: AtomicU64,
    /// Objects stored (new or replacing one).
    pub stores: AtomicU64,
    /// Responses that could not be stored: larger than `max_object_size`, cut, or aborted.
    pub abandoned: AtomicU64,
    /// Objects pushed out to make room.
    pub evictions: AtomicU64,
    /// Objects removed by purges (API, `PURGE` method, unsafe requests).
    pub purges: AtomicU64,
}

/// A point-in-time copy of a cache's counters and size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct CacheSnapshot {
    pub enabled: bool,
    pub lookups: u64,
    pub hits: u64,
    pub misses: u64,
    /// Stale objects served, for both reasons.
    pub stale: u64,
    pub stale_if_error: u64,
    pub stale_while_revalidate: u64,
    pub revalidations: u64,
    pub coalesced: u64,
    pub background_refreshes: u64,
    pub stores: u64,
    pub abandoned: u64,
    pub evictions: u64,
    pub purges: u64,
    /// Keys stored (each with up to `max_variants` variants).
    pub objects: u64,
    /// Bytes stored, keys and headers included: never above `max_memory`.
    pub bytes: u64,
    pub max_memory: u64,
    /// `hits / lookups` (stale serves are not hits); 0 without lookups.
    pub hit_ratio: f64,
}

impl CacheStats {
    /// Counts one event.
    pub fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    /// The counters, with the store's size.
    pub fn snapshot(&self, objects: u64, bytes: u64, max_memory: u64) -> CacheSnapshot {
        let get = |c: &AtomicU64| c.load(Relaxed);
        let (lookups, hits) = (get(&self.lookups), get(&self.hits));
        let (sie, swr) = (get(&self.stale_if_error), get(&self.stale_while_revalidate));
        CacheSnapshot {
            enabled: true,
            lookups,
            hits,
            misses: get(&self.misses),
            stale: sie + swr,
            stale_if_error: sie,
            stale_while_revalidate: swr,
            revalidations: get(&self.revalidations),
            coalesced: get(&self.coalesced),
            background_refreshes: get(&self.background_refreshes),
            stores: get(&self.stores),
            abandoned: get(&self.abandoned),
            evictions: get(&self.evictions),
            purges: get(&self.purges),
            objects,
            bytes,
            max_memory,
            hit_ratio: ratio(hits, lookups),
        }
    }
}

impl CacheSnapshot {
    /// The sum of several caches (the `total` of every cluster).
    pub fn sum<'a>(snapshots: impl IntoIterator<Item = &'a CacheSnapshot>) -> CacheSnapshot {
        let mut t = CacheSnapshot::default();
        for s in snapshots {
            t.enabled |= s.enabled;
            t.lookups += s.lookups;
            t.hits += s.hits;
            t.misses += s.misses;
            t.stale += s.stale;
            t.stale_if_error += s.stale_if_error;
            t.stale_while_revalidate += s.stale_while_revalidate;
            t.revalidations += s.revalidations;
            t.coalesced += s.coalesced;
            t.background_refreshes += s.background_refreshes;
            t.stores += s.stores;
            t.abandoned += s.abandoned;
            t.evictions += s.evictions;
            t.purges += s.purges;
            t.objects += s.objects;
            t.bytes += s.bytes;
            t.max_memory += s.max_memory;
        }
        t.hit_ratio = ratio(t.hits, t.lookups);
        t
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_and_sum() {
        let s = CacheStats::default();
        for _ in 0..3 {
            CacheStats::count(&s.lookups);
        }
        CacheStats::count(&s.hits);
        CacheStats::count(&s.stale_if_error);
        let a = s.snapshot(2, 100, 1000);
        assert_eq!(
            (a.lookups, a.hits, a.stale, a.objects, a.bytes),
            (3, 1, 1, 2, 100)
        );
        assert!((a.hit_ratio - 1.0 / 3.0).abs() < 1e-9);
        let total = CacheSnapshot::sum([&a, &a]);
        assert_eq!(
            (total.lookups, total.hits, total.bytes, total.max_memory),
            (6, 2, 200, 2000)
        );
        assert!((total.hit_ratio - 1.0 / 3.0).abs() < 1e-9);
        assert_eq!(CacheSnapshot::default().hit_ratio, 0.0);
    }
}
