//! Request counters shared between the data plane (writers) and the admin surface (readers).
//!
//! Hot path: every counter is a relaxed atomic, so recording an outcome never locks and reading
//! stats never touches a request. Snapshots are plain serde structs for the API.
//!
//! Pure counters: nothing here reads the topology or is an actor, so the data plane's views
//! (backends, admission) can hold them. [`histogram`] keeps latency buckets (hot path); the
//! once-a-second sampling of these counters is the admin surface's (`admin::live`).

pub mod histogram;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use serde::Serialize;

pub use histogram::{Histogram, HistogramSnapshot};

/// A gauge with its high-water mark and the number of increments ever: `{current, max, total}`.
#[derive(Debug, Default)]
pub struct Gauge {
    current: AtomicU64,
    max: AtomicU64,
    total: AtomicU64,
}

/// A point-in-time copy of a [`Gauge`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct GaugeSnapshot {
    pub current: u64,
    pub max: u64,
    pub total: u64,
}

impl Gauge {
    /// Adds one; raises `max` when needed and counts the increment in `total`.
    pub fn inc(&self) {
        let now = self.current.fetch_add(1, Relaxed) + 1;
        self.max.fetch_max(now, Relaxed);
        self.total.fetch_add(1, Relaxed);
    }

    /// Removes one.
    pub fn dec(&self) {
        self.current.fetch_sub(1, Relaxed);
    }

    /// The live value.
    pub fn current(&self) -> u64 {
        self.current.load(Relaxed)
    }

    pub fn snapshot(&self) -> GaugeSnapshot {
        GaugeSnapshot {
            current: self.current.load(Relaxed),
            max: self.max.load(Relaxed),
            total: self.total.load(Relaxed),
        }
    }
}

/// Responses by status class, 1xx to 5xx.
#[derive(Debug, Default)]
pub struct StatusClasses([AtomicU64; 5]);

impl StatusClasses {
    pub fn record(&self, status: u16) {
        if let Some(slot) = (status / 100).checked_sub(1).and_then(|i| self.0.get(i as usize)) {
            slot.fetch_add(1, Relaxed);
        }
    }

    pub fn snapshot(&self) -> [u64; 5] {
        std::array::from_fn(|i| self.0[i].load(Relaxed))
    }
}

/// Counters of one backend or one cluster; the cluster's are the sum over its backends plus
/// what happened before a backend was chosen (queueing, drops).
#[derive(Debug, Default)]
pub struct TrafficStats {
    /// Requests handed to a backend and not yet finished.
    pub in_flight: Gauge,
    /// Requests waiting in a queue (cluster level only).
    pub queued: Gauge,
    /// Responses relayed to clients by status class (generated errors included at cluster level).
    pub responses: StatusClasses,
    /// Attempts that failed because of the backend (connect, I/O, protocol, timeout).
    pub failures: AtomicU64,
    /// Attempts repeated on another backend after a failure.
    pub retries: AtomicU64,
    /// Requests answered with a generated 503/504.
    pub dropped: AtomicU64,
    /// Request body bytes sent to backends.
    pub bytes_in: AtomicU64,
    /// Response body bytes relayed to clients.
    pub bytes_out: AtomicU64,
    /// Upgraded connections (WebSocket and other `Upgrade` tunnels): open now, most at once,
    /// opened ever.
    pub tunnels: Gauge,
    /// How long requests took (see [`TrafficStats::record_latency`]); read with
    /// [`TrafficStats::latency_snapshot`], not part of [`TrafficSnapshot`].
    pub latency: Histogram,
}

/// A point-in-time copy of [`TrafficStats`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TrafficSnapshot {
    pub in_flight: GaugeSnapshot,
    pub queued: GaugeSnapshot,
    /// `[1xx, 2xx, 3xx, 4xx, 5xx]`.
    pub responses: [u64; 5],
    pub failures: u64,
    pub retries: u64,
    pub dropped: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub tunnels: GaugeSnapshot,
}

impl TrafficStats {
    pub fn add_bytes_in(&self, n: usize) {
        self.bytes_in.fetch_add(n as u64, Relaxed);
    }

    pub fn add_bytes_out(&self, n: usize) {
        self.bytes_out.fetch_add(n as u64, Relaxed);
    }

    pub fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    /// Counts one finished request's latency (hot path: two relaxed atomic adds).
    pub fn record_latency(&self, latency: Duration) {
        self.latency.record(latency);
    }

    /// A copy of the latency histogram (sums the per-thread shards; not for the hot path).
    pub fn latency_snapshot(&self) -> HistogramSnapshot {
        self.latency.snapshot()
    }

    pub fn snapshot(&self) -> TrafficSnapshot {
        TrafficSnapshot {
            in_flight: self.in_flight.snapshot(),
            queued: self.queued.snapshot(),
            responses: self.responses.snapshot(),
            failures: self.failures.load(Relaxed),
            retries: self.retries.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            bytes_in: self.bytes_in.load(Relaxed),
            bytes_out: self.bytes_out.load(Relaxed),
            tunnels: self.tunnels.snapshot(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauge_tracks_current_max_total() {
        let g = Gauge::default();
        g.inc();
        g.inc();
        g.dec();
        g.inc();
        assert_eq!(
            g.snapshot(),
            GaugeSnapshot {
                current: 2,
                max: 2,
                total: 3
            }
        );
    }

    #[test]
    fn status_classes_ignore_out_of_range() {
        let s = StatusClasses::default();
        for code in [100, 204, 302, 404, 503, 599, 0, 99, 600] {
            s.record(code);
        }
        assert_eq!(s.snapshot(), [1, 1, 1, 1, 2]);
    }
}
