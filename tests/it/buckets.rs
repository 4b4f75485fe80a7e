//! HTB partitioning end to end: classification, assured shares under saturation, borrowing
//! back, debug headers, and bucket changes at runtime.

use crate::support;

use std::time::Instant;

use bytes::Bytes;
use director::cluster::admission::BucketState;
use futures_util::future::join_all;
use serde_json::json;
use support::backend::TestBackend;
use support::{admin, cluster_config, eventually, request, start, Target};

const SHOP: &str = "queue_limit: 100
queue_timeout: 20s
debug_headers: true
default_bucket: main
buckets:
  - { name: vip, rate: 0.2, ceil: 0.4, match: { header: { name: X-Class, value: vip } } }
  - { name: main, rate: 0.8, ceil: 1.0 }";

/// Sends a request and returns the reply; the completion instant goes into `x-done`.
fn spawn(
    target: &Target,
    path: &str,
    seq: String,
    class: &'static str,
) -> tokio::task::JoinHandle<support::Reply> {
    let (t, p) = (target.clone(), path.to_owned());
    tokio::spawn(async move {
        let mut r = request(
            &t,
            "GET",
            &p,
            &[("x-seq", &seq), ("x-class", class)],
            Bytes::new(),
        )
        .await;
        let done = START.get_or_init(Instant::now).elapsed().as_micros().to_string();
        r.headers.insert("x-done", done.parse().expect("header value"));
        r
    })
}

static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

fn done_at(r: &support::Reply) -> u128 {
    r.header("x-done").and_then(|v| v.parse().ok()).expect("x-done")
}

fn bucket(d: &support::Director, name: &str) -> BucketState {
    d.cluster("c")
        .admission
        .buckets()
        .into_iter()
        .find(|b| b.name == name)
        .expect("bucket")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vip_gets_its_assured_share_ahead_of_mains_queue_and_main_borrows_it_back() {
    let app = TestBackend::start("app").await;
    let d = start(&cluster_config(SHOP, &[("app", app.url(), 10, "active")])).await;
    let t = d.target();
    assert_eq!(
        (bucket(&d, "vip").assured, bucket(&d, "vip").ceiling),
        (Some(2), Some(4))
    );
    assert_eq!(
        (bucket(&d, "main").assured, bucket(&d, "main").ceiling),
        (Some(8), Some(10))
    );

    // main saturates the cluster (borrowing vip's idle share) and queues 10 more.
    let main: Vec<_> = (0..20)
        .map(|i| spawn(&t, "/sleep?ms=600", format!("m{i}"), "-"))
        .collect();
    eventually("main holds all 10 tokens, 10 queued", || {
        let m = bucket(&d, "main");
        m.in_use == 10 && m.queued == 10 && m.borrowed == 2
    })
    .await;
    // vip arrives after main's queue.
    let vip: Vec<_> = (0..2)
        .map(|i| spawn(&t, "/sleep?ms=10", format!("v{i}"), "vip"))
        .collect();
    eventually("vip queued", || bucket(&d, "vip").queued == 2).await;

    START.get_or_init(Instant::now);
    let vip: Vec<_> = join_all(vip)
        .await
        .into_iter()
        .map(|r| r.expect("task"))
        .collect();
    for r in &vip {
        assert_eq!((r.status, r.header("x-director-bucket")), (200, Some("vip")));
    }
    // vip is done: main borrows its share back.
    eventually("main back at 10 in use", || {
        let (m, v) = (bucket(&d, "main"), bucket(&d, "vip"));
        v.in_use == 0 && (m.in_use == 10 || m.queued == 0)
    })
    .await;
    let m = bucket(&d, "main");
    assert!(m.in_use == 10 && m.borrowed == 2, "{m:?}");
    let main: Vec<_> = join_all(main)
        .await
        .into_iter()
        .map(|r| r.expect("task"))
        .collect();
    for r in &main {
        assert_eq!((r.status, r.header("x-director-bucket")), (200, Some("main")));
        assert_eq!(r.header("x-director-backend"), Some("app"));
    }
    // Ten main requests ran first; the other ten waited in main's queue, ahead of vip.
    // vip got the first freed tokens: both vip requests finished before any of those ten.
    let mut main_done: Vec<u128> = main.iter().map(done_at).collect();
    main_done.sort_unstable();
    let vip_done = vip.iter().map(done_at).max().expect("vip");
    assert!(
        vip_done < main_done[10],
        "vip done at {vip_done}us, second-wave main from {}us",
        main_done[10]
    );
    assert!(app.peak() <= 10);
    d.settled("c").await;
    assert_eq!((bucket(&d, "vip").served, bucket(&d, "main").served), (2, 20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buckets_change_at_runtime_and_a_deleted_buckets_queue_goes_to_its_parent() {
    let app = TestBackend::start("app").await;
    let mut yaml = cluster_config(SHOP, &[("app", app.url(), 1, "active")]);
    yaml.push_str("admin: { listen: \"127.0.0.1:0\" }\n");
    let d = start(&yaml).await;
    let t = d.target();

    // An invalid change is refused and changes nothing.
    let (code, body) = admin(
        &d,
        "PATCH",
        "/api/v1/clusters/c/buckets/vip",
        Some(json!({ "rate": 0.5 })),
        None,
    )
    .await;
    assert_eq!(code, 400, "rate above ceil: {body}");
    assert!(body.to_string().contains("bucket `vip`"), "{body}");
    assert_eq!(bucket(&d, "vip").rate, 0.2);

    // One main request holds the only token; a vip request waits.
    let held = spawn(&t, "/hold", "m".into(), "-");
    app.wait_current(1).await;
    let waiting = spawn(&t, "/", "v".into(), "vip");
    eventually("vip queued", || bucket(&d, "vip").queued == 1).await;

    let (code, body) = admin(&d, "DELETE", "/api/v1/clusters/c/buckets/vip", None, None).await;
    assert_eq!(code, 200, "{body}");
    // The cluster's mailbox runs the change before this query.
    let (code, buckets) = admin(&d, "GET", "/api/v1/clusters/c/buckets", None, None).await;
    assert_eq!(code, 200, "{buckets}");
    let buckets = buckets.as_array().expect("a list");
    assert!(buckets.iter().all(|b| b["name"] != "vip"), "{buckets:?}");
    let root = buckets.iter().find(|b| b["name"] == "root").expect("root");
    assert_eq!(
        (&root["queued"], &root["in_use"]),
        (&json!(1), &json!(1)),
        "the queued request moved to the parent"
    );

    app.release_holds();
    assert_eq!(held.await.expect("task").status, 200);
    let r = waiting.await.expect("task");
    assert_eq!((r.status, r.header("x-director-bucket")), (200, Some("vip")));
    d.settled("c").await;
    // New requests with the vip header now fall to the default bucket.
    let r = request(&t, "GET", "/", &[("x-class", "vip")], Bytes::new()).await;
    assert_eq!(r.header("x-director-bucket"), Some("main"));
}
