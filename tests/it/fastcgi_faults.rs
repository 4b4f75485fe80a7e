//! FastCGI backends that break the protocol: malformed records, a wrong request id, a stream
//! that ends early, END_REQUEST with `overloaded` or `unknown role`, a response cut mid-body.
//! Each must give the client a 502 (or a retry on another backend while nothing reached the
//! client), leave the process serving and the capacity counters exact. The peers are scripted
//! with director's own FastCGI codec; php-fpm tests are in `fastcgi.rs`.

use crate::support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use director::proto::fastcgi::{self, ProtocolStatus, RecordDecoder, RecordType};
use support::{cluster_config, get, request, start};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What a scripted peer answers to each request on a connection.
type Script = fn(&mut BytesMut);

/// A scripted FastCGI application on a TCP port.
struct Peer {
    url: String,
    connections: Arc<AtomicU64>,
    requests: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a peer that answers every request with `script`'s bytes; with `keep_open` the
/// connection then waits for the next request, else it is closed.
async fn peer(script: Script, keep_open: bool) -> Peer {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("fastcgi://{}", listener.local_addr().expect("addr"));
    let connections = Arc::new(AtomicU64::new(0));
    let requests = Arc::new(AtomicU64::new(0));
    let (c, r) = (connections.clone(), requests.clone());
    let task = tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            c.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve(sock, script, keep_open, r.clone()));
        }
    });
    Peer {
        url,
        connections,
        requests,
        task,
    }
}

/// Reads requests (up to the empty STDIN record) and answers each with `script`.
async fn serve(mut sock: TcpStream, script: Script, keep_open: bool, requests: Arc<AtomicU64>) {
    let mut decoder = RecordDecoder::unrestricted();
    let mut buf = BytesMut::with_capacity(8192);
    loop {
        let mut stdin_done = false;
        while !stdin_done {
            match decoder.decode(&mut buf) {
                Ok(Some(r)) if r.kind == RecordType::Stdin && r.content.is_empty() => stdin_done = true,
                Ok(Some(_)) => {}
                Ok(None) => match sock.read_buf(&mut buf).await {
                    Ok(n) if n > 0 => {}
                    _ => return,
                },
                Err(_) => return,
            }
        }
        requests.fetch_add(1, Ordering::SeqCst);
        let mut reply = BytesMut::new();
        script(&mut reply);
        if sock.write_all(&reply).await.is_err() || !keep_open {
            return;
        }
    }
}

fn stdout(out: &mut BytesMut, id: u16, text: &[u8]) {
    fastcgi::stream(out, RecordType::Stdout, id, text);
}

fn end(out: &mut BytesMut, status: ProtocolStatus) {
    fastcgi::end_stream(out, RecordType::Stdout, 1);
    fastcgi::end_request(out, 1, 0, status);
}

fn good(out: &mut BytesMut) {
    fastcgi::stream(out, RecordType::Stderr, 1, b"a warning from the application");
    stdout(out, 1, b"Status: 201 Created\r\nX-App: good\r\n\r\nhello");
    end(out, ProtocolStatus::RequestComplete);
}

fn bad_version(out: &mut BytesMut) {
    stdout(out, 1, b"Content-Type: text/plain\r\n\r\n");
    out[0] = 2;
}

fn wrong_request_id(out: &mut BytesMut) {
    stdout(out, 2, b"Content-Type: text/plain\r\n\r\nhi");
    end(out, ProtocolStatus::RequestComplete);
}

fn ends_before_end_request(out: &mut BytesMut) {
    stdout(out, 1, b"Content-Type: text/plain\r\n");
}

fn truncated_record(out: &mut BytesMut) {
    stdout(out, 1, b"Content-Type: text/plain\r\n\r\nsome body");
    out.truncate(out.len() - 6);
}

fn overloaded(out: &mut BytesMut) {
    fastcgi::end_request(out, 1, 0, ProtocolStatus::Overloaded);
}

fn unknown_role(out: &mut BytesMut) {
    fastcgi::end_request(out, 1, 0, ProtocolStatus::UnknownRole);
}

fn garbage(out: &mut BytesMut) {
    out.extend_from_slice(b"HTTP/1.1 200 OK\r\n\r\nnot FastCGI at all");
}

fn no_header_block(out: &mut BytesMut) {
    stdout(out, 1, b"just a body without headers");
    end(out, ProtocolStatus::RequestComplete);
}

/// A 1xx is no final status: the client would wait for a response that never comes.
fn interim_status(out: &mut BytesMut) {
    stdout(
        out,
        1,
        b"Status: 100 Continue\r\nContent-Type: text/plain\r\n\r\nhi",
    );
    end(out, ProtocolStatus::RequestComplete);
}

/// Headers and part of the body, then the connection closes.
fn cut_mid_body(out: &mut BytesMut) {
    stdout(out, 1, b"Content-Type: text/plain\r\n\r\nfirst part");
}

fn fastcgi_cluster(settings: &str, backends: &[(&str, String)]) -> String {
    let settings = format!("fastcgi: {{ document_root: /srv/app }}\n{settings}");
    let list: Vec<(&str, String, u32, &str)> = backends
        .iter()
        .map(|(n, u)| (*n, u.clone(), 4, "active"))
        .collect();
    cluster_config(&settings, &list)
}

/// Every way a backend can break the protocol gives 502 without retries, and the backend is
/// reported (passive health) while the director keeps serving.
#[tokio::test]
async fn protocol_violations_give_502_and_keep_counters_exact() {
    let cases: [(&str, Script); 9] = [
        ("bad version", bad_version),
        ("wrong request id", wrong_request_id),
        ("EOF before END_REQUEST", ends_before_end_request),
        ("truncated record", truncated_record),
        ("overloaded", overloaded),
        ("unknown role", unknown_role),
        ("not FastCGI", garbage),
        ("no CGI header block", no_header_block),
        ("Status: 100", interim_status),
    ];
    for (what, script) in cases {
        let bad = peer(script, false).await;
        let director = start(&fastcgi_cluster(
            "max_retry_count: 0",
            &[("bad", bad.url.clone())],
        ))
        .await;
        let reply = get(&director.target(), "/index.php").await;
        assert_eq!(reply.status, 502, "{what}: {}", reply.text());
        assert_eq!(bad.requests.load(Ordering::SeqCst), 1, "{what}");
        let stats = director.backend("c", "bad").stats.snapshot();
        assert_eq!(
            (stats.failures, stats.responses[4]),
            (1, 1),
            "{what}: failure reported"
        );
        // The director still serves: the next request is answered (503: the only backend is
        // out of service after its failure).
        let next = get(&director.target(), "/index.php").await;
        assert!(matches!(next.status, 502 | 503), "{what}: {}", next.status);
        director.settled("c").await;
        director.stop().await;
    }
}

/// With another backend in the cluster the failed attempt is retried there: the client never
/// sees the broken one.
#[tokio::test]
async fn a_broken_backend_is_retried_on_another_one() {
    let good_peer = peer(good, true).await;
    for script in [bad_version as Script, overloaded, ends_before_end_request] {
        let bad = peer(script, false).await;
        let yaml = fastcgi_cluster(
            "scheduler: chance\nmax_retry_count: 2",
            &[("bad", bad.url.clone()), ("good", good_peer.url.clone())],
        );
        let director = start(&yaml).await;
        let reply = get(&director.target(), "/index.php?x=1").await;
        assert_eq!(reply.status, 201, "{}", reply.text());
        assert_eq!(reply.header("x-app"), Some("good"));
        assert_eq!(reply.text(), "hello");
        assert_eq!(bad.requests.load(Ordering::SeqCst), 1);
        let cluster = director.cluster("c");
        assert_eq!(cluster.admission.stats.snapshot().retries, 1);
        director.settled("c").await;
        director.stop().await;
    }
}

/// A response that breaks after its head reached the client is cut (the client sees an
/// incomplete body), the connection is dropped and the capacity comes back.
#[tokio::test]
async fn a_response_cut_mid_body_is_cut_for_the_client() {
    let bad = peer(cut_mid_body, false).await;
    let director = start(&fastcgi_cluster("", &[("bad", bad.url.clone())])).await;
    let mut sender = support::connect(&director.target()).await;
    let req = http::Request::get("/index.php")
        .header("host", "test.local")
        .body(http_body_util::Full::new(Bytes::new()))
        .expect("request");
    // The head may or may not have been flushed before the cut; either way the client must
    // not see a response that ends cleanly.
    if let Ok(res) = sender.send_request(req).await {
        assert_eq!(res.status(), 200);
        let body = http_body_util::BodyExt::collect(res.into_body()).await;
        assert!(body.is_err(), "the cut body must fail, not end cleanly");
    }
    let stats = director.backend("c", "bad").stats.snapshot();
    assert_eq!(stats.failures, 1, "the backend is blamed");
    director.settled("c").await;
    director.stop().await;
}

/// A well-behaved application's connection is kept alive and reused; STDERR does not reach
/// the client; `Status:` and custom headers do.
#[tokio::test]
async fn keep_alive_connections_are_reused() {
    let app = peer(good, true).await;
    let yaml = fastcgi_cluster("", &[("app", app.url.clone())]).replace("workers: 2", "workers: 1");
    let director = start(&yaml).await;
    for _ in 0..20 {
        let reply = get(&director.target(), "/a/index.php/more?q=1").await;
        assert_eq!(reply.status, 201);
        assert_eq!(reply.text(), "hello");
    }
    assert_eq!(app.requests.load(Ordering::SeqCst), 20);
    assert_eq!(app.connections.load(Ordering::SeqCst), 1, "one pooled connection");
    director.settled("c").await;
    director.stop().await;
}

/// A request path that would leave the document root is refused before any backend is asked.
#[tokio::test]
async fn a_path_escaping_the_document_root_is_400() {
    let app = peer(good, true).await;
    let director = start(&fastcgi_cluster("", &[("app", app.url.clone())])).await;
    for path in ["/%2e%2e/etc/passwd", "/a/../../x.php", "/x%00.php"] {
        let reply = request(&director.target(), "GET", path, &[], Bytes::new()).await;
        assert_eq!(reply.status, 400, "{path}");
    }
    assert_eq!(app.requests.load(Ordering::SeqCst), 0);
    director.settled("c").await;
    director.stop().await;
}

/// Records an application sends after END_REQUEST (a late second response) never become the
/// next request's response: the connection is closed instead of reused.
#[tokio::test]
async fn records_after_end_request_never_reach_the_next_client() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("fastcgi://{}", listener.local_addr().expect("addr"));
    let late_written = Arc::new(AtomicU64::new(0));
    let connections = Arc::new(AtomicU64::new(0));
    let (late, conns) = (late_written.clone(), connections.clone());
    let task = tokio::spawn(async move {
        let mut served = 0u64;
        while let Ok((mut sock, _)) = listener.accept().await {
            conns.fetch_add(1, Ordering::SeqCst);
            let mut decoder = RecordDecoder::unrestricted();
            let mut buf = BytesMut::with_capacity(8192);
            'requests: loop {
                loop {
                    match decoder.decode(&mut buf) {
                        Ok(Some(r)) if r.kind == RecordType::Stdin && r.content.is_empty() => break,
                        Ok(Some(_)) => {}
                        Ok(None) if matches!(sock.read_buf(&mut buf).await, Ok(n) if n > 0) => {}
                        _ => break 'requests,
                    }
                }
                served += 1;
                let mut reply = BytesMut::new();
                stdout(
                    &mut reply,
                    1,
                    format!("Content-Type: text/plain\r\n\r\nreply-{served}").as_bytes(),
                );
                end(&mut reply, ProtocolStatus::RequestComplete);
                if sock.write_all(&reply).await.is_err() {
                    break;
                }
                if served == 1 {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    let mut smuggled = BytesMut::new();
                    stdout(&mut smuggled, 1, b"Content-Type: text/plain\r\n\r\nsmuggled");
                    end(&mut smuggled, ProtocolStatus::RequestComplete);
                    if sock.write_all(&smuggled).await.is_ok() {
                        late.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        }
    });
    let yaml = fastcgi_cluster("", &[("app", url)]).replace("workers: 2", "workers: 1");
    let director = start(&yaml).await;
    assert_eq!(get(&director.target(), "/a.php").await.text(), "reply-1");
    support::eventually("late records written", || {
        late_written.load(Ordering::SeqCst) == 1
    })
    .await;
    for n in 2..6 {
        let reply = get(&director.target(), "/a.php").await;
        assert_eq!(
            reply.text(),
            format!("reply-{n}"),
            "a client got another's response"
        );
    }
    // The poisoned connection was closed, and a backend caught sending records nobody asked
    // for gets no connection reuse for a while (the distrust period): one connection each.
    assert_eq!(
        connections.load(Ordering::SeqCst),
        5,
        "the poisoned connection was replaced and no connection was reused"
    );
    director.settled("c").await;
    director.stop().await;
    task.abort();
}
