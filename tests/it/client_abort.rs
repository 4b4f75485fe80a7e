//! A cluster's `on_client_abort`: what the backend sees when the client leaves before its
//! answer is complete. `close` (the default, nginx's) closes the backend connection at once
//! and frees the capacity; `notify` first sends a FastCGI application an ABORT_REQUEST;
//! `ignore` lets the backend finish, holding the capacity until then, and still answers a
//! client that only closed its sending side. The setting changes at runtime like any other.

use crate::access_log_fields::{json_lines, logged};
use crate::support;

use std::time::Duration;

use bytes::BytesMut;
use director::proto::fastcgi::{self, RecordDecoder, RecordType};
use support::backend::TestBackend;
use support::{cluster_config, eventually, start};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

const HOLD: &[u8] = b"GET /hold HTTP/1.1\r\nhost: x\r\n\r\n";

/// Sends a request that the backend holds, and waits until the backend has it.
async fn held_request(d: &support::Director, backend: &TestBackend) -> TcpStream {
    let mut client = TcpStream::connect(d.addr()).await.expect("connect");
    client.write_all(HOLD).await.expect("request");
    backend.wait_current(1).await;
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_a_client_that_leaves_ends_its_backend_request() {
    let a = TestBackend::start("a").await;
    let dir = support::temp_dir("client-abort");
    let log = dir.path().join("access.log");
    let d = start(&logged(
        cluster_config("", &[("a", a.url(), 4, "active")]),
        "json",
        &log,
    ))
    .await;
    drop(held_request(&d, &a).await);
    // The hold is never released: only director closing the backend connection ends it.
    eventually("the backend request ended", || a.current() == 0).await;
    d.settled("c").await;
    let line = &json_lines(&log, 1).await[0];
    assert_eq!(
        (line["status"].as_u64(), line["termination"].as_str()),
        (Some(499), Some("CH"))
    );

    // A client that closes its sending side has left too (as nginx takes it).
    let mut client = held_request(&d, &a).await;
    client.shutdown().await.expect("half-close");
    eventually("the backend request ended", || a.current() == 0).await;
    let mut rest = Vec::new();
    let _ = client.read_to_end(&mut rest).await;
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    d.settled("c").await;
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignore_lets_the_backend_finish_holding_the_capacity() {
    let a = TestBackend::start("a").await;
    let mut yaml = cluster_config("", &[("a", a.url(), 4, "active")]);
    yaml.push_str("admin: { listen: \"127.0.0.1:0\" }\n");
    let d = start(&yaml).await;
    // Set at runtime, like any cluster setting; shown in the cluster's settings.
    let patch = serde_json::json!({ "on_client_abort": "ignore" });
    let (status, _) = support::admin(&d, "PATCH", "/api/v1/clusters/c", Some(patch), None).await;
    assert_eq!(status, 200);
    let (_, body) = support::admin(&d, "GET", "/api/v1/clusters/c", None, None).await;
    assert_eq!(body["settings"]["on_client_abort"], "ignore", "{body}");
    let bad = serde_json::json!({ "on_client_abort": "sometimes" });
    let (status, body) = support::admin(&d, "PATCH", "/api/v1/clusters/c", Some(bad), None).await;
    assert_eq!(status, 400, "{body}");
    let cluster = d.cluster("c");
    drop(held_request(&d, &a).await);
    // A bound for something that must not happen: `close` ends it within a few milliseconds
    // (the test above).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(a.current(), 1, "the backend request goes on");
    assert_eq!(
        cluster.admission.stats.snapshot().in_flight.current,
        1,
        "its capacity is held"
    );
    a.release_holds();
    eventually("the backend answered", || a.current() == 0).await;
    d.settled("c").await;

    // A client that only closed its sending side gets its answer.
    a.reset_holds();
    let mut client = held_request(&d, &a).await;
    client.shutdown().await.expect("half-close");
    // Not a wait for a condition (under ignore, director's seeing the end shows nowhere): it
    // lets the end arrive while the request is held, which is the case this part is about;
    // the answer must arrive whichever comes first.
    tokio::time::sleep(Duration::from_millis(100)).await;
    a.release_holds();
    let mut answer = Vec::new();
    client.read_to_end(&mut answer).await.expect("answer");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("\r\n\r\na"), "{answer}");
    d.settled("c").await;

    // The next request on a connection of a cluster that ignores aborts is served as usual.
    let r = support::get(&d.target(), "/").await;
    assert_eq!(r.status, 200);
    d.stop().await;
}

/// When the client leaves.
#[derive(Debug, Clone, Copy)]
enum Leaves {
    /// Before the response head.
    BeforeHead,
    /// After the head and part of the body.
    MidBody,
}

/// A FastCGI application that reads one request, tells `got_request`, answers the head and
/// part of a body when `mid_body`, then returns the records it reads until the connection
/// closes.
async fn watching_application(
    listener: TcpListener,
    mid_body: bool,
    got_request: oneshot::Sender<()>,
) -> Vec<RecordType> {
    let (mut sock, _) = listener.accept().await.expect("accept");
    let mut decoder = RecordDecoder::unrestricted();
    let mut buf = BytesMut::with_capacity(8192);
    let mut after = Vec::new();
    let mut stdin_done = false;
    let mut got_request = Some(got_request);
    loop {
        match decoder.decode(&mut buf).expect("well-formed records") {
            Some(r) if !stdin_done => {
                if r.kind == RecordType::Stdin && r.content.is_empty() {
                    stdin_done = true;
                    if mid_body {
                        let mut reply = BytesMut::new();
                        let head = b"Content-Type: text/plain\r\n\r\nfirst part";
                        fastcgi::stream(&mut reply, RecordType::Stdout, 1, head);
                        sock.write_all(&reply).await.expect("reply");
                    }
                    let _ = got_request.take().map(|tx| tx.send(()));
                }
            }
            Some(r) => after.push(r.kind),
            None => match sock.read_buf(&mut buf).await {
                Ok(n) if n > 0 => {}
                _ => return after,
            },
        }
    }
}

/// What the application reads after the request when the client leaves at `leaves`, under
/// `on_client_abort: mode`.
async fn records_after_client_leaves(mode: &str, leaves: Leaves) -> Vec<RecordType> {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("fastcgi://{}", listener.local_addr().expect("addr"));
    let settings = format!("fastcgi: {{ document_root: /srv/app }}\non_client_abort: {mode}");
    let d = start(&cluster_config(&settings, &[("app", url, 4, "active")])).await;
    let (tx, rx) = oneshot::channel();
    let app = tokio::spawn(watching_application(
        listener,
        matches!(leaves, Leaves::MidBody),
        tx,
    ));
    let mut client = TcpStream::connect(d.addr()).await.expect("connect");
    client
        .write_all(b"GET /index.php HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .expect("request");
    rx.await.expect("the application got the request");
    if let Leaves::MidBody = leaves {
        let mut seen = Vec::new();
        while !String::from_utf8_lossy(&seen).contains("first part") {
            let mut chunk = [0u8; 1024];
            let n = client.read(&mut chunk).await.expect("read");
            assert!(n > 0, "the answer ended early");
            seen.extend_from_slice(&chunk[..n]);
        }
    }
    drop(client);
    let after = tokio::time::timeout(support::WAIT, app)
        .await
        .expect("director closed the application's connection")
        .expect("application task");
    d.settled("c").await;
    d.stop().await;
    after
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_tells_a_fastcgi_application_with_abort_request() {
    for leaves in [Leaves::BeforeHead, Leaves::MidBody] {
        let after = records_after_client_leaves("notify", leaves).await;
        assert_eq!(after, [RecordType::AbortRequest], "client left {leaves:?}");
        let after = records_after_client_leaves("close", leaves).await;
        assert_eq!(after, [], "client left {leaves:?}: close sends nothing");
    }
}

/// Sends `GET path` and closes the sending side at once, as HTTP/1.0-style clients do; the
/// request and the end usually reach director together. The answer read back.
async fn request_then_close(d: &support::Director, path: &str) -> String {
    let mut client = TcpStream::connect(d.addr()).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n");
    client.write_all(request.as_bytes()).await.expect("request");
    client.shutdown().await.expect("half-close");
    let mut answer = Vec::new();
    let _ = client.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_decides_about_a_request_that_arrives_with_the_clients_end() {
    let a = TestBackend::start("a").await;
    let d = start(&cluster_config(
        "on_client_abort: ignore",
        &[("a", a.url(), 4, "active")],
    ))
    .await;
    for _ in 0..20 {
        let answer = request_then_close(&d, "/").await;
        assert!(answer.starts_with("HTTP/1.1 200"), "ignore: {answer:?}");
    }
    d.settled("c").await;
    d.stop().await;

    // Under close, the request ends without its answer (a held one, so that no answer can
    // beat the end to the client).
    let d = start(&cluster_config("", &[("a", a.url(), 4, "active")])).await;
    for _ in 0..5 {
        assert_eq!(
            request_then_close(&d, "/hold").await,
            "",
            "close: the client has left"
        );
        eventually("the backend request ended", || a.current() == 0).await;
    }
    d.settled("c").await;
    d.stop().await;
}
