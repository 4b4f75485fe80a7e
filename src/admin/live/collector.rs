//! The StatsCollector actor and [`LiveStats`], the handle the admin surface holds.
//!
//! Control plane. Once a second the collector reads the published topology and every cluster's
//! and backend's counters, turns the differences since the last round into a [`Sample`] (rates,
//! gauges, latency quantiles from histogram deltas, the object caches' hit ratios and sizes),
//! records it in the [`History`], raises the per-scope rate peaks, and broadcasts it as JSON to
//! the event-stream subscribers. It never touches a request: the data plane only bumps atomics.
//! A slow subscriber cannot hold it up — the broadcast channel overwrites what a lagging
//! receiver has not read yet. With a history file (beside the state file) it writes the history there now and then and at
//! shutdown, on the blocking pool ([`super::persist`]).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use parking_lot::Mutex;
use tokio::sync::broadcast;

pub use super::history::Sample;
use super::history::{
    compact, BackendSample, BucketSample, CacheSample, ClusterSample, History, Window, MS_STEP, RATE_STEP,
    RATIO_STEP,
};
use super::persist::{self, Stored};
use crate::admin::metrics::Scope;
use crate::cache::CacheSnapshot;
use crate::cluster::backend::BackendId;
use crate::cluster::backend_status::BackendStatus;
use crate::cluster::{Backend, ClusterHandle, SharedTopology};
use crate::stats::histogram::HistogramSnapshot;
use crate::stats::TrafficSnapshot;

/// How often a sample is taken.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// Samples a subscriber may fall behind before it skips ahead.
const SUBSCRIBER_BACKLOG: usize = 8;

/// Seconds between two samples; turns counter differences into per-second rates.
#[derive(Debug, Clone, Copy)]
struct Elapsed(f64);

impl Elapsed {
    fn rate(self, now: u64, before: u64) -> f32 {
        if self.0 <= 0.0 {
            return 0.0;
        }
        compact(now.saturating_sub(before) as f64 / self.0, RATE_STEP)
    }
}

/// p50 and p99 in milliseconds; `None` when nothing was observed.
fn percentiles(latency: &HistogramSnapshot) -> (Option<f32>, Option<f32>) {
    if latency.count == 0 {
        return (None, None);
    }
    let ms = |q| Some(compact(latency.quantile(q) * 1000.0, MS_STEP));
    (ms(0.5), ms(0.99))
}

/// A cluster's counters at the previous round.
struct ClusterBefore {
    /// Held so that the address used as the key cannot be reused by a new cluster meanwhile.
    _handle: Arc<ClusterHandle>,
    traffic: TrafficSnapshot,
    /// `(served, dropped)` per bucket name.
    buckets: HashMap<String, (u64, u64)>,
    /// The cache's counters; `None` while it was disabled.
    cache: Option<CacheSnapshot>,
}

/// A backend's counters at the previous round.
struct BackendBefore {
    traffic: TrafficSnapshot,
    latency: HistogramSnapshot,
}

/// What a round saw, which becomes the next round's "before".
#[derive(Default)]
struct Seen {
    clusters: HashMap<usize, ClusterBefore>,
    backends: HashMap<BackendId, BackendBefore>,
}

/// Turns counters into samples of per-second rates. Pure apart from reading the atomics; the
/// clock is passed in. An item seen for the first time reports zero rates (its counters so
/// far are not "per second"); items gone since the last round are forgotten.
pub struct Sampler {
    last: Instant,
    before: Seen,
}

impl Sampler {
    pub fn new(now: Instant) -> Sampler {
        Sampler {
            last: now,
            before: Seen::default(),
        }
    }

    /// A sample of `clusters` at `now` (`at` in seconds since the Unix epoch).
    pub fn sample(&mut self, clusters: &[Arc<ClusterHandle>], now: Instant, at: u64) -> Sample {
        let elapsed = Elapsed(now.saturating_duration_since(self.last).as_secs_f64());
        self.last = now;
        let mut seen = Seen::default();
        let clusters = clusters
            .iter()
            .map(|c| self.cluster(c, elapsed, &mut seen))
            .collect();
        self.before = seen;
        Sample { at, clusters }
    }

    fn cluster(&self, cluster: &Arc<ClusterHandle>, elapsed: Elapsed, seen: &mut Seen) -> ClusterSample {
        let key = Arc::as_ptr(cluster) as usize;
        let traffic = cluster.admission.stats.snapshot();
        let buckets = cluster.admission.buckets();
        let before = self.before.clusters.get(&key);
        let old = before.map_or(&traffic, |b| &b.traffic);

        let statuses = cluster.statuses.load();
        let mut latency = HistogramSnapshot::default();
        let backends = cluster
            .backends
            .load()
            .iter()
            .map(|b| {
                let (sample, delta) = self.backend(b, &statuses, elapsed, seen);
                latency.merge(&delta);
                sample
            })
            .collect();
        let (p50_ms, p99_ms) = percentiles(&latency);
        let cache = cluster.cache_snapshot();
        let cache_sample = cache
            .as_ref()
            .map(|now| cache_sample(now, before.and_then(|b| b.cache.as_ref()), elapsed));

        let bucket_samples = buckets
            .iter()
            .skip(1) // the root is the cluster itself
            .map(|b| {
                let (served, dropped) = before
                    .and_then(|c| c.buckets.get(&b.name))
                    .copied()
                    .unwrap_or((b.served, b.dropped));
                BucketSample {
                    name: b.name.clone(),
                    in_use: b.in_use as f32,
                    assured: b.assured,
                    ceiling: b.ceiling,
                    queued: b.queued as f32,
                    rps: elapsed.rate(b.served, served),
                    dropped: elapsed.rate(b.dropped, dropped),
                }
            })
            .collect();
        let sample = ClusterSample {
            name: cluster.name.clone(),
            rps: elapsed.rate(traffic.in_flight.total, old.in_flight.total),
            responses: std::array::from_fn(|i| elapsed.rate(traffic.responses[i], old.responses[i])),
            dropped: elapsed.rate(traffic.dropped, old.dropped),
            in_flight: traffic.in_flight.current as f32,
            capacity: buckets.first().and_then(|root| root.ceiling),
            queued: traffic.queued.current as f32,
            p50_ms,
            p99_ms,
            buckets: bucket_samples,
            backends,
            cache: cache_sample,
        };
        let buckets = buckets
            .into_iter()
            .map(|b| (b.name, (b.served, b.dropped)))
            .collect();
        seen.clusters.insert(
            key,
            ClusterBefore {
                _handle: cluster.clone(),
                traffic,
                buckets,
                cache,
            },
        );
        sample
    }

    /// The backend's sample and its latency histogram since the last round.
    fn backend(
        &self,
        backend: &Backend,
        statuses: &[BackendStatus],
        elapsed: Elapsed,
        seen: &mut Seen,
    ) -> (BackendSample, HistogramSnapshot) {
        let traffic = backend.stats.snapshot();
        let latency = backend.stats.latency_snapshot();
        let (old, delta) = match self.before.backends.get(&backend.id) {
            Some(before) => (&before.traffic, latency.delta(&before.latency)),
            None => (&traffic, HistogramSnapshot::default()),
        };
        let status = statuses.iter().find(|s| s.id == backend.id);
        let (p50_ms, p99_ms) = percentiles(&delta);
        let sample = BackendSample {
            name: backend.name.clone(),
            rps: elapsed.rate(traffic.in_flight.total, old.in_flight.total),
            in_flight: traffic.in_flight.current as f32,
            capacity: status.map_or(0, |s| s.capacity),
            http_5xx: elapsed.rate(traffic.responses[4], old.responses[4]),
            p50_ms,
            p99_ms,
            online: status.is_some_and(BackendStatus::healthy),
            enabled: status.is_some_and(|s| s.enabled),
        };
        seen.backends
            .insert(backend.id, BackendBefore { traffic, latency });
        (sample, delta)
    }
}

/// A cache's sample from its counters now and at the last round (`None`: not enabled then,
/// so no rates yet).
fn cache_sample(now: &CacheSnapshot, before: Option<&CacheSnapshot>, elapsed: Elapsed) -> CacheSample {
    let old = before.unwrap_or(now);
    let lookups = now.lookups.saturating_sub(old.lookups);
    let hits = now.hits.saturating_sub(old.hits);
    CacheSample {
        lookups: elapsed.rate(now.lookups, old.lookups),
        hits: elapsed.rate(now.hits, old.hits),
        misses: elapsed.rate(now.misses, old.misses),
        stale: elapsed.rate(now.stale, old.stale),
        hit_ratio: (lookups > 0).then(|| compact(hits as f64 / lookups as f64, RATIO_STEP)),
        objects: now.objects as f64,
        bytes: now.bytes as f64,
        max_memory: now.max_memory,
    }
}

/// The newest sample as JSON and the channel that announces the next ones.
struct Feed {
    latest: Option<Arc<str>>,
    /// `None` once the collector has stopped: the subscribers' streams end.
    sender: Option<broadcast::Sender<Arc<str>>>,
}

/// The highest request rate of each scope since the collector started (HAProxy's `rate_max`
/// and `req_rate_max`), from the per-second samples.
pub type RatePeaks = HashMap<Scope, f32>;

/// Raises `peaks` to the rates of `sample`.
fn raise_peaks(peaks: &mut RatePeaks, sample: &Sample) {
    let mut raise = |scope: Scope, rps: f32| {
        let peak = peaks.entry(scope).or_insert(0.0);
        *peak = peak.max(rps);
    };
    let mut total = 0.0;
    for cluster in &sample.clusters {
        total += cluster.rps;
        raise(Scope::cluster(&cluster.name), cluster.rps);
        for backend in &cluster.backends {
            raise(Scope::backend(&cluster.name, &backend.name), backend.rps);
        }
    }
    raise(Scope::Director, total);
}

/// What the collector writes and the admin handlers read.
struct Shared {
    history: Mutex<History>,
    feed: Mutex<Feed>,
    /// Where the history is kept between runs, if anywhere.
    history_file: Option<PathBuf>,
    /// Held while the history file is written, so two writes never interleave.
    writing: Mutex<()>,
    peaks: Mutex<RatePeaks>,
}

impl Shared {
    fn publish(&self, sample: Sample) {
        raise_peaks(&mut self.peaks.lock(), &sample);
        let json: Arc<str> = match serde_json::to_string(&sample) {
            Ok(json) => json.into(),
            Err(e) => {
                log::warn!("stats sample not serializable: {e}");
                return;
            }
        };
        self.history.lock().push(Arc::new(sample));
        // Under the feed lock, so that a new subscriber gets either this sample as its latest
        // or from its receiver — never both, never neither.
        let mut feed = self.feed.lock();
        if let Some(sender) = &feed.sender {
            let _ = sender.send(json.clone()); // no subscribers is fine
        }
        feed.latest = Some(json);
    }

    fn close(&self) {
        self.feed.lock().sender = None;
    }

    /// Writes the history file on the blocking pool; resolves once it is written.
    fn save(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        let path = self.history_file.clone()?;
        let (seconds, minutes) = self.history.lock().rings();
        let shared = self.clone();
        Some(tokio::task::spawn_blocking(move || {
            let _one_at_a_time = shared.writing.lock();
            if let Err(e) = persist::save(&path, &seconds, &minutes) {
                log::warn!("live history: cannot write {}: {e}", path.display());
            }
        }))
    }
}

/// Takes a sample every interval; see the module docs.
pub struct StatsCollector {
    topology: SharedTopology,
    sampler: Sampler,
    interval: Duration,
    shared: Arc<Shared>,
}

impl StatsCollector {
    fn collect(&mut self) {
        let mut clusters = self
            .topology
            .load()
            .as_ref()
            .map(|t| t.clusters.clone())
            .unwrap_or_default();
        clusters.sort_by(|a, b| a.name.cmp(&b.name));
        let sample = self.sampler.sample(&clusters, Instant::now(), unix_now());
        self.shared.publish(sample);
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Actor for StatsCollector {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.interval, |collector, _| collector.collect());
        if self.shared.history_file.is_some() {
            ctx.run_interval(persist::SAVE_INTERVAL, |collector, _| {
                collector.shared.save();
            });
        }
    }
}

impl Drop for StatsCollector {
    /// However the collector ends (stopped, or its arbiter gone), subscribers are released.
    fn drop(&mut self) {
        self.shared.close();
    }
}

/// Stops the collector; event streams end after their current sample.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopCollector;

impl Handler<StopCollector> for StatsCollector {
    type Result = ();

    fn handle(&mut self, _: StopCollector, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

/// A new event-stream subscriber's start: the newest sample, then everything after it.
pub struct Subscription {
    /// The newest sample as JSON, if one was taken yet.
    pub latest: Option<Arc<str>>,
    /// Each following sample as JSON; `Lagged` means some were skipped, `Closed` that the
    /// collector stopped.
    pub receiver: broadcast::Receiver<Arc<str>>,
}

/// The running collector's output, held by the admin surface.
pub struct LiveStats {
    shared: Arc<Shared>,
    collector: Addr<StatsCollector>,
}

impl LiveStats {
    /// Starts a collector on the current arbiter, sampling every second.
    pub fn start(topology: SharedTopology) -> Arc<LiveStats> {
        LiveStats::start_in(topology, &Arbiter::current(), INTERVAL)
    }

    /// Starts a collector on `arbiter`, sampling every `interval`.
    pub fn start_in(topology: SharedTopology, arbiter: &ArbiterHandle, interval: Duration) -> Arc<LiveStats> {
        LiveStats::start_kept(topology, arbiter, interval, None, None)
    }

    /// Starts a collector as [`LiveStats::start_in`] whose history begins with `earlier` (read
    /// from the history file) and is written to `history_file`.
    pub fn start_kept(
        topology: SharedTopology,
        arbiter: &ArbiterHandle,
        interval: Duration,
        history_file: Option<PathBuf>,
        earlier: Option<Stored>,
    ) -> Arc<LiveStats> {
        let (sender, _) = broadcast::channel(SUBSCRIBER_BACKLOG);
        let mut history = History::default();
        if let Some(stored) = earlier {
            history.restore(stored.seconds, stored.minutes);
        }
        let shared = Arc::new(Shared {
            history: Mutex::new(history),
            feed: Mutex::new(Feed {
                latest: None,
                sender: Some(sender),
            }),
            history_file,
            writing: Mutex::new(()),
            peaks: Mutex::new(RatePeaks::new()),
        });
        let for_collector = shared.clone();
        let collector = StatsCollector::start_in_arbiter(arbiter, move |_| StatsCollector {
            topology,
            sampler: Sampler::new(Instant::now()),
            interval,
            shared: for_collector,
        });
        Arc::new(LiveStats { shared, collector })
    }

    /// The newest sample and a receiver of the next ones; `None` once the collector stopped.
    pub fn subscribe(&self) -> Option<Subscription> {
        let feed = self.shared.feed.lock();
        let receiver = feed.sender.as_ref()?.subscribe();
        Some(Subscription {
            latest: feed.latest.clone(),
            receiver,
        })
    }

    /// The recorded samples of the last `length`; see [`History::window`].
    pub fn window(&self, length: Duration) -> Window {
        self.shared.history.lock().window(length)
    }

    /// The newest sample.
    pub fn latest(&self) -> Option<Arc<Sample>> {
        self.shared.history.lock().latest().cloned()
    }

    /// The highest rate of `scope` in any sample so far (0 before it had traffic).
    pub fn peak(&self, scope: &Scope) -> f32 {
        self.shared.peaks.lock().get(scope).copied().unwrap_or(0.0)
    }

    /// Stops the collector (at shutdown, so that open event streams end).
    pub fn stop(&self) {
        self.collector.do_send(StopCollector);
    }

    /// Writes the history file now (at shutdown), off this thread; returns once it is written.
    pub async fn save(&self) {
        if let Some(write) = self.shared.save() {
            let _ = write.await;
        }
    }
}

#[cfg(test)]
mod tests;
