//! Pooled backend connections can't mix responses: bytes a backend sends after the end of a
//! response (after `Content-Length`, a late body after a HEAD response, a second response in
//! the same packet) never reach the next client; connections in doubt are closed; idle,
//! closed-by-the-backend and removed backends' connections don't linger.

use crate::support;

use std::time::Duration;

use support::scripted::{close_wait_to, ok, RawClient, Scripted, Step};
use support::{admin, cluster_config, eventually, start};

const LATE: Duration = Duration::from_millis(50);

/// A director with one worker (one pool) in front of `backend`.
async fn one_worker(url: String, extra: &str) -> support::Director {
    let yaml = cluster_config(extra, &[("b", url, 0, "active")]).replace("workers: 2", "workers: 1");
    start(&yaml).await
}

/// Sends `GET path` on `c` and returns the body.
async fn get_on(c: &mut RawClient, path: &str) -> String {
    c.send(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await;
    let reply = c.read(false).await;
    assert_eq!(reply.status, 200, "{path}: {reply:?}");
    reply.text()
}

/// Every later request on the same worker gets its own response.
async fn next_clients_get_their_own(c: &mut RawClient) {
    for i in 0..5 {
        let path = format!("/victim-{i}");
        assert_eq!(get_on(c, &path).await, path, "a client got another's response");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_bytes_after_content_length_never_reach_the_next_client() {
    let backend = Scripted::start(|seen| match seen.path.as_str() {
        "/poison" => Step::ReplyThenLate(ok("/poison"), LATE, ok("/smuggled")),
        path => Step::Reply(ok(path)),
    })
    .await;
    let d = one_worker(backend.url(), "").await;
    let mut c = RawClient::connect(d.addr()).await;
    assert_eq!(get_on(&mut c, "/poison").await, "/poison");
    eventually("late bytes written", || backend.late_written() == 1).await;
    next_clients_get_their_own(&mut c).await;
    // The poisoned connection was closed, not parked.
    eventually("poisoned connection closed", || backend.closed_by_peer() >= 1).await;
    d.settled("c").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_response_in_the_same_packet_is_never_served() {
    let backend = Scripted::start(|seen| match seen.path.as_str() {
        "/two" => Step::Reply([ok("/two"), ok("/smuggled")].concat()),
        path => Step::Reply(ok(path)),
    })
    .await;
    let d = one_worker(backend.url(), "").await;
    let mut c = RawClient::connect(d.addr()).await;
    assert_eq!(get_on(&mut c, "/two").await, "/two");
    next_clients_get_their_own(&mut c).await;
    eventually("connection in doubt closed", || backend.closed_by_peer() >= 1).await;
    d.settled("c").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_body_after_a_head_response_never_reaches_the_next_client() {
    let backend = Scripted::start(|seen| match seen.method.as_str() {
        "HEAD" => Step::ReplyThenLate(
            b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n".to_vec(),
            LATE,
            b"/smuggled".to_vec(),
        ),
        _ => Step::Reply(ok(&seen.path)),
    })
    .await;
    let d = one_worker(backend.url(), "").await;
    let mut c = RawClient::connect(d.addr()).await;
    c.send(b"HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let head = c.read(true).await;
    assert_eq!(
        (head.status, head.header("content-length")),
        (200, Some("9".into()))
    );
    eventually("late body written", || backend.late_written() == 1).await;
    next_clients_get_their_own(&mut c).await;
    d.settled("c").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_reused_when_clean() {
    let backend = Scripted::start(|seen| Step::Reply(ok(&seen.path))).await;
    let d = one_worker(backend.url(), "").await;
    let mut c = RawClient::connect(d.addr()).await;
    for i in 0..20 {
        let path = format!("/{i}");
        assert_eq!(get_on(&mut c, &path).await, path);
    }
    assert_eq!(
        backend.opened(),
        1,
        "one backend connection for sequential requests"
    );
    d.settled("c").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_chunked_body_closes_the_connection() {
    let backend = Scripted::start(|seen| match seen.path.as_str() {
        "/bad" => Step::Reply(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcdXX\r\n0\r\n\r\n".to_vec(),
        ),
        path => Step::Reply(ok(path)),
    })
    .await;
    let d = one_worker(backend.url(), "").await;
    let target = d.target();
    let mut sender = support::connect(&target).await;
    let req = http::Request::get("/bad")
        .header("host", "x")
        .body(Default::default())
        .expect("req");
    // The head may or may not have gone out before the bad chunk was met: either way the
    // client sees a cut response, never a complete one.
    if let Ok(res) = sender.send_request(req).await {
        assert!(
            http_body_util::BodyExt::collect(res.into_body()).await.is_err(),
            "the client sees a cut response"
        );
    }
    eventually("bad connection closed", || backend.closed_by_peer() == 1).await;
    let mut c = RawClient::connect(d.addr()).await;
    next_clients_get_their_own(&mut c).await;
    assert_eq!(backend.opened(), 2, "a fresh connection after the bad one");
    d.settled("c").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_encoding_wins_over_content_length_and_the_connection_is_not_reused() {
    let backend = Scripted::start(|seen| match seen.path.as_str() {
        "/both" => Step::Reply(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n\
              5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
                .to_vec(),
        ),
        path => Step::Reply(ok(path)),
    })
    .await;
    let d = one_worker(backend.url(), "").await;
    let mut c = RawClient::connect(d.addr()).await;
    assert_eq!(
        get_on(&mut c, "/both").await,
        "hello world",
        "the whole chunked body"
    );
    eventually("doubtful connection closed", || backend.closed_by_peer() == 1).await;
    next_clients_get_their_own(&mut c).await;
    assert_eq!(backend.opened(), 2);
    d.settled("c").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_after_backend_keep_alive() {
    let backend = Scripted::start(|seen| Step::Reply(ok(&seen.path))).await;
    let d = one_worker(backend.url(), "backend_keep_alive: 200ms").await;
    let mut c = RawClient::connect(d.addr()).await;
    assert_eq!(get_on(&mut c, "/a").await, "/a");
    eventually("idle connection reaped", || backend.closed_by_peer() == 1).await;
    assert_eq!(get_on(&mut c, "/b").await, "/b");
    assert_eq!(backend.opened(), 2);
    d.settled("c").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_the_backend_closed_do_not_linger_in_close_wait() {
    // The backend closes every connection right after its response (without saying so):
    // the pooled connection turns readable (EOF) and must be closed on our side too.
    let backend = Scripted::start(|seen| Step::ReplyThenClose(ok(&seen.path))).await;
    let d = one_worker(backend.url(), "backend_keep_alive: 1h").await;
    let mut c = RawClient::connect(d.addr()).await;
    for i in 0..5 {
        let path = format!("/{i}");
        assert_eq!(get_on(&mut c, &path).await, path);
    }
    eventually("no CLOSE_WAIT sockets to the backend", || {
        close_wait_to(backend.port()) == 0
    })
    .await;
    d.settled("c").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_backend_loses_its_pooled_connections() {
    let a = Scripted::start(|seen| Step::Reply(ok(&seen.path))).await;
    let b = Scripted::start(|seen| Step::Reply(ok(&seen.path))).await;
    let yaml = format!(
        "{}admin:\n  listen: \"127.0.0.1:0\"\n",
        cluster_config(
            "scheduler: rr\nbackend_keep_alive: 1h",
            &[("a", a.url(), 0, "active"), ("b", b.url(), 0, "active")]
        )
    );
    let d = start(&yaml).await;
    let mut c = RawClient::connect(d.addr()).await;
    for i in 0..4 {
        get_on(&mut c, &format!("/{i}")).await;
    }
    assert!(b.opened() >= 1);
    let (status, _) = admin(&d, "DELETE", "/api/v1/clusters/c/backends/b", None, None).await;
    assert_eq!(status, 200);
    eventually("b's idle connections closed", || b.closed_by_peer() == b.opened()).await;
    for i in 0..4 {
        get_on(&mut c, &format!("/after-{i}")).await;
    }
    assert!(a.seen().iter().any(|s| s.path == "/after-3"));
    d.settled("c").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_caught_sending_late_responses_gets_no_more_reuse() {
    // The late response lands after the next request was written on the reused connection:
    // nothing can tell it from that request's answer (nginx and HAProxy hand it over too), and
    // the answers stay shifted until the extra bytes are seen. Once they are, the backend is
    // distrusted and every request gets a connection of its own: the mix-up stops.
    let backend = Scripted::start(|seen| match seen.path.as_str() {
        "/poison" => Step::ReplyThenLate(ok("/poison"), LATE, ok("/smuggled")),
        path => Step::Reply(ok(path)),
    })
    .await;
    let d = one_worker(backend.url(), "").await;
    let (mut a, mut b) = (
        RawClient::connect(d.addr()).await,
        RawClient::connect(d.addr()).await,
    );
    let mut wrong = Vec::new();
    for round in 0..12 {
        for (client, path) in [(&mut a, "/poison".to_owned()), (&mut b, format!("/b-{round}"))] {
            client
                .send(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                .await;
            if client.read(false).await.text() != path {
                wrong.push(round);
            }
        }
    }
    let last = wrong.last().copied().unwrap_or(0);
    assert!(last < 3, "answers still mixed up in round {last}: {wrong:?}");
    d.settled("c").await;
}
