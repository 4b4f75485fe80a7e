//! Unit tests of the stats sampler (rates from counter differences, first sight, forgetting)
//! and of the collector actor feeding subscribers and the history.
use super::*;
use crate::cluster::admission::{Admit, SlotSpec};
use crate::cluster::buckets::{BucketKey, ROOT};
use crate::cluster::health::Health;
use crate::cluster::Topology;
use crate::config::{load_str, parse_backend_url, Role};

const CONFIG: &str = "proxy: { listen: \"127.0.0.1:0\" }\nclusters:\n  shop:\n    buckets:\n      \
    - { name: vip, rate: 0.5, ceil: 1.0 }\n    backends: [{ name: a, url: \"http://127.0.0.1:1\" }]\n";

fn backend(name: &str) -> Arc<Backend> {
    Backend::new(
        "shop",
        name,
        parse_backend_url("http://127.0.0.1:1").unwrap(),
        None,
        None,
    )
}

/// Online, enabled, capacity 4.
fn status(backend: &Backend) -> BackendStatus {
    BackendStatus {
        id: backend.id,
        name: backend.name.clone(),
        url: String::new(),
        role: Role::Active,
        capacity: 4,
        enabled: true,
        health: Health::Online,
        health_changed_at: 0.0,
        health_reason: None,
        last_probe: None,
        draining: false,
        checks_failed: 0,
        times_down: 0,
        downtime_before: 0.0,
        health_progress: None,
    }
}

/// Makes `backends` the cluster's members, each online, enabled, with capacity 4.
fn set_members(cluster: &ClusterHandle, backends: &[Arc<Backend>]) {
    let slot = |b: &Arc<Backend>| SlotSpec {
        backend: b.clone(),
        role: Role::Active,
        capacity: 4,
        usable: true,
        healthy: true,
    };
    cluster
        .admission
        .set_backends(backends.iter().map(slot).collect());
    cluster.backends.store(Arc::new(backends.to_vec()));
    cluster
        .statuses
        .store(Arc::new(backends.iter().map(|b| status(b)).collect()));
}

/// Cluster `shop` with bucket `vip` (rate 0.5) and backend `a`.
fn shop() -> (Arc<ClusterHandle>, Arc<Backend>) {
    let config = load_str(CONFIG).expect("valid config");
    let cluster = ClusterHandle::new("shop", &config.clusters["shop"]);
    cluster.admission.set_buckets(&config.clusters["shop"].buckets);
    let a = backend("a");
    set_members(&cluster, std::slice::from_ref(&a));
    (cluster, a)
}

/// `n` requests through `bucket`, each answered with `status` after `latency`, as the
/// proxy records them.
fn serve(cluster: &Arc<ClusterHandle>, bucket: BucketKey, n: usize, status: u16, latency: Duration) {
    for _ in 0..n {
        let Admit::Granted(grant) = cluster.admission.acquire(bucket) else {
            panic!("no capacity");
        };
        grant.backend().stats.record_latency(latency);
        grant.backend().stats.responses.record(status);
        cluster.admission.stats.responses.record(status);
    }
}

#[test]
fn rates_are_counter_differences_per_second() {
    let (cluster, _) = shop();
    let vip = cluster.admission.bucket_key("vip").unwrap();
    let start = Instant::now();
    let mut sampler = Sampler::new(start);
    let clusters = [cluster.clone()];

    let first = sampler.sample(&clusters, start + Duration::from_secs(1), 100);
    let c = &first.clusters[0];
    assert_eq!(
        (c.name.as_str(), c.rps, c.capacity, c.p99_ms),
        ("shop", 0.0, Some(4), None)
    );
    let b = &c.buckets[0];
    assert_eq!((b.name.as_str(), b.assured, b.ceiling), ("vip", Some(2), Some(4)));
    let a = &c.backends[0];
    assert_eq!(
        (a.name.as_str(), a.capacity, a.online, a.enabled),
        ("a", 4, true, true)
    );

    serve(&cluster, vip, 8, 200, Duration::from_millis(2));
    serve(&cluster, ROOT, 2, 503, Duration::from_millis(40));
    let Admit::Granted(_held) = cluster.admission.acquire(ROOT) else {
        panic!("no capacity");
    };
    let second = sampler.sample(&clusters, start + Duration::from_secs(3), 102);
    assert_eq!(second.at, 102);
    let c = &second.clusters[0];
    assert_eq!(c.rps, 5.5, "11 requests in 2 s");
    assert_eq!(c.responses, [0.0, 4.0, 0.0, 0.0, 1.0]);
    assert_eq!((c.in_flight, c.queued), (1.0, 0.0));
    assert_eq!((c.buckets[0].rps, c.buckets[0].in_use), (4.0, 0.0));
    let a = &c.backends[0];
    assert_eq!((a.rps, a.http_5xx, a.in_flight), (5.5, 1.0, 1.0));
    // Ten latencies: eight of 2 ms, two of 40 ms; each quantile lies in its bucket.
    let (p50, p99) = (c.p50_ms.unwrap(), c.p99_ms.unwrap());
    assert!(
        (1.5..=2.0).contains(&p50) && (30.0..=50.0).contains(&p99),
        "{p50} {p99}"
    );
    assert_eq!(
        (a.p50_ms, a.p99_ms),
        (c.p50_ms, c.p99_ms),
        "one backend: the same"
    );

    let quiet = sampler.sample(&clusters, start + Duration::from_secs(4), 103);
    assert_eq!((quiet.clusters[0].rps, quiet.clusters[0].p50_ms), (0.0, None));
}

#[test]
fn new_members_start_at_zero_and_gone_ones_are_forgotten() {
    let (cluster, a) = shop();
    let start = Instant::now();
    let mut sampler = Sampler::new(start);
    let clusters = [cluster.clone()];
    sampler.sample(&clusters, start + Duration::from_secs(1), 1);

    let b = backend("b");
    set_members(&cluster, std::slice::from_ref(&b));
    serve(&cluster, ROOT, 3, 200, Duration::from_millis(1));
    let sample = sampler.sample(&clusters, start + Duration::from_secs(2), 2);
    let c = &sample.clusters[0];
    assert_eq!(c.rps, 3.0);
    let names: Vec<&str> = c.backends.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["b"]);
    assert_eq!(
        (c.backends[0].rps, c.p99_ms),
        (0.0, None),
        "first sight: no rate yet"
    );
    assert!(!sampler.before.backends.contains_key(&a.id));

    assert!(sampler
        .sample(&[], start + Duration::from_secs(3), 3)
        .clusters
        .is_empty());
    assert!(sampler.before.clusters.is_empty() && sampler.before.backends.is_empty());
}

/// The next sample the receiver gets, as JSON.
async fn next_sample(receiver: &mut broadcast::Receiver<Arc<str>>) -> serde_json::Value {
    let wait = async {
        loop {
            match receiver.recv().await {
                Ok(json) => return serde_json::from_str(&json).expect("sample JSON"),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => panic!("collector stopped"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), wait)
        .await
        .expect("a sample in time")
}

#[actix_rt::test]
async fn collector_broadcasts_and_records_samples_until_stopped() {
    let (cluster, _) = shop();
    let topology: SharedTopology = Arc::new(arc_swap::ArcSwapOption::from_pointee(Topology {
        routes: Vec::new(),
        clusters: vec![cluster.clone()],
    }));
    let live = LiveStats::start_in(topology, &Arbiter::current(), Duration::from_millis(20));
    let mut receiver = live.subscribe().expect("running").receiver;
    next_sample(&mut receiver).await; // the cluster has been seen once

    serve(&cluster, ROOT, 5, 200, Duration::from_millis(3));
    let busy = loop {
        let sample = next_sample(&mut receiver).await;
        if sample["clusters"][0]["rps"].as_f64() > Some(0.0) {
            break sample;
        }
    };
    assert_eq!(busy["clusters"][0]["name"], "shop");
    assert!(busy["clusters"][0]["responses"][1].as_f64() > Some(0.0));
    assert!(busy["clusters"][0]["p50_ms"].as_f64().is_some());
    let latest = live.subscribe().and_then(|s| s.latest).expect("a latest sample");
    assert!(latest.starts_with("{\"at\":"));
    assert!(live.latest().is_some());
    assert!(!live.window(Duration::from_secs(60)).samples.is_empty());

    live.stop();
    let closed =
        async { while !matches!(receiver.recv().await, Err(broadcast::error::RecvError::Closed)) {} };
    tokio::time::timeout(Duration::from_secs(5), closed)
        .await
        .expect("stream closed");
    assert!(live.subscribe().is_none());
}

#[test]
fn cache_samples_carry_the_interval_hit_ratio_and_the_size() {
    const CACHED: &str = "proxy: { listen: \"127.0.0.1:0\" }\nclusters:\n  shop:\n    \
        cache: { enabled: true, max_memory: 2MiB, max_object_size: 1MiB }\n    backends: [{ name: a, url: \"http://127.0.0.1:1\" }]\n";
    let config = load_str(CACHED).expect("valid config");
    let settings = &config.clusters["shop"];
    let cluster = ClusterHandle::new("shop", settings);
    cluster.configure_cache(&settings.cache);
    let cache = cluster.cache.load_full().expect("enabled");
    let count = |counter: &std::sync::atomic::AtomicU64, n: u64| {
        counter.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    };
    let start = Instant::now();
    let mut sampler = Sampler::new(start);
    let clusters = [cluster.clone()];

    // Counted before the first sample: no rates, no ratio on first sight.
    count(&cache.stats.lookups, 10);
    count(&cache.stats.hits, 10);
    let first = sampler.sample(&clusters, start + Duration::from_secs(1), 1);
    let c = first.clusters[0].cache.clone().expect("a cache sample");
    assert_eq!((c.lookups, c.hits, c.hit_ratio), (0.0, 0.0, None));
    assert_eq!((c.objects, c.bytes, c.max_memory), (0.0, 0.0, 2 << 20));

    // 4 lookups in 2 s: 3 hits and a miss; one stale answer; one object stored.
    count(&cache.stats.lookups, 4);
    count(&cache.stats.hits, 3);
    count(&cache.stats.misses, 1);
    count(&cache.stats.stale_if_error, 1);
    let key = crate::cache::key::KeyText::new(&settings.cache.key, "GET", Some("h"), "/a", "").into_key();
    let object = crate::cache::Object::pass_marker(Duration::from_secs(60));
    cache.store.insert(key, Arc::new(object));
    let second = sampler.sample(&clusters, start + Duration::from_secs(3), 3);
    let c = second.clusters[0].cache.clone().expect("a cache sample");
    assert_eq!((c.lookups, c.hits, c.misses, c.stale), (2.0, 1.5, 0.5, 0.5));
    assert_eq!(c.hit_ratio, Some(0.75), "3 of this interval's 4, not 13 of 14");
    assert_eq!(c.objects, 1.0);
    assert!(
        c.bytes > 0.0 && c.bytes == cache.store.bytes() as f64,
        "{}",
        c.bytes
    );

    let quiet = sampler.sample(&clusters, start + Duration::from_secs(4), 4);
    let c = quiet.clusters[0].cache.clone().expect("a cache sample");
    assert_eq!((c.lookups, c.hit_ratio, c.objects), (0.0, None, 1.0));

    // Disabled: no cache in the sample, nor in its JSON.
    cluster.configure_cache(&crate::config::CacheConfig::default());
    let off = sampler.sample(&clusters, start + Duration::from_secs(5), 5);
    assert_eq!(off.clusters[0].cache, None);
    let json = serde_json::to_value(&off).expect("JSON");
    assert!(json["clusters"][0].get("cache").is_none(), "{json}");
    // Enabled again: the counters went on meanwhile, but rates start afresh.
    cluster.configure_cache(&settings.cache);
    count(&cluster.cache.load_full().expect("enabled").stats.lookups, 5);
    let again = sampler.sample(&clusters, start + Duration::from_secs(6), 6);
    let c = again.clusters[0].cache.clone().expect("a cache sample");
    assert_eq!((c.lookups, c.hit_ratio), (0.0, None));
}
