//! Health monitoring and backend lifecycle: probes with rise/fall, modes, passive failures,
//! sticky offline, client-side routing (canary), capacity hand-up, and drain.

use crate::support;

use bytes::Bytes;
use director::cluster::backend_status::BackendStatus;
use director::cluster::health::Health;
use futures_util::future::join_all;
use serde_json::json;
use support::backend::{silent_backend, TestBackend};
use support::{admin, cluster_config, eventually, get, request, start, wait_until, Director};

/// A loopback admin listener without a token, added to a [`cluster_config`].
const ADMIN: &str = "admin: { listen: \"127.0.0.1:0\" }\n";

/// The backend's status as the cluster last published it.
fn status(d: &Director, cluster: &str, backend: &str) -> Option<BackendStatus> {
    d.cluster(cluster)
        .statuses
        .load()
        .iter()
        .find(|s| s.name == backend)
        .cloned()
}

/// Polls the published statuses until `pred` holds for the backend's status.
async fn wait_status(
    d: &Director,
    backend: &str,
    what: &str,
    pred: impl Fn(&BackendStatus) -> bool,
) -> BackendStatus {
    wait_until(format!("{backend}: {what}"), async || {
        status(d, "c", backend).filter(|s| pred(s))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rise_and_fall_follow_probes_and_the_expected_codes() {
    let a = TestBackend::start("a").await;
    let health = "health: { interval: 50ms, timeout: 500ms, rise: 2, fall: 2, path: /health, expect: [200] }";
    let d = start(&cluster_config(health, &[("a", a.url(), 0, "active")])).await;
    assert_eq!(get(&d.target(), "/").await.status, 200);

    a.set_health(301); // a redirect would pass by default, but only 200 is expected here
    let s = wait_status(&d, "a", "offline", |s| s.health == Health::Offline).await;
    assert_eq!(s.health_reason.as_deref(), Some("status 301"));
    assert!(!s.last_probe.as_ref().expect("probed").ok);
    assert_eq!(get(&d.target(), "/").await.status, 503, "no backend left");

    a.set_health(200);
    let s = wait_status(&d, "a", "online", |s| s.health == Health::Online).await;
    assert_eq!(s.health_reason.as_deref(), Some("status 200"));
    assert!(s.enabled);
    // The good probe that brought it back is published too.
    eventually("snapshot shows the flip", || {
        let statuses = d.cluster("c").statuses.load();
        statuses.iter().any(|x| {
            x.name == "a" && x.health == Health::Online && x.last_probe.as_ref().is_some_and(|p| p.ok)
        })
    })
    .await;
    assert_eq!(get(&d.target(), "/").await.status, 200);
    d.settled("c").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_that_is_never_answered_fails_after_the_probe_timeout() {
    let silent = silent_backend().await;
    let health = "health: { interval: 50ms, timeout: 200ms, fall: 1, path: /health }";
    let d = start(&cluster_config(health, &[("s", silent.url(), 0, "active")])).await;
    let s = wait_status(&d, "s", "offline", |s| s.health == Health::Offline).await;
    assert_eq!(s.health_reason.as_deref(), Some("timeout"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_counts_follow_the_mode() {
    let (p, l, o) = (
        TestBackend::start("p").await,
        TestBackend::start("l").await,
        TestBackend::start("o").await,
    );
    let cluster = |name: &str, mode: &str, url: String| {
        format!(
            "  {name}:\n    health: {{ mode: {mode}, interval: 30ms, path: /health }}\n    backends:\n      - {{ name: {name}, url: \"{url}\" }}\n"
        )
    };
    let yaml = format!(
        "proxy:\n  listen: [\"127.0.0.1:0\"]\n  workers: 1\nroutes:\n  - {{ cluster: p }}\nclusters:\n{}{}{}",
        cluster("p", "paranoid", p.url()),
        cluster("l", "lazy", l.url()),
        cluster("o", "opportunistic", o.url())
    );
    let _d = start(&yaml).await;
    eventually("paranoid probes keep coming", || p.probes() >= 6).await;
    eventually("an idle backend is probed opportunistically", || o.probes() >= 2).await;
    assert_eq!(l.probes(), 0, "lazy never probes an online backend");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passive_failure_takes_a_backend_offline_and_a_probe_brings_it_back() {
    let (a, b) = (TestBackend::start("a").await, TestBackend::start("b").await);
    let health =
        "scheduler: chance\nhealth: { mode: lazy, interval: 50ms, rise: 2, fall: 3, path: /health }\n\
                  passive_health: { max_fails: 2, fail_timeout: 10s }";
    let d = start(&cluster_config(
        health,
        &[("a", a.url(), 0, "active"), ("b", b.url(), 0, "active")],
    ))
    .await;
    // The backend cuts a response: one failure is below max_fails; a second one (another
    // request, within fail_timeout) takes it out — fall counts probes, not these.
    let cut = || async {
        let mut sender = support::connect(&d.target()).await;
        let req = http::Request::get("/die?bytes=200000")
            .header("host", "x")
            .body(Default::default())
            .expect("req");
        let res = sender.send_request(req).await.expect("head");
        assert!(http_body_util::BodyExt::collect(res.into_body()).await.is_err());
    };
    cut().await;
    assert_eq!(get(&d.target(), "/").await.text(), "a", "one failure: still in");
    cut().await;
    let s = wait_status(&d, "a", "offline", |s| s.health == Health::Offline).await;
    assert!(
        s.health_reason.as_deref().unwrap_or("").contains("mid-body"),
        "{s:?}"
    );
    assert_eq!(
        get(&d.target(), "/").await.text(),
        "b",
        "chance skips the offline backend"
    );
    // Lazy mode now probes it; two good probes bring it back.
    let s = wait_status(&d, "a", "online", |s| s.health == Health::Online).await;
    assert_eq!(s.health_reason.as_deref(), Some("status 200"));
    assert!(a.probes() >= 2);
    assert_eq!(get(&d.target(), "/").await.text(), "a");
    d.settled("c").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_offline_keeps_a_returning_backend_disabled_until_enabled() {
    let (a, b) = (TestBackend::start("a").await, TestBackend::start("b").await);
    let settings =
        "scheduler: rr\nsticky_offline: true\nhealth: { interval: 30ms, rise: 1, fall: 1, path: /health }";
    let mut yaml = cluster_config(
        settings,
        &[("a", a.url(), 0, "active"), ("b", b.url(), 0, "active")],
    );
    yaml.push_str(ADMIN);
    let d = start(&yaml).await;
    a.set_health(500);
    wait_status(&d, "a", "offline", |s| s.health == Health::Offline).await;
    a.set_health(200);
    let s = wait_status(&d, "a", "online again", |s| s.health == Health::Online).await;
    assert!(!s.enabled, "sticky offline: back online but disabled");
    let hits = a.hits();
    for _ in 0..6 {
        assert_eq!(get(&d.target(), "/").await.text(), "b");
    }
    assert_eq!(a.hits(), hits);
    // The operator enables it through the API, although the configuration says so already.
    let (code, body) = admin(
        &d,
        "PATCH",
        "/api/v1/clusters/c/backends/a",
        Some(json!({ "enabled": true })),
        None,
    )
    .await;
    assert_eq!((code, &body["enabled"]), (200, &json!(true)), "{body}");
    // Once the change has reached the admission state, round-robin sends a's share again.
    wait_until("traffic reaches a again", async || {
        assert_eq!(get(&d.target(), "/").await.status, 200);
        a.hits() > hits
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_offline_does_not_disable_backends_at_start_up() {
    let a = TestBackend::start("a").await;
    let settings =
        "sticky_offline: true\nhealth: { interval: 30ms, rise: 2, path: /health, initial: offline }";
    let d = start(&cluster_config(settings, &[("a", a.url(), 0, "active")])).await;
    let s = wait_status(&d, "a", "online", |s| s.health == Health::Online).await;
    assert!(s.enabled);
    assert_eq!(get(&d.target(), "/").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_routing_pins_requests_even_to_a_disabled_canary() {
    let (a, canary, down) = (
        TestBackend::start("a").await,
        TestBackend::start("canary").await,
        TestBackend::start("down").await,
    );
    let settings = "retry_after: 4\nclient_routing: { cookie: X-Backend }\nhealth: { interval: 30ms, fall: 1, path: /health }";
    let mut yaml = cluster_config(
        settings,
        &[("a", a.url(), 0, "active"), ("down", down.url(), 0, "active")],
    );
    yaml.push_str(&format!(
        "      - {{ name: canary, url: \"{}\", enabled: false }}\n",
        canary.url()
    ));
    let d = start(&yaml).await;
    down.set_health(503);
    wait_status(&d, "down", "offline", |s| s.health == Health::Offline).await;
    let t = d.target();
    let pinned = |name: &'static str| {
        let t = t.clone();
        async move {
            request(
                &t,
                "GET",
                "/",
                &[("cookie", &format!("a=1; X-Backend={name}"))],
                Bytes::new(),
            )
            .await
        }
    };
    assert_eq!(
        pinned("canary").await.text(),
        "canary",
        "a disabled but healthy backend takes pinned requests"
    );
    for _ in 0..4 {
        assert_eq!(
            get(&t, "/").await.text(),
            "a",
            "unpinned traffic never reaches the canary"
        );
    }
    assert_eq!(pinned("nosuch").await.status, 400);
    let r = pinned("down").await;
    assert_eq!(
        (r.status, r.header("retry-after")),
        (503, Some("4")),
        "no fallback to another backend"
    );
    assert_eq!(canary.hits(), 1);
    d.settled("c").await;

    // The header variant.
    let yaml = cluster_config(
        "client_routing: { header: X-Backend }",
        &[("a", a.url(), 0, "active"), ("b", canary.url(), 0, "active")],
    );
    let d = start(&yaml).await;
    let r = request(&d.target(), "GET", "/", &[("x-backend", "b")], Bytes::new()).await;
    assert_eq!(r.text(), "canary");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_coming_online_takes_as_many_queued_requests_as_its_capacity() {
    let a = TestBackend::start("a").await;
    a.set_health(503);
    let settings = "enqueue_on_unavailable: true\nqueue_timeout: 20s\nhealth: { interval: 30ms, rise: 1, path: /health, initial: offline }";
    let d = start(&cluster_config(settings, &[("a", a.url(), 3, "active")])).await;
    let t = d.target();
    let queued: Vec<_> = (0..4)
        .map(|_| {
            let t = t.clone();
            tokio::spawn(async move { get(&t, "/hold").await })
        })
        .collect();
    eventually("all queued", || {
        d.cluster("c").admission.stats.queued.current() == 4
    })
    .await;
    a.set_health(200);
    a.wait_current(3).await;
    assert_eq!(
        d.cluster("c").admission.stats.queued.current(),
        1,
        "three went at once, one waits"
    );
    a.release_holds();
    for r in join_all(queued).await {
        assert_eq!(r.expect("task").status, 200);
    }
    assert_eq!(a.peak(), 3);
    d.settled("c").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_backend_drains_it() {
    let (a, b) = (TestBackend::start("a").await, TestBackend::start("b").await);
    let mut yaml = cluster_config(
        "scheduler: chance",
        &[("a", a.url(), 2, "active"), ("b", b.url(), 0, "active")],
    );
    yaml.push_str(ADMIN);
    let d = start(&yaml).await;
    let id = d.backend("c", "a").id;
    let t = d.target();
    let held: Vec<_> = (0..2)
        .map(|_| {
            let t = t.clone();
            tokio::spawn(async move { get(&t, "/hold").await })
        })
        .collect();
    a.wait_current(2).await;
    let (code, body) = admin(&d, "DELETE", "/api/v1/clusters/c/backends/a", None, None).await;
    assert_eq!((code, &body["draining"]), (200, &json!(true)), "{body}");
    let listed = status(&d, "c", "a").expect("still listed while draining");
    assert!(listed.draining);
    for _ in 0..4 {
        assert_eq!(
            get(&t, "/").await.text(),
            "b",
            "no new requests to a draining backend"
        );
    }
    a.release_holds();
    for r in join_all(held).await {
        let r = r.expect("task");
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, "a"),
            "in-flight requests finish"
        );
    }
    wait_until("the drained backend goes away", async || {
        status(&d, "c", "a").is_none().then_some(())
    })
    .await;
    assert!(!d.cluster("c").admission.has_slot(id));
    d.settled("c").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_stays_even_while_probes_run() {
    let (a, b, c) = (
        TestBackend::start("a").await,
        TestBackend::start("b").await,
        TestBackend::start("c").await,
    );
    let settings = "scheduler: rr\nhealth: { interval: 5ms, path: /health }";
    let backends = [
        ("a", a.url(), 0, "active"),
        ("b", b.url(), 0, "active"),
        ("c", c.url(), 0, "active"),
    ];
    let d = start(&cluster_config(settings, &backends)).await;
    eventually("probes running", || a.probes() >= 2).await;
    let before = a.probes();
    for _ in 0..60 {
        assert_eq!(get(&d.target(), "/").await.status, 200);
    }
    assert!(a.probes() > before, "probes ran during the traffic");
    assert_eq!((a.hits(), b.hits(), c.hits()), (20, 20, 20));
}
