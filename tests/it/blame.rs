//! Clients can't take backends offline: a stalled request body is the client's fault (408),
//! the backend's read timeout starts once the request was sent, one client request counts at
//! most one failure however many backends it visits, only idempotent requests are retried
//! once sent, and a kept-alive connection the backend closed is retried once on a fresh one.

use crate::support;

use std::time::Duration;

use bytes::Bytes;
use director::cluster::health::Health;
use futures_util::future::join_all;
use support::backend::TestBackend;
use support::scripted::{ok, RawClient, Scripted, Step};
use support::{cluster_config, eventually, get, request, start, Director};

fn all_online(d: &Director) -> bool {
    d.cluster("c")
        .statuses
        .load()
        .iter()
        .all(|s| s.health == Health::Online)
}

fn offline(d: &Director) -> Vec<String> {
    let statuses = d.cluster("c").statuses.load();
    statuses
        .iter()
        .filter(|s| s.health == Health::Offline)
        .map(|s| s.name.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_request_body_is_408_and_never_the_backends_fault() {
    let (a, b) = (TestBackend::start("a").await, TestBackend::start("b").await);
    // The backend read timeout is much shorter than the client body timeout: a stalled body
    // must not make it fire.
    let yaml = cluster_config(
        "read_timeout: 100ms\nclient_body_timeout: 400ms\npassive_health: { max_fails: 1, fail_timeout: 10s }",
        &[("a", a.url(), 0, "active"), ("b", b.url(), 0, "active")],
    );
    let d = start(&yaml).await;
    let slow: Vec<_> = (0..8)
        .map(|i| {
            let addr = d.addr();
            tokio::spawn(async move {
                let mut c = RawClient::connect(addr).await;
                let head = format!("POST /upload?n={i} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n");
                c.send(head.as_bytes()).await;
                c.send(b"only ten..").await;
                // ... and nothing more.
                c.read(false).await
            })
        })
        .collect();
    // Two more stall after the backend already answered (it echoes while it reads): their
    // responses are cut when the body times out, and that is not the backend's fault either.
    let echoes: Vec<_> = (0..2)
        .map(|_| {
            let addr = d.addr();
            tokio::spawn(async move {
                let mut c = RawClient::connect(addr).await;
                c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nten bytes.")
                    .await;
                c.closed_within(Duration::from_secs(5)).await
            })
        })
        .collect();
    let innocent: Vec<_> = (0..30)
        .map(|_| {
            let t = d.target();
            tokio::spawn(async move { get(&t, "/").await.status })
        })
        .collect();
    for status in join_all(innocent).await {
        assert_eq!(status.expect("task"), 200, "an innocent request failed");
    }
    for reply in join_all(slow).await {
        let reply = reply.expect("task");
        assert_eq!(reply.status, 408, "{reply:?}");
    }
    for closed in join_all(echoes).await {
        assert!(closed.expect("task"), "a stalled echo upload was cut");
    }
    assert!(all_online(&d), "offline: {:?}", offline(&d));
    for name in ["a", "b"] {
        assert_eq!(d.backend("c", name).stats.snapshot().failures, 0, "{name} blamed");
    }
    assert_eq!(get(&d.target(), "/").await.status, 200);
    d.settled("c").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_but_steady_upload_outlives_the_backend_read_timeout() {
    let a = TestBackend::start("a").await;
    let yaml = cluster_config(
        "read_timeout: 150ms\nclient_body_timeout: 2s",
        &[("a", a.url(), 0, "active")],
    );
    let d = start(&yaml).await;
    let mut c = RawClient::connect(d.addr()).await;
    // /upload answers once it has the whole body (its length and byte sum).
    c.send(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
        .await;
    for byte in b"0123456789" {
        tokio::time::sleep(Duration::from_millis(60)).await;
        c.send(&[*byte]).await;
    }
    let reply = c.read(false).await;
    let sum: u64 = b"0123456789".iter().map(|&b| u64::from(b)).sum();
    assert_eq!((reply.status, reply.text()), (200, format!("10 {sum}")));
    assert_eq!(d.backend("c", "a").stats.snapshot().failures, 0);
    d.settled("c").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_counts_one_failure_however_many_backends_it_visits() {
    // A "query of death": every backend drops the connection on /qod.
    let script = |seen: &support::scripted::Seen| match seen.path.as_str() {
        "/qod" => Step::Close,
        path => Step::Reply(ok(path)),
    };
    let backends = [
        Scripted::start(script).await,
        Scripted::start(script).await,
        Scripted::start(script).await,
    ];
    let yaml = cluster_config(
        "scheduler: rr\nmax_retry_count: 3\npassive_health: { max_fails: 1, fail_timeout: 1m }",
        &[
            ("x", backends[0].url(), 0, "active"),
            ("y", backends[1].url(), 0, "active"),
            ("z", backends[2].url(), 0, "active"),
        ],
    );
    let d = start(&yaml).await;
    let r = get(&d.target(), "/qod").await;
    assert_eq!(r.status, 502);
    let tried: usize = backends.iter().map(|b| b.seen().len()).sum();
    assert_eq!(tried, 3, "the GET was tried on every backend");
    eventually("the first backend taken out", || offline(&d).len() == 1).await;
    // Give a wrongly sent second or third ejection every chance to arrive.
    d.settled("c").await;
    assert_eq!(offline(&d).len(), 1, "one request ejected {:?}", offline(&d));
    assert_eq!(get(&d.target(), "/fine").await.status, 200);
    d.settled("c").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sent_post_is_not_retried_but_a_get_is() {
    let script = |seen: &support::scripted::Seen| match seen.path.as_str() {
        "/drop" => Step::Close,
        path => Step::Reply(ok(path)),
    };
    let (x, y) = (Scripted::start(script).await, Scripted::start(script).await);
    let yaml = cluster_config(
        "scheduler: rr\nmax_retry_count: 5\npassive_health: { max_fails: 0 }",
        &[("x", x.url(), 0, "active"), ("y", y.url(), 0, "active")],
    );
    let d = start(&yaml).await;
    let r = request(&d.target(), "POST", "/drop", &[], Bytes::new()).await;
    assert_eq!(r.status, 502);
    assert_eq!(
        x.seen().len() + y.seen().len(),
        1,
        "a POST reached a backend once"
    );
    let body = Bytes::from_static(b"payload");
    let r = request(&d.target(), "POST", "/drop", &[], body).await;
    assert_eq!(r.status, 502);
    assert_eq!(x.seen().len() + y.seen().len(), 2, "a POST with a body too");
    let r = get(&d.target(), "/drop").await;
    assert_eq!(r.status, 502);
    assert_eq!(
        x.seen().len() + y.seen().len(),
        4,
        "a GET is retried, on the other backend (tried ones are avoided)"
    );
    d.settled("c").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_pooled_connection_is_retried_once_on_a_fresh_one() {
    // The backend answers the first request of each connection and closes the connection on
    // the second without answering, as one closing an idle connection at that moment would.
    let backend = Scripted::start(|seen| match seen.seq {
        0 => Step::Reply(ok(&seen.path)),
        _ => Step::Close,
    })
    .await;
    let yaml = cluster_config(
        "max_retry_count: 0\nbackend_keep_alive: 1h",
        &[("b", backend.url(), 0, "active")],
    )
    .replace("workers: 2", "workers: 1");
    let d = start(&yaml).await;
    let mut c = RawClient::connect(d.addr()).await;
    c.send(b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(c.read(false).await.text(), "/first");
    c.send(b"GET /second HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let reply = c.read(false).await;
    assert_eq!((reply.status, reply.text().as_str()), (200, "/second"));
    let seen: Vec<(u64, String)> = backend.seen().into_iter().map(|s| (s.conn, s.path)).collect();
    assert_eq!(
        seen,
        [(0, "/first".into()), (0, "/second".into()), (1, "/second".into())],
        "sent on the pooled connection, then once more on a fresh one"
    );
    // A POST on a stale connection is not sent twice.
    c.send(b"POST /third HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        .await;
    let reply = c.read(false).await;
    assert_eq!(reply.status, 502);
    assert_eq!(backend.seen().iter().filter(|s| s.path == "/third").count(), 1);
    // None of this is the backend's fault.
    assert_eq!(d.backend("c", "b").stats.snapshot().failures, 0);
    d.settled("c").await;
}
