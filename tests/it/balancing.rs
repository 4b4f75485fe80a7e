//! Schedulers, roles, capacity, queueing and retries against real HTTP backends.

use crate::support;

use std::time::Duration;

use director::cluster::backend_status::BackendStatus;
use director::cluster::health::Health;
use futures_util::future::join_all;
use support::backend::{refusing_url, TestBackend};
use support::{cluster_config, eventually, get, request, start, wait_until, Target};

fn spawn_get(target: &Target, path: &str) -> tokio::task::JoinHandle<support::Reply> {
    let (t, p) = (target.clone(), path.to_owned());
    tokio::spawn(async move { get(&t, &p).await })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_spreads_evenly() {
    let (a, b, c) = (
        TestBackend::start("a").await,
        TestBackend::start("b").await,
        TestBackend::start("c").await,
    );
    let yaml = cluster_config(
        "scheduler: rr",
        &[
            ("a", a.url(), 0, "active"),
            ("b", b.url(), 0, "active"),
            ("c", c.url(), 0, "active"),
        ],
    );
    let d = start(&yaml).await;
    for _ in 0..30 {
        assert_eq!(get(&d.target(), "/").await.status, 200);
    }
    assert_eq!((a.hits(), b.hits(), c.hits()), (10, 10, 10));
    d.settled("c").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chance_fills_the_first_backend_to_capacity() {
    let (a, b) = (TestBackend::start("a").await, TestBackend::start("b").await);
    let yaml = cluster_config(
        "scheduler: chance",
        &[("a", a.url(), 2, "active"), ("b", b.url(), 2, "active")],
    );
    let d = start(&yaml).await;
    let t = d.target();
    let held: Vec<_> = (0..3).map(|_| spawn_get(&t, "/hold")).collect();
    eventually("three requests held", || a.current() + b.current() == 3).await;
    assert_eq!((a.current(), b.current()), (2, 1));
    a.release_holds();
    b.release_holds();
    for r in join_all(held).await {
        assert_eq!(r.expect("task").status, 200);
    }
    d.settled("c").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_load_balances_in_flight_counts() {
    let (a, b) = (TestBackend::start("a").await, TestBackend::start("b").await);
    let yaml = cluster_config(
        "scheduler: least-load",
        &[("a", a.url(), 10, "active"), ("b", b.url(), 10, "active")],
    );
    let d = start(&yaml).await;
    let t = d.target();
    let mut held = Vec::new();
    for i in 1..=6u64 {
        held.push(spawn_get(&t, "/hold"));
        eventually("request held", || a.current() + b.current() == i).await;
        assert!(
            a.current().abs_diff(b.current()) <= 1,
            "a={} b={}",
            a.current(),
            b.current()
        );
    }
    assert_eq!((a.current(), b.current()), (3, 3));
    // Free a's three: the next three all go to a, the less loaded one.
    a.release_holds();
    eventually("a drained", || a.current() == 0).await;
    a.reset_holds();
    for i in 1..=3u64 {
        held.push(spawn_get(&t, "/hold"));
        eventually("request held", || a.current() == i).await;
    }
    assert_eq!(b.current(), 3);
    a.release_holds();
    b.release_holds();
    join_all(held).await;
    d.settled("c").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standby_takes_overflow_and_backup_only_failover() {
    let (a, s, k) = (
        TestBackend::start("a").await,
        TestBackend::start("s").await,
        TestBackend::start("k").await,
    );
    let yaml = cluster_config(
        "queue_timeout: 5s",
        &[
            ("a", a.url(), 1, "active"),
            ("s", s.url(), 1, "standby"),
            ("k", k.url(), 1, "backup"),
        ],
    );
    let d = start(&yaml).await;
    let t = d.target();
    let first = spawn_get(&t, "/hold");
    eventually("active busy", || a.current() == 1).await;
    assert_eq!(s.current(), 0, "standby idle while the active backend has room");
    let second = spawn_get(&t, "/hold");
    eventually("standby busy", || s.current() == 1).await;
    // Both full: the next request waits; the backup is not used for overflow.
    let third = spawn_get(&t, "/hold");
    eventually("third queued", || {
        d.cluster("c").admission.stats.queued.current() == 1
    })
    .await;
    assert_eq!(k.hits(), 0);
    a.release_holds();
    s.release_holds();
    for r in join_all([first, second, third]).await {
        assert_eq!(r.expect("task").status, 200);
    }
    assert_eq!(
        k.hits(),
        0,
        "backup never used while active/standby are available"
    );
    d.settled("c").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_serves_when_no_active_backend_is_available() {
    let k = TestBackend::start("k").await;
    let yaml = cluster_config(
        "max_retry_count: 2",
        &[
            ("dead", refusing_url().await, 4, "active"),
            ("k", k.url(), 4, "backup"),
        ],
    );
    let d = start(&yaml).await;
    // Each request fails on `dead`, then its retry avoids it: the backup answers.
    for i in 1..=3 {
        let r = get(&d.target(), "/").await;
        assert_eq!((r.status, r.text().as_str()), (200, "k"));
        assert_eq!(k.hits(), i);
    }
    let dead = d.backend("c", "dead");
    assert_eq!(dead.stats.snapshot().failures, 3, "one failure per request");
    // The third failure within fail_timeout (max_fails 3) takes it out.
    wait_health(&d, "dead", Health::Offline).await;
    let r = get(&d.target(), "/").await;
    assert_eq!((r.status, r.text().as_str()), (200, "k"));
    assert_eq!(dead.stats.snapshot().failures, 3, "not tried while out");
    d.settled("c").await;
}

/// Waits until the cluster publishes `health` for `backend`; that published status.
async fn wait_health(d: &support::Director, backend: &str, health: Health) -> BackendStatus {
    let c = d.cluster("c");
    wait_until(format!("{backend} {health:?}"), async || {
        let statuses = c.statuses.load();
        let status = statuses.iter().find(|s| s.name == backend);
        match status.filter(|s| s.health == health) {
            Some(s) => Ok(s.clone()),
            None => Err(format!("{status:?}")),
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_is_never_exceeded_under_load() {
    let (a, b) = (TestBackend::start("a").await, TestBackend::start("b").await);
    let yaml = cluster_config(
        "scheduler: least-load\nqueue_limit: 200",
        &[("a", a.url(), 3, "active"), ("b", b.url(), 2, "active")],
    );
    let d = start(&yaml).await;
    let t = d.target();
    let replies = join_all((0..60).map(|_| spawn_get(&t, "/sleep?ms=10"))).await;
    assert!(replies.into_iter().all(|r| r.expect("task").status == 200));
    assert_eq!(a.hits() + b.hits(), 60);
    assert!(
        a.peak() <= 3 && b.peak() <= 2,
        "peaks a={} b={}",
        a.peak(),
        b.peak()
    );
    assert!(
        a.peak() == 3 && b.peak() == 2,
        "load reached capacity: a={} b={}",
        a.peak(),
        b.peak()
    );
    let stats = d.cluster("c").admission.stats.snapshot();
    assert!(stats.queued.max > 0 && stats.in_flight.max == 5, "{stats:?}");
    d.settled("c").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_queue_gets_503_with_retry_after() {
    let a = TestBackend::start("a").await;
    let yaml = cluster_config("queue_limit: 1\nretry_after: 7", &[("a", a.url(), 1, "active")]);
    let d = start(&yaml).await;
    let t = d.target();
    let held = spawn_get(&t, "/hold");
    a.wait_current(1).await;
    let queued = spawn_get(&t, "/");
    eventually("one queued", || {
        d.cluster("c").admission.stats.queued.current() == 1
    })
    .await;
    let r = get(&t, "/").await;
    assert_eq!((r.status, r.header("retry-after")), (503, Some("7")));
    a.release_holds();
    assert_eq!(held.await.expect("task").status, 200);
    assert_eq!(queued.await.expect("task").status, 200);
    assert_eq!(d.cluster("c").admission.stats.snapshot().dropped, 1);
    d.settled("c").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_timeout_gets_504_with_retry_after() {
    let a = TestBackend::start("a").await;
    let yaml = cluster_config(
        "queue_timeout: 200ms\nretry_after: 3",
        &[("a", a.url(), 1, "active")],
    );
    let d = start(&yaml).await;
    let t = d.target();
    let held = spawn_get(&t, "/hold");
    a.wait_current(1).await;
    let started = std::time::Instant::now();
    let r = get(&t, "/").await;
    assert_eq!((r.status, r.header("retry-after")), (504, Some("3")));
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(d.cluster("c").admission.stats.queued.current(), 0);
    a.release_holds();
    assert_eq!(held.await.expect("task").status, 200);
    d.settled("c").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_requests_are_served_in_fifo_order_as_slots_free() {
    let a = TestBackend::start("a").await;
    let yaml = cluster_config("queue_limit: 10", &[("a", a.url(), 1, "active")]);
    let d = start(&yaml).await;
    let t = d.target();
    let held = {
        let t = t.clone();
        tokio::spawn(async move { request(&t, "GET", "/hold", &[("x-seq", "h")], Default::default()).await })
    };
    a.wait_current(1).await;
    let mut queued = Vec::new();
    for i in 1..=5usize {
        let t = t.clone();
        queued.push(tokio::spawn(async move {
            request(&t, "GET", "/", &[("x-seq", &i.to_string())], Default::default()).await
        }));
        eventually("queued in order", || {
            d.cluster("c").admission.stats.queued.current() == i as u64
        })
        .await;
    }
    a.release_holds();
    assert_eq!(held.await.expect("task").status, 200);
    for r in join_all(queued).await {
        assert_eq!(r.expect("task").status, 200);
    }
    assert_eq!(a.arrivals(), ["h", "1", "2", "3", "4", "5"]);
    assert_eq!(a.peak(), 1);
    d.settled("c").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_backend_is_skipped_and_marked_unavailable() {
    let good = TestBackend::start("good").await;
    let yaml = cluster_config(
        "scheduler: rr\nmax_retry_count: 1\npassive_health: { max_fails: 2, fail_timeout: 1m }",
        &[
            ("dead", refusing_url().await, 0, "active"),
            ("good", good.url(), 0, "active"),
        ],
    );
    let d = start(&yaml).await;
    for _ in 0..10 {
        let r = get(&d.target(), "/").await;
        assert_eq!((r.status, r.text().as_str()), (200, "good"));
    }
    let c = d.cluster("c");
    let dead = d.backend("c", "dead");
    assert_eq!(
        dead.stats.snapshot().failures,
        2,
        "tried until max_fails, then skipped"
    );
    assert_eq!(c.admission.stats.snapshot().retries, 2);
    let dead = wait_health(&d, "dead", Health::Offline).await;
    let reason = dead.health_reason.as_deref().unwrap_or_default();
    assert!(reason.contains("connect"), "{dead:?}");
    d.settled("c").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_retry_after_response_bytes_went_out() {
    let (a, b) = (TestBackend::start("a").await, TestBackend::start("b").await);
    let yaml = cluster_config(
        "scheduler: chance\nmax_retry_count: 3",
        &[("a", a.url(), 0, "active"), ("b", b.url(), 0, "active")],
    );
    let d = start(&yaml).await;
    let mut sender = support::connect(&d.target()).await;
    let req = http::Request::get("/die?bytes=200000")
        .header("host", "x")
        .body(Default::default())
        .expect("req");
    let res = sender.send_request(req).await.expect("head arrives");
    assert_eq!(res.status(), 200);
    let body = http_body_util::BodyExt::collect(res.into_body()).await;
    assert!(body.is_err(), "the client sees a cut response");
    assert_eq!((a.hits(), b.hits()), (1, 0), "no retry after bytes were sent");
    d.settled("c").await;
    assert_eq!(d.backend("c", "a").stats.snapshot().failures, 1);
}
