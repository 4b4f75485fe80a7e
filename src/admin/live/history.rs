//! The shape of a live stats sample and the ring buffers that keep them: one sample per second
//! for the last hour, and one aggregate per minute for the last day.
//!
//! Control plane: filled by the StatsCollector once a second, read by the admin surface
//! (`/api/v1/history`, the live page). Samples are shared as `Arc<Sample>`, so a reader copies
//! pointers under the lock and serializes outside it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};

/// One-second samples kept: an hour.
pub const SECOND_SAMPLES: usize = 3600;
/// One-minute aggregates kept: a day.
pub const MINUTE_SAMPLES: usize = 1440;

/// Every cluster's numbers at one moment (or averaged over one minute).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Seconds since the Unix epoch (the minute's start for an aggregate).
    pub at: u64,
    pub clusters: Vec<ClusterSample>,
}

/// One cluster in a [`Sample`]. Rates are per second; gauges are the value at sampling time
/// (the minute's mean in an aggregate).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterSample {
    pub name: String,
    /// Requests handed to a backend.
    pub rps: f32,
    /// Responses by status class `[1xx, 2xx, 3xx, 4xx, 5xx]`; `responses[4]` is the 5xx rate.
    pub responses: [f32; 5],
    /// Generated 503/504 answers.
    pub dropped: f32,
    /// Tokens in use (requests in flight).
    pub in_flight: f32,
    /// Root tokens; `None` = unlimited.
    pub capacity: Option<u32>,
    /// Requests waiting in the bucket queues.
    pub queued: f32,
    /// Latency quantiles over the interval, merged from the backends; `None` without requests.
    pub p50_ms: Option<f32>,
    pub p99_ms: Option<f32>,
    /// Every bucket below the root.
    pub buckets: Vec<BucketSample>,
    /// Current members.
    pub backends: Vec<BackendSample>,
    /// The object cache; absent while it is disabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheSample>,
}

/// A cluster's object cache in a [`ClusterSample`]: rates per second over the interval, the
/// hit ratio of the interval, and the store's size at sampling time (the minute's mean in an
/// aggregate).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CacheSample {
    /// Requests that consulted the cache.
    pub lookups: f32,
    /// Served fresh from the cache.
    pub hits: f32,
    pub misses: f32,
    /// Stale objects served (stale-if-error and stale-while-revalidate).
    pub stale: f32,
    /// Hits / lookups of the interval (of the minute in an aggregate); `None` without lookups.
    pub hit_ratio: Option<f32>,
    /// Keys stored.
    pub objects: f64,
    /// Bytes stored, keys and headers included.
    pub bytes: f64,
    /// The bound of `bytes` (`max_memory`).
    pub max_memory: u64,
}

/// One bucket in a [`ClusterSample`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BucketSample {
    pub name: String,
    /// Tokens held by the bucket and its descendants.
    pub in_use: f32,
    /// Absolute assured and ceiling tokens; `None` = unlimited.
    pub assured: Option<u32>,
    pub ceiling: Option<u32>,
    pub queued: f32,
    /// Tokens granted per second to the bucket's own requests (children count theirs).
    pub rps: f32,
    /// Generated 503/504 answers per second.
    pub dropped: f32,
}

/// One backend in a [`ClusterSample`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BackendSample {
    pub name: String,
    pub rps: f32,
    pub in_flight: f32,
    /// 0 = unlimited.
    pub capacity: u32,
    /// 5xx responses per second.
    pub http_5xx: f32,
    pub p50_ms: Option<f32>,
    pub p99_ms: Option<f32>,
    pub online: bool,
    pub enabled: bool,
}

/// Rounds to a multiple of `step` for compact JSON (`12.34` rather than `12.340000152587891`).
pub(crate) fn compact(value: f64, step: f64) -> f32 {
    ((value / step).round() * step) as f32
}

/// Rates and gauges are kept to 1/100.
pub(crate) const RATE_STEP: f64 = 0.01;
/// Latencies are kept to the microsecond.
pub(crate) const MS_STEP: f64 = 0.001;
/// Ratios are kept to 1/10 000 (a hundredth of a percent).
pub(crate) const RATIO_STEP: f64 = 0.0001;

/// The samples of a time window and their spacing in seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// 1 for one-second samples, 60 for minute aggregates.
    pub step: u32,
    /// Oldest first.
    pub samples: Vec<Arc<Sample>>,
}

impl Serialize for Window {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Samples<'a>(&'a [Arc<Sample>]);
        impl Serialize for Samples<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_seq(self.0.iter().map(|s| &**s))
            }
        }
        let mut window = serializer.serialize_struct("Window", 2)?;
        window.serialize_field("step", &self.step)?;
        window.serialize_field("samples", &Samples(&self.samples))?;
        window.end()
    }
}

/// The recorded samples; see the module docs.
#[derive(Debug, Default)]
pub struct History {
    seconds: VecDeque<Arc<Sample>>,
    minutes: VecDeque<Arc<Sample>>,
}

impl History {
    /// Adds the newest one-second sample. When it starts a new minute, the samples of the
    /// minute before are folded into one aggregate (see [`aggregate`]).
    pub fn push(&mut self, sample: Arc<Sample>) {
        if let Some(last) = self.seconds.back() {
            let minute = last.at / 60;
            if minute != sample.at / 60 {
                let mut tail: Vec<&Sample> = self
                    .seconds
                    .iter()
                    .rev()
                    .take_while(|s| s.at / 60 == minute)
                    .map(|s| &**s)
                    .collect();
                tail.reverse();
                push_bounded(
                    &mut self.minutes,
                    Arc::new(aggregate(minute * 60, &tail)),
                    MINUTE_SAMPLES,
                );
            }
        }
        push_bounded(&mut self.seconds, sample, SECOND_SAMPLES);
    }

    /// Both rings, oldest first: the one-second samples and the minute aggregates.
    pub fn rings(&self) -> (Vec<Arc<Sample>>, Vec<Arc<Sample>>) {
        (
            self.seconds.iter().cloned().collect(),
            self.minutes.iter().cloned().collect(),
        )
    }

    /// Fills an empty history with samples recorded earlier (by a previous run): each ring
    /// keeps what it can hold, oldest first, and only samples in time order (a sample not
    /// later than the one before it is skipped).
    pub fn restore(&mut self, seconds: Vec<Sample>, minutes: Vec<Sample>) {
        let ordered = |samples: Vec<Sample>, limit: usize| {
            let mut ring: VecDeque<Arc<Sample>> = VecDeque::new();
            for sample in samples {
                if ring.back().is_none_or(|last| last.at < sample.at) {
                    push_bounded(&mut ring, Arc::new(sample), limit);
                }
            }
            ring
        };
        self.seconds = ordered(seconds, SECOND_SAMPLES);
        self.minutes = ordered(minutes, MINUTE_SAMPLES);
    }

    /// The newest one-second sample.
    pub fn latest(&self) -> Option<&Arc<Sample>> {
        self.seconds.back()
    }

    /// The samples of the last `length` (counted back from the newest sample): one-second
    /// samples up to an hour, minute aggregates beyond (the minute in progress is not among
    /// them yet).
    pub fn window(&self, length: Duration) -> Window {
        let newest = self.latest().map_or(0, |s| s.at);
        let (step, ring) = if length.as_secs() <= SECOND_SAMPLES as u64 {
            (1, &self.seconds)
        } else {
            (60, &self.minutes)
        };
        let span = length.as_secs();
        let mut samples: Vec<Arc<Sample>> = ring
            .iter()
            .rev()
            .take_while(|s| s.at + span > newest)
            .cloned()
            .collect();
        samples.reverse();
        Window { step, samples }
    }
}

fn push_bounded(ring: &mut VecDeque<Arc<Sample>>, sample: Arc<Sample>, limit: usize) {
    if ring.len() == limit {
        ring.pop_front();
    }
    ring.push_back(sample);
}

/// One sample standing for `samples` (one minute's worth): rates and gauges are averaged over
/// the samples an item appears in, p50 is the mean and p99 the maximum of the seconds that
/// had requests, and settings and states (capacity, online, enabled) are the last seen.
/// Items keep the order in which they first appear.
pub fn aggregate(at: u64, samples: &[&Sample]) -> Sample {
    let clusters = group_by_name(samples.iter().map(|s| s.clusters.as_slice()));
    Sample {
        at,
        clusters: clusters.iter().map(|c| aggregate_cluster(c)).collect(),
    }
}

fn aggregate_cluster(items: &[&ClusterSample]) -> ClusterSample {
    let buckets = group_by_name(items.iter().map(|c| c.buckets.as_slice()));
    let backends = group_by_name(items.iter().map(|c| c.backends.as_slice()));
    ClusterSample {
        name: items[0].name.clone(),
        rps: mean(items, |c| c.rps),
        responses: std::array::from_fn(|i| mean(items, |c| c.responses[i])),
        dropped: mean(items, |c| c.dropped),
        in_flight: mean(items, |c| c.in_flight),
        capacity: last(items, |c| c.capacity),
        queued: mean(items, |c| c.queued),
        p50_ms: mean_present(items, |c| c.p50_ms),
        p99_ms: max_present(items, |c| c.p99_ms),
        buckets: buckets
            .iter()
            .map(|b| BucketSample {
                name: b[0].name.clone(),
                in_use: mean(b, |b| b.in_use),
                assured: last(b, |b| b.assured),
                ceiling: last(b, |b| b.ceiling),
                queued: mean(b, |b| b.queued),
                rps: mean(b, |b| b.rps),
                dropped: mean(b, |b| b.dropped),
            })
            .collect(),
        backends: backends
            .iter()
            .map(|b| BackendSample {
                name: b[0].name.clone(),
                rps: mean(b, |b| b.rps),
                in_flight: mean(b, |b| b.in_flight),
                capacity: last(b, |b| b.capacity),
                http_5xx: mean(b, |b| b.http_5xx),
                p50_ms: mean_present(b, |b| b.p50_ms),
                p99_ms: max_present(b, |b| b.p99_ms),
                online: last(b, |b| b.online),
                enabled: last(b, |b| b.enabled),
            })
            .collect(),
        cache: aggregate_cache(items),
    }
}

/// The cache of the seconds it was enabled in: rates and sizes averaged, the hit ratio of all
/// their hits and lookups together (not a mean of ratios), the last `max_memory`; `None` when
/// it was off the whole minute.
fn aggregate_cache(items: &[&ClusterSample]) -> Option<CacheSample> {
    let caches: Vec<&CacheSample> = items.iter().filter_map(|c| c.cache.as_ref()).collect();
    if caches.is_empty() {
        return None;
    }
    let total = |value: fn(&CacheSample) -> f32| caches.iter().map(|c| f64::from(value(c))).sum::<f64>();
    let (hits, lookups) = (total(|c| c.hits), total(|c| c.lookups));
    let mean64 =
        |value: fn(&CacheSample) -> f64| caches.iter().map(|c| value(c)).sum::<f64>() / caches.len() as f64;
    Some(CacheSample {
        lookups: mean(&caches, |c| c.lookups),
        hits: mean(&caches, |c| c.hits),
        misses: mean(&caches, |c| c.misses),
        stale: mean(&caches, |c| c.stale),
        hit_ratio: (lookups > 0.0).then(|| compact(hits / lookups, RATIO_STEP)),
        objects: mean64(|c| c.objects).round(),
        bytes: mean64(|c| c.bytes).round(),
        max_memory: last(&caches, |c| c.max_memory),
    })
}

/// Items that carry a name to be grouped by.
trait Named {
    fn name(&self) -> &str;
}

macro_rules! named {
    ($($t:ty),*) => {$(impl Named for $t { fn name(&self) -> &str { &self.name } })*};
}
named!(ClusterSample, BucketSample, BackendSample);

/// The items of `lists` grouped by name, in order of first appearance; every group is non-empty.
fn group_by_name<'a, T: Named>(lists: impl Iterator<Item = &'a [T]>) -> Vec<Vec<&'a T>> {
    let mut groups: Vec<Vec<&T>> = Vec::new();
    for item in lists.flatten() {
        match groups.iter_mut().find(|g| g[0].name() == item.name()) {
            Some(group) => group.push(item),
            None => groups.push(vec![item]),
        }
    }
    groups
}

fn mean<T>(items: &[&T], value: impl Fn(&T) -> f32) -> f32 {
    let sum: f64 = items.iter().map(|i| f64::from(value(i))).sum();
    compact(sum / items.len().max(1) as f64, RATE_STEP)
}

fn mean_present<T>(items: &[&T], value: impl Fn(&T) -> Option<f32>) -> Option<f32> {
    let present: Vec<f64> = items.iter().filter_map(|i| value(i)).map(f64::from).collect();
    (!present.is_empty()).then(|| compact(present.iter().sum::<f64>() / present.len() as f64, MS_STEP))
}

fn max_present<T>(items: &[&T], value: impl Fn(&T) -> Option<f32>) -> Option<f32> {
    items.iter().filter_map(|i| value(i)).reduce(f32::max)
}

fn last<T, V>(items: &[&T], value: impl Fn(&T) -> V) -> V {
    value(items[items.len() - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn empty(at: u64) -> Arc<Sample> {
        Arc::new(Sample { at, clusters: vec![] })
    }

    fn ats(samples: &[Arc<Sample>]) -> Vec<u64> {
        samples.iter().map(|s| s.at).collect()
    }

    fn cluster(name: &str, rps: f32, p99_ms: Option<f32>, backends: Vec<BackendSample>) -> ClusterSample {
        ClusterSample {
            name: name.to_owned(),
            rps,
            p50_ms: p99_ms.map(|p| p / 2.0),
            p99_ms,
            backends,
            ..ClusterSample::default()
        }
    }

    fn backend(name: &str, rps: f32, online: bool) -> BackendSample {
        BackendSample {
            name: name.to_owned(),
            rps,
            online,
            ..BackendSample::default()
        }
    }

    #[test]
    fn second_ring_wraps_after_an_hour() {
        let mut history = History::default();
        for at in 0..3700 {
            history.push(empty(at));
        }
        assert_eq!(history.seconds.len(), SECOND_SAMPLES);
        assert_eq!(history.seconds.front().unwrap().at, 100);
        assert_eq!(history.latest().unwrap().at, 3699);
        // Minutes 0..=60 are complete; minute 61 is still in progress.
        assert_eq!(
            ats(&history.minutes.iter().cloned().collect::<Vec<_>>()),
            (0..=60).map(|m| m * 60).collect::<Vec<_>>()
        );
    }

    #[test]
    fn minute_ring_wraps_after_a_day() {
        let mut history = History::default();
        for minute in 0..1500 {
            history.push(empty(minute * 60 + 7));
        }
        assert_eq!(history.minutes.len(), MINUTE_SAMPLES);
        assert_eq!(history.minutes.front().unwrap().at, (1499 - 1440) * 60);
        assert_eq!(history.minutes.back().unwrap().at, 1498 * 60);
    }

    #[test]
    fn window_picks_seconds_up_to_an_hour_and_minutes_beyond() {
        let mut history = History::default();
        for at in 10_000..17_200 {
            history.push(empty(at));
        }
        let quarter = history.window(Duration::from_secs(15 * 60));
        assert_eq!(quarter.step, 1);
        assert_eq!(quarter.samples.len(), 900);
        assert_eq!(quarter.samples[0].at, 17_199 - 899);
        assert_eq!(history.window(Duration::from_secs(3600)).samples.len(), 3600);

        let longer = history.window(Duration::from_secs(90 * 60));
        assert_eq!(longer.step, 60);
        let expected: Vec<u64> = (0..)
            .map(|m| m * 60)
            .skip_while(|&at| at + 5400 <= 17_199)
            .take_while(|&at| at < 17_160)
            .collect();
        assert_eq!(ats(&longer.samples), expected);
        assert_eq!(
            longer.samples.len(),
            89,
            "the minute in progress is not aggregated yet"
        );
        // A day asks for more than was recorded: everything there is.
        assert_eq!(
            history.window(Duration::from_secs(86_400)).samples.len(),
            history.minutes.len()
        );
        assert!(History::default()
            .window(Duration::from_secs(60))
            .samples
            .is_empty());
    }

    #[test]
    fn minute_aggregate_averages_rates_and_keeps_worst_p99() {
        let mut history = History::default();
        for second in 0..60u64 {
            let mut backends = vec![backend("a", 1.0, second < 59)];
            if second < 30 {
                backends.push(backend("b", 3.0, true));
            }
            let p99 = (second % 10 != 0).then_some(second as f32);
            let sample = Sample {
                at: 600 + second,
                clusters: vec![cluster("shop", second as f32, p99, backends)],
            };
            history.push(Arc::new(sample));
        }
        history.push(Arc::new(Sample {
            at: 660,
            clusters: vec![cluster("new", 1.0, None, vec![])],
        }));
        let minute = &history.minutes[0];
        assert_eq!(minute.at, 600);
        let shop = &minute.clusters[0];
        assert_eq!(minute.clusters.len(), 1);
        assert_eq!(shop.rps, 29.5);
        assert_eq!(shop.p99_ms, Some(59.0));
        // Mean of the p50s of the 54 seconds with requests.
        let p50: f32 = (0..60)
            .filter(|s| s % 10 != 0)
            .map(|s| s as f32 / 2.0)
            .sum::<f32>()
            / 54.0;
        assert!((shop.p50_ms.unwrap() - p50).abs() < 0.001);
        let names: Vec<&str> = shop.backends.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert!(!shop.backends[0].online, "the last state");
        assert_eq!(
            shop.backends[1].rps, 3.0,
            "averaged over the seconds it was there"
        );
    }

    #[test]
    fn minute_aggregate_pools_cache_hits_and_lookups() {
        let mut history = History::default();
        for second in 0..60u64 {
            let cache = match second {
                0..30 => None,
                // 4 lookups, 1 hit a second (ratio 0.25) ...
                30..50 => Some((4.0, 1.0, 1000.0)),
                // ... then 1 lookup, 1 hit (ratio 1).
                _ => Some((1.0, 1.0, 4000.0)),
            };
            let cache = cache.map(|(lookups, hits, bytes)| CacheSample {
                lookups,
                hits,
                hit_ratio: Some(hits / lookups),
                objects: 2.0,
                bytes,
                max_memory: 1 << 20,
                ..CacheSample::default()
            });
            let sample = Sample {
                at: 600 + second,
                clusters: vec![ClusterSample {
                    cache,
                    ..cluster("shop", 1.0, None, vec![])
                }],
            };
            history.push(Arc::new(sample));
        }
        history.push(Arc::new(Sample {
            at: 660,
            clusters: vec![cluster("shop", 1.0, None, vec![])],
        }));
        let cache = history.minutes[0].clusters[0].cache.clone().expect("on for 30 s");
        assert_eq!(
            cache.hit_ratio,
            Some(0.3333),
            "30 hits in 90 lookups, not the mean of the ratios (0.5)"
        );
        assert_eq!(
            (cache.lookups, cache.hits),
            (3.0, 1.0),
            "averaged over the 30 s it was on"
        );
        assert_eq!(
            (cache.objects, cache.bytes, cache.max_memory),
            (2.0, 2000.0, 1 << 20)
        );

        let json = serde_json::to_string(&*history.minutes[0]).unwrap();
        assert!(json.contains(r#""hit_ratio":0.3333,"#), "{json}");
        let mut off = History::default();
        for at in [0, 1, 60] {
            off.push(Arc::new(Sample {
                at,
                clusters: vec![cluster("shop", 1.0, None, vec![])],
            }));
        }
        assert_eq!(off.minutes[0].clusters[0].cache, None);
        let json = serde_json::to_value(&*off.minutes[0]).unwrap();
        assert!(json["clusters"][0].get("cache").is_none(), "{json}");
    }

    #[test]
    fn restore_keeps_time_order_and_the_ring_bounds_then_goes_on() {
        let plain = |at| Sample { at, clusters: vec![] };
        let mut history = History::default();
        let seconds: Vec<Sample> = [5, 3, 6].into_iter().chain(10..3710).map(plain).collect();
        let minutes: Vec<Sample> = (0..1500).map(|m| plain(m * 60)).collect();
        history.restore(seconds, minutes);
        assert_eq!(history.seconds.len(), SECOND_SAMPLES);
        assert_eq!(
            history.seconds.front().map(|s| s.at),
            Some(110),
            "the oldest dropped"
        );
        assert_eq!(history.minutes.len(), MINUTE_SAMPLES);
        let mut out_of_order = History::default();
        out_of_order.restore(vec![plain(5), plain(3), plain(6)], vec![]);
        assert_eq!(ats(&out_of_order.rings().0), [5, 6], "a step back is skipped");
        // The next sample, a restart later, completes the restored last minute.
        history.push(empty(10_000));
        assert_eq!(history.latest().map(|s| s.at), Some(10_000));
        assert_eq!(history.minutes.back().map(|s| s.at), Some(3709 / 60 * 60));
    }

    #[test]
    fn window_serializes_step_and_samples() {
        let window = Window {
            step: 1,
            samples: vec![empty(5)],
        };
        let json = serde_json::to_string(&window).unwrap();
        assert_eq!(json, r#"{"step":1,"samples":[{"at":5,"clusters":[]}]}"#);
    }
}
