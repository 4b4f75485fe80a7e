//! Admission hot path: take a bucket token and a backend slot (`Admission::acquire`), then
//! return both (drop the `Grant`), on a cluster of one backend of capacity 1000, with the
//! root bucket alone and with trees of 8 and 64 buckets, flat and nested. Each request goes
//! to the next leaf bucket in turn, so every bucket is exercised.
//!
//!
//! Two more groups carry the figures behind the thread model (docs/architecture.md):
//! - `contended`: the same take+return while a second thread does the same on the same
//!   cluster without pause, so every operation fights for the one admission lock;
//! - `actor round trip`: what the alternative would cost per request, an actix message to an
//!   actor and its answer awaited, on the sender's own arbiter and on another one.
//!
//! `cargo bench --bench admission -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, Arbiter, Context, Handler, Message, System};

use criterion::{criterion_group, criterion_main, Criterion};
use director::cluster::admission::{Admission, AdmissionSettings, SlotSpec};
use director::cluster::{Admit, Backend};
use director::config::{parse_backend_url, BucketConfig, Role, SchedulerKind};

fn bucket(name: String, rate: f64, children: Vec<BucketConfig>) -> BucketConfig {
    BucketConfig {
        name,
        rate,
        ceil: 1.0,
        rule: None,
        children,
    }
}

/// `fanout[0]` children of the root, each with `fanout[1]` children, and so on; siblings share
/// their parent's rate equally (`1 / n`, exact in binary for the fan-outs used here) or, for
/// fan-outs that are not a power of two, `1 / next power of two`.
fn tree(prefix: &str, fanout: &[usize]) -> Vec<BucketConfig> {
    let Some((&n, rest)) = fanout.split_first() else {
        return Vec::new();
    };
    let rate = 1.0 / n.next_power_of_two() as f64;
    (0..n)
        .map(|i| {
            let name = format!("{prefix}{i}");
            let children = tree(&format!("{name}."), rest);
            bucket(name, rate, children)
        })
        .collect()
}

fn count(config: &[BucketConfig]) -> usize {
    config.iter().map(|b| 1 + count(&b.children)).sum()
}

fn leaves(config: &[BucketConfig], out: &mut Vec<String>) {
    for b in config {
        if b.children.is_empty() {
            out.push(b.name.clone());
        } else {
            leaves(&b.children, out);
        }
    }
}

/// A cluster of one active backend of capacity 1000 with the bucket tree `config`; returns it
/// and the keys of the buckets requests are classified into (the root when there is no tree).
fn cluster(config: &[BucketConfig]) -> (Arc<Admission>, Vec<u32>) {
    let admission = Admission::new(AdmissionSettings {
        scheduler: SchedulerKind::RoundRobin,
        queue_limit: 100,
        enqueue_on_unavailable: false,
    });
    let url = parse_backend_url("http://127.0.0.1:8080").expect("url");
    admission.set_backends(vec![SlotSpec {
        backend: Backend::new("bench", "b1", url, None, None),
        role: Role::Active,
        capacity: 1000,
        usable: true,
        healthy: true,
    }]);
    admission.set_buckets(config);
    let mut names = Vec::new();
    leaves(config, &mut names);
    if names.is_empty() {
        names.push("root".to_owned());
    }
    let keys = names
        .iter()
        .map(|n| admission.bucket_key(n).expect("bucket key"))
        .collect();
    (admission, keys)
}

fn take_and_return(c: &mut Criterion) {
    // Label, tree below the root, and how many buckets that tree has.
    let trees = [
        ("1 bucket (root only)", Vec::new(), 0),
        ("8 buckets flat", tree("b", &[8]), 8),
        ("8 buckets nested 2x3", tree("b", &[2, 3]), 8),
        ("64 buckets flat", tree("b", &[64]), 64),
        ("64 buckets nested 4x3x4", tree("b", &[4, 3, 4]), 64),
    ];
    let mut group = c.benchmark_group("take+return");
    for (label, config, buckets) in &trees {
        assert_eq!(count(config), *buckets, "{label}");
        let (admission, keys) = cluster(config);
        let mut next = 0;
        group.bench_function(*label, |b| {
            b.iter(|| {
                let key = keys[next];
                next = (next + 1) % keys.len();
                take_and_return_one(&admission, key);
            })
        });
        assert_eq!(admission.capacity(), (Some(1000), 0), "every token came back");
    }
    group.finish();
}

/// Takes a token and a slot in bucket `key` and returns them at once.
fn take_and_return_one(admission: &Arc<Admission>, key: u32) {
    match admission.acquire(black_box(key)) {
        Admit::Granted(grant) => drop(black_box(grant)),
        _ => panic!("a free token and slot were expected"),
    }
}

/// take+return on the measured thread while a rival thread does the same on the same cluster
/// for the whole measurement; the rival's operation count shows it really ran alongside.
fn contended(c: &mut Criterion) {
    let (admission, keys) = cluster(&[]);
    let key = keys[0];
    let stop = Arc::new(AtomicBool::new(false));
    let rival_ops = Arc::new(AtomicU64::new(0));
    let rival = {
        let (admission, stop, rival_ops) = (admission.clone(), stop.clone(), rival_ops.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                take_and_return_one(&admission, key);
                rival_ops.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let mut group = c.benchmark_group("contended");
    group.bench_function("take+return, 2 threads on 1 cluster", |b| {
        b.iter(|| take_and_return_one(&admission, key))
    });
    group.finish();
    stop.store(true, Ordering::Relaxed);
    rival.join().expect("rival thread");
    assert!(rival_ops.load(Ordering::Relaxed) > 0, "the rival thread ran");
    assert_eq!(admission.capacity(), (Some(1000), 0), "every token came back");
}

/// An actor that answers at once: the cheapest possible per-request message.
struct Echo;

impl Actor for Echo {
    type Context = Context<Self>;
}

#[derive(Message)]
#[rtype(result = "u64")]
struct Ping(u64);

impl Handler<Ping> for Echo {
    type Result = u64;

    fn handle(&mut self, msg: Ping, _: &mut Context<Self>) -> u64 {
        msg.0
    }
}

/// `iters` awaited round trips from the system arbiter to `echo`.
fn round_trips(system: &mut actix::SystemRunner, echo: &actix::Addr<Echo>, iters: u64) -> Duration {
    system.block_on(async {
        let started = Instant::now();
        for i in 0..iters {
            let answer = echo.send(Ping(i)).await.expect("echo answers");
            black_box(answer);
        }
        started.elapsed()
    })
}

fn actor_round_trip(c: &mut Criterion) {
    let mut system = System::new();
    let same = system.block_on(async { Echo.start() });
    let other_arbiter = Arbiter::new();
    let other = Echo::start_in_arbiter(&other_arbiter.handle(), |_| Echo);
    let mut group = c.benchmark_group("actor round trip");
    group.bench_function("same arbiter", |b| {
        b.iter_custom(|iters| round_trips(&mut system, &same, iters))
    });
    group.bench_function("other arbiter", |b| {
        b.iter_custom(|iters| round_trips(&mut system, &other, iters))
    });
    group.finish();
    other_arbiter.stop();
}

criterion_group!(benches, take_and_return, contended, actor_round_trip);
criterion_main!(benches);
