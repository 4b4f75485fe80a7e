//! Latency histograms with fixed log-scale buckets, usable as Prometheus `le` buckets.
//!
//! Hot path: [`Histogram::record`] is two relaxed atomic adds into the recording thread's shard
//! (no lock, no allocation). Shards are indexed by a per-thread slot, so the worker threads
//! write to different cache lines; they are summed only when a reader takes a
//! [`HistogramSnapshot`] (the stats collector, once a second). Quantiles, deltas and merges
//! work on snapshots, off the request path.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds of the finite buckets in seconds, ascending: 50 µs to 60 s in steps of
/// 1, 1.5, 2, 3, 5, 7 per decade up to 30 s (a step of at most ×1.67), then 60 s. A last,
/// unbounded bucket (`+Inf`) counts everything slower.
pub const BUCKET_BOUNDS: [f64; 37] = [
    0.000_05, 0.000_07, //
    0.000_1, 0.000_15, 0.000_2, 0.000_3, 0.000_5, 0.000_7, //
    0.001, 0.001_5, 0.002, 0.003, 0.005, 0.007, //
    0.01, 0.015, 0.02, 0.03, 0.05, 0.07, //
    0.1, 0.15, 0.2, 0.3, 0.5, 0.7, //
    1.0, 1.5, 2.0, 3.0, 5.0, 7.0, //
    10.0, 15.0, 20.0, 30.0, 60.0,
];

/// Number of buckets: the finite ones plus `+Inf`.
pub const BUCKETS: usize = BUCKET_BOUNDS.len() + 1;

/// [`BUCKET_BOUNDS`] in nanoseconds, for exact comparisons on the hot path.
const BOUNDS_NANOS: [u64; BUCKET_BOUNDS.len()] = {
    let mut nanos = [0u64; BUCKET_BOUNDS.len()];
    let mut i = 0;
    while i < nanos.len() {
        // Rounded: the bounds are not exact in binary floating point.
        nanos[i] = (BUCKET_BOUNDS[i] * 1e9 + 0.5) as u64;
        i += 1;
    }
    nanos
};

/// Shards per histogram; threads beyond that share shards (still correct, a little contention).
const SHARDS: usize = 8;

static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's shard, handed out round-robin on first use.
    static SHARD: usize = NEXT_SHARD.fetch_add(1, Relaxed) % SHARDS;
}

/// One thread group's counters, on cache lines of its own.
#[repr(align(64))]
struct Shard {
    counts: [AtomicU64; BUCKETS],
    sum_nanos: AtomicU64,
}

impl Default for Shard {
    fn default() -> Shard {
        Shard {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
        }
    }
}

/// A lock-free latency histogram; see the module docs.
pub struct Histogram {
    shards: [Shard; SHARDS],
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram {
            shards: std::array::from_fn(|_| Shard::default()),
        }
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.snapshot();
        f.debug_struct("Histogram")
            .field("count", &s.count)
            .field("sum_seconds", &s.sum_seconds())
            .finish_non_exhaustive()
    }
}

/// The bucket a duration of `nanos` falls in: the first whose bound is `>=` it (`le`).
fn bucket_index(nanos: u64) -> usize {
    BOUNDS_NANOS.partition_point(|&bound| bound < nanos)
}

impl Histogram {
    /// Counts one observation (hot path).
    pub fn record(&self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        let shard = &self.shards[SHARD.with(|s| *s)];
        shard.counts[bucket_index(nanos)].fetch_add(1, Relaxed);
        shard.sum_nanos.fetch_add(nanos, Relaxed);
    }

    /// The sum over all shards. Concurrent records may or may not be included.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut snapshot = HistogramSnapshot::default();
        for shard in &self.shards {
            for (total, count) in snapshot.counts.iter_mut().zip(&shard.counts) {
                *total += count.load(Relaxed);
            }
            snapshot.sum_nanos = snapshot.sum_nanos.wrapping_add(shard.sum_nanos.load(Relaxed));
        }
        snapshot.count = snapshot.counts.iter().sum();
        snapshot
    }
}

/// A point-in-time copy of a [`Histogram`], or the difference of two.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Observations per bucket (not cumulative); the last is `+Inf`.
    pub counts: [u64; BUCKETS],
    /// The sum of all observations in nanoseconds.
    pub sum_nanos: u64,
    /// The number of observations (the sum of `counts`).
    pub count: u64,
}

impl Default for HistogramSnapshot {
    fn default() -> HistogramSnapshot {
        HistogramSnapshot {
            counts: [0; BUCKETS],
            sum_nanos: 0,
            count: 0,
        }
    }
}

impl HistogramSnapshot {
    /// The sum of all observations in seconds (Prometheus `_sum`).
    pub fn sum_seconds(&self) -> f64 {
        self.sum_nanos as f64 / 1e9
    }

    /// `(le, cumulative count)` per bucket, ending with `(f64::INFINITY, count)`: the
    /// Prometheus `_bucket` series.
    pub fn cumulative(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        let bounds = BUCKET_BOUNDS.iter().copied().chain([f64::INFINITY]);
        bounds.zip(self.counts.iter().scan(0, |total, &count| {
            *total += count;
            Some(*total)
        }))
    }

    /// The `q`-quantile (`0 <= q <= 1`) in seconds, interpolated linearly within its bucket as
    /// Prometheus' `histogram_quantile` does; observations above the last finite bound report
    /// that bound. `0.0` when there are no observations.
    pub fn quantile(&self, q: f64) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let rank = q.clamp(0.0, 1.0) * self.count as f64;
        let mut below = 0u64;
        for (i, &count) in self.counts.iter().enumerate() {
            if count == 0 || ((below + count) as f64) < rank {
                below += count;
                continue;
            }
            let Some(&upper) = BUCKET_BOUNDS.get(i) else {
                return BUCKET_BOUNDS[BUCKET_BOUNDS.len() - 1];
            };
            let lower = if i == 0 { 0.0 } else { BUCKET_BOUNDS[i - 1] };
            let within = (rank - below as f64) / count as f64;
            return lower + (upper - lower) * within;
        }
        BUCKET_BOUNDS[BUCKET_BOUNDS.len() - 1]
    }

    /// What was observed since `older` (a snapshot of the same histogram taken earlier).
    pub fn delta(&self, older: &HistogramSnapshot) -> HistogramSnapshot {
        let counts = std::array::from_fn(|i| self.counts[i].saturating_sub(older.counts[i]));
        HistogramSnapshot {
            counts,
            sum_nanos: self.sum_nanos.saturating_sub(older.sum_nanos),
            count: counts.iter().sum(),
        }
    }

    /// Adds `other`'s observations (e.g. a cluster's latency from its backends').
    pub fn merge(&mut self, other: &HistogramSnapshot) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.sum_nanos = self.sum_nanos.wrapping_add(other.sum_nanos);
        self.count += other.count;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: f64) -> Duration {
        Duration::from_secs_f64(v / 1000.0)
    }

    /// The width of the bucket holding `seconds`: the error bound of a quantile there.
    fn bucket_width(seconds: f64) -> f64 {
        let i = bucket_index((seconds * 1e9) as u64);
        let lower = if i == 0 { 0.0 } else { BUCKET_BOUNDS[i - 1] };
        BUCKET_BOUNDS[i] - lower
    }

    fn assert_near(actual: f64, expected: f64) {
        let err = (actual - expected).abs();
        assert!(
            err <= bucket_width(expected),
            "quantile {actual} vs {expected}: off by more than one bucket"
        );
    }

    #[test]
    fn bounds_are_ascending_and_exact_in_nanos() {
        assert!(BUCKET_BOUNDS.windows(2).all(|w| w[0] < w[1]));
        let up_to_30s = &BUCKET_BOUNDS[..BUCKET_BOUNDS.len() - 1];
        assert!(up_to_30s.windows(2).all(|w| w[1] / w[0] <= 5.0 / 3.0 + 1e-9));
        assert_eq!(BOUNDS_NANOS[0], 50_000);
        assert_eq!(BOUNDS_NANOS[8], 1_000_000);
        assert_eq!(BOUNDS_NANOS[36], 60_000_000_000);
    }

    #[test]
    fn values_on_a_bound_count_in_that_bucket() {
        assert_eq!(bucket_index(0), 0);
        assert_eq!(bucket_index(50_000), 0);
        assert_eq!(bucket_index(50_001), 1);
        assert_eq!(bucket_index(1_000_000), 8);
        assert_eq!(bucket_index(60_000_000_000), 36);
        assert_eq!(bucket_index(60_000_000_001), 37);
        assert_eq!(bucket_index(u64::MAX), 37);
    }

    #[test]
    fn uniform_distribution_quantiles_within_one_bucket() {
        let h = Histogram::default();
        for i in 1..=10_000 {
            h.record(ms(f64::from(i) / 100.0)); // 0.01 ms .. 100 ms
        }
        let s = h.snapshot();
        assert_eq!(s.count, 10_000);
        assert_near(s.quantile(0.5), 0.050);
        assert_near(s.quantile(0.9), 0.090);
        assert_near(s.quantile(0.99), 0.099);
        assert!((s.sum_seconds() - 500.05).abs() < 1e-3, "{}", s.sum_seconds());
    }

    #[test]
    fn exponential_like_distribution_quantiles_within_one_bucket() {
        // 90% at 2 ms, 9% at 40 ms, 1% at 800 ms.
        let h = Histogram::default();
        for (value, n) in [(2.0, 900), (40.0, 90), (800.0, 10)] {
            for _ in 0..n {
                h.record(ms(value));
            }
        }
        let s = h.snapshot();
        assert_near(s.quantile(0.5), 0.002);
        assert_near(s.quantile(0.95), 0.040);
        assert_near(s.quantile(0.999), 0.800);
        assert_eq!(s.quantile(0.0), 0.0015, "the lower edge of the first used bucket");
    }

    #[test]
    fn empty_and_overflowing_histograms() {
        assert_eq!(HistogramSnapshot::default().quantile(0.99), 0.0);
        let h = Histogram::default();
        h.record(Duration::from_secs(120));
        assert_eq!(h.snapshot().quantile(0.5), 60.0);
        assert_eq!(h.snapshot().counts[BUCKETS - 1], 1);
    }

    #[test]
    fn delta_keeps_only_new_observations() {
        let h = Histogram::default();
        h.record(ms(1.0));
        h.record(ms(1.0));
        let before = h.snapshot();
        h.record(ms(300.0));
        let delta = h.snapshot().delta(&before);
        assert_eq!(delta.count, 1);
        assert_eq!(delta.sum_nanos, 300_000_000);
        assert_near(delta.quantile(0.5), 0.300);
        // A reset (newer below older) never goes negative.
        assert_eq!(before.delta(&h.snapshot()), HistogramSnapshot::default());
    }

    #[test]
    fn merge_adds_counts_and_sums() {
        let (fast, slow) = (Histogram::default(), Histogram::default());
        for _ in 0..99 {
            fast.record(ms(1.0));
        }
        slow.record(ms(5_000.0));
        let mut merged = fast.snapshot();
        merged.merge(&slow.snapshot());
        assert_eq!(merged.count, 100);
        assert_eq!(merged.sum_nanos, 99_000_000 + 5_000_000_000);
        assert_near(merged.quantile(0.5), 0.001);
        assert_near(merged.quantile(1.0), 5.0);
    }

    #[test]
    fn records_from_many_threads_are_all_counted() {
        let h = std::sync::Arc::new(Histogram::default());
        let threads: Vec<_> = (0..12)
            .map(|_| {
                let h = h.clone();
                std::thread::spawn(move || (0..1000).for_each(|_| h.record(ms(3.0))))
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        let s = h.snapshot();
        assert_eq!(s.count, 12_000);
        assert_eq!(s.counts[bucket_index(3_000_000)], 12_000);
    }

    #[test]
    fn cumulative_series_ends_with_inf_and_total() {
        let h = Histogram::default();
        h.record(ms(0.01));
        h.record(ms(2.0));
        h.record(Duration::from_secs(100));
        let s = h.snapshot();
        let series: Vec<(f64, u64)> = s.cumulative().collect();
        assert_eq!(series.len(), BUCKETS);
        assert_eq!(series[0], (0.000_05, 1));
        assert_eq!(series[10], (0.002, 2));
        assert_eq!(series[BUCKETS - 2], (60.0, 2));
        assert_eq!(series[BUCKETS - 1], (f64::INFINITY, 3));
    }
}
