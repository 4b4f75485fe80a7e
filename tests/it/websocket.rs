//! WebSocket (and any other `Upgrade`) through director: a request with `Connection: upgrade`
//! is forwarded with its upgrade fields; a backend's `101` turns the connection into a byte
//! tunnel both ways, over TCP and UNIX backends, until either side closes, the tunnel is idle
//! for `upgrades.idle_timeout` or reaches `upgrades.max_lifetime`. The tunnel holds its
//! capacity unless `upgrades.hold_capacity: false`; it is counted as open / total tunnels, in
//! the JSON API and `/metrics`, and logged once when it ends. Other answers to an upgrade
//! request are relayed as they are.

use crate::access_log_fields::{json_lines, logged};
use crate::support;

use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use support::backend::TestBackend;
use support::websocket::{closed, round_trip, ws_connect, EchoBackend};
use support::{cluster_config, eventually, start, Director};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

fn config(settings: &str, backend: &EchoBackend, capacity: u32) -> String {
    let mut yaml = cluster_config(settings, &[("ws", backend.url.clone(), capacity, "active")]);
    yaml.push_str("admin: { listen: \"127.0.0.1:0\" }\n");
    yaml
}

async fn tunnels_in_api(d: &Director) -> (u64, u64) {
    let (status, json) = support::admin(d, "GET", "/api/v1/clusters/c", None, None).await;
    assert_eq!(status, 200, "{json}");
    let tunnels = &json["stats"]["tunnels"];
    let n = |key: &str| {
        tunnels[key]
            .as_u64()
            .unwrap_or_else(|| panic!("stats.tunnels in {json}"))
    };
    (n("current"), n("total"))
}

async fn metric(d: &Director, name: &str) -> String {
    let reply = support::admin_raw(d, "GET", "/metrics", None, None, &[]).await;
    let text = reply.text();
    text.lines()
        .find(|l| l.starts_with(name) && l.contains("cluster=\"c\"") && !l.contains("backend="))
        .unwrap_or_else(|| panic!("no {name} sample for cluster c in\n{text}"))
        .rsplit(' ')
        .next()
        .expect("value")
        .to_owned()
}

async fn echoes_through(backend: EchoBackend) {
    let d = start(&config("", &backend, 4)).await;
    let mut ws = ws_connect(&d, "/chat").await;
    assert_eq!(backend.accepted.load(SeqCst), 1);
    assert_eq!(backend.header("upgrade").as_deref(), Some("websocket"));
    assert!(backend.header("sec-websocket-key").is_some());
    for i in 0..200u32 {
        let msg = match i % 2 {
            0 => Message::text(format!("text message {i}")),
            _ => Message::binary(vec![i as u8; 1 + (i as usize * 97) % 70_000]),
        };
        round_trip(&mut ws, msg).await;
    }
    // Open: counted as a tunnel and as a request in flight (it holds its capacity).
    let cluster = d.cluster("c");
    assert_eq!(cluster.admission.stats.in_flight.current(), 1);
    assert_eq!(tunnels_in_api(&d).await, (1, 1));
    assert_eq!(metric(&d, "director_cluster_tunnels{").await, "1");
    assert_eq!(metric(&d, "director_cluster_tunnels_total{").await, "1");
    ws.close(None).await.expect("close");
    closed(&mut ws).await;
    eventually("the backend saw the close", || backend.ended.load(SeqCst) == 1).await;
    d.settled("c").await;
    assert_eq!(tunnels_in_api(&d).await, (0, 1));
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_and_binary_messages_echo_through_a_tcp_backend() {
    echoes_through(EchoBackend::tcp().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_and_binary_messages_echo_through_a_unix_backend() {
    echoes_through(EchoBackend::unix().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_closes_the_backend_side_and_is_logged_once() {
    let backend = EchoBackend::tcp().await;
    let dir = support::temp_dir("ws-log");
    let log = dir.path().join("access.log");
    let d = start(&logged(config("", &backend, 4), "json", &log)).await;
    let mut ws = ws_connect(&d, "/chat").await;
    round_trip(&mut ws, Message::text("hello")).await;
    // Gone without a closing handshake: the TCP connection just closes.
    drop(ws);
    eventually("the backend saw the client leave", || {
        backend.ended.load(SeqCst) == 1
    })
    .await;
    d.settled("c").await;
    assert_eq!(tunnels_in_api(&d).await, (0, 1));
    let line = &json_lines(&log, 1).await[0];
    assert_eq!(line["status"].as_u64(), Some(101), "{line}");
    assert_eq!(line["backend"].as_str(), Some("ws"), "{line}");
    // Both directions' bytes: the frames each way (a client's frames are masked: 4 more).
    assert!(line["bytes"].as_u64().is_some_and(|n| n >= 7), "{line}");
    assert!(line["bytes_in"].as_u64().is_some_and(|n| n >= 11), "{line}");
    assert!(line["duration_ms"].as_f64().is_some(), "{line}");
    assert_eq!(line["termination"].as_str(), Some("CD"), "{line}");
    d.stop().await;

    // `on_client_abort: ignore` is for requests: a tunnel whose client left is over.
    let d = start(&config("on_client_abort: ignore", &backend, 4)).await;
    let mut ws = ws_connect(&d, "/chat").await;
    round_trip(&mut ws, Message::text("hello")).await;
    drop(ws);
    eventually("the backend saw the client leave", || {
        backend.ended.load(SeqCst) == 2
    })
    .await;
    d.settled("c").await;
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_disconnects_closes_the_client_side() {
    let backend = EchoBackend::unix().await;
    let d = start(&config("", &backend, 4)).await;
    let mut ws = ws_connect(&d, "/chat").await;
    round_trip(&mut ws, Message::binary(vec![1, 2, 3])).await;
    ws.send(Message::text("drop-me")).await.expect("send");
    closed(&mut ws).await;
    d.settled("c").await;
    assert_eq!(tunnels_in_api(&d).await, (0, 1));
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_tunnel_closes_after_its_idle_timeout_and_a_busy_one_at_its_max_lifetime() {
    let backend = EchoBackend::tcp().await;
    let settings = "upgrades: { idle_timeout: 400ms }";
    let d = start(&config(settings, &backend, 4)).await;
    let mut ws = ws_connect(&d, "/chat").await;
    // Traffic either way keeps it open past the idle timeout.
    for _ in 0..6 {
        round_trip(&mut ws, Message::text("still here")).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let silent_for = closed(&mut ws).await;
    assert!(
        silent_for >= Duration::from_millis(300),
        "closed after {silent_for:?}"
    );
    eventually("the backend saw the close", || backend.ended.load(SeqCst) == 1).await;
    d.settled("c").await;
    d.stop().await;

    let settings = "upgrades: { idle_timeout: 10s, max_lifetime: 600ms }";
    let d = start(&config(settings, &backend, 4)).await;
    let began = Instant::now();
    let mut ws = ws_connect(&d, "/chat").await;
    let lived = loop {
        assert!(
            began.elapsed() < Duration::from_secs(5),
            "a busy tunnel outlived max_lifetime"
        );
        if ws.send(Message::text("busy")).await.is_err() {
            break began.elapsed();
        }
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Text(_)))) => {}
            Ok(_) => break began.elapsed(),
            Err(_) => panic!("the tunnel neither echoed nor closed"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        lived >= Duration::from_millis(550) && lived < Duration::from_secs(5),
        "lived {lived:?}"
    );
    d.settled("c").await;
    d.stop().await;
}

/// The connection guard's head deadline, idle keep-alive timeout and head size limits are for
/// HTTP requests: a tunnel's bytes are not request heads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tunnel_is_not_cut_by_the_head_deadline_keep_alive_or_head_limits() {
    let backend = EchoBackend::tcp().await;
    let mut yaml = config("", &backend, 4);
    yaml = yaml.replace(
        "  workers: 2\n",
        "  workers: 2\n  client_timeout: 200ms\n  keep_alive: 200ms\n  max_header_size: 1024\n",
    );
    let d = start(&yaml).await;
    let mut ws = ws_connect(&d, "/chat").await;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(450)).await;
        // Far more than a header section may hold, without a line end.
        round_trip(&mut ws, Message::binary(vec![b'x'; 8192])).await;
    }
    ws.close(None).await.expect("close");
    closed(&mut ws).await;
    d.settled("c").await;
    d.stop().await;
}

/// A tunnel client that stops reading is cut by the listener's `send_timeout`, as any client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tunnel_client_that_stops_reading_is_cut_by_the_send_timeout() {
    let backend = EchoBackend::tcp().await;
    let yaml = config("", &backend, 4).replace("  workers: 2\n", "  workers: 2\n  send_timeout: 300ms\n");
    let d = start(&yaml).await;
    let mut ws = ws_connect(&d, "/chat").await;
    ws.send(Message::text("flood")).await.expect("send");
    // Never read again: the socket buffers fill, director's writes stall.
    eventually("the backend's side was closed", || {
        backend.ended.load(SeqCst) == 1
    })
    .await;
    d.settled("c").await;
    assert_eq!(tunnels_in_api(&d).await, (0, 1));
    drop(ws);
    d.stop().await;
}

/// Raw HTTP/1.1 over TCP: writes `head`, reads until the server closes.
async fn exchange(d: &Director, head: &str) -> String {
    let mut client = TcpStream::connect(d.addr()).await.expect("connect");
    client.write_all(head.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), client.read_to_end(&mut answer))
        .await
        .expect("the connection closes after the answer")
        .expect("read");
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_the_backend_declines_is_relayed_as_a_normal_answer() {
    let backend = TestBackend::start("plain").await;
    let d = start(&cluster_config("", &[("plain", backend.url(), 4, "active")])).await;
    let answer = exchange(
        &d,
        "GET /status?code=200 HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: websocket\r\n\
         sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let headers = backend.last_request_headers();
    let field = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    assert_eq!(field("upgrade"), Some("websocket"), "{headers:?}");
    assert_eq!(field("connection"), Some("upgrade"), "{headers:?}");
    // An upgrade the cluster turned off is not forwarded.
    d.stop().await;
    let d = start(&cluster_config(
        "upgrades: { enabled: false }",
        &[("plain", backend.url(), 4, "active")],
    ))
    .await;
    let answer = exchange(
        &d,
        "GET /status?code=200 HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let headers = backend.last_request_headers();
    assert!(!headers.iter().any(|(n, _)| n == "upgrade"), "{headers:?}");
    d.settled("c").await;
    d.stop().await;
}

/// Another protocol than WebSocket: the backend's bytes right behind its `101` and everything
/// after pass both ways unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_upgrade_protocol_is_tunnelled_byte_for_byte() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let backend = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.expect("accept");
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            s.read_exact(&mut byte).await.expect("head");
            head.push(byte[0]);
        }
        s.write_all(b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: rot13\r\n\r\nhi!")
            .await
            .expect("101");
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).await.expect("client bytes");
        let rotated: Vec<u8> = buf.iter().map(|b| b + 1).collect();
        s.write_all(&rotated).await.expect("answer");
        String::from_utf8(head).expect("head")
    });
    let d = start(&cluster_config("", &[("b", url, 4, "active")])).await;
    let mut client = TcpStream::connect(d.addr()).await.expect("connect");
    client
        .write_all(b"GET /x HTTP/1.1\r\nhost: x\r\nconnection: keep-alive, Upgrade\r\nupgrade: rot13\r\n\r\n")
        .await
        .expect("request");
    let mut answer = Vec::new();
    while !answer.ends_with(b"hi!") {
        let mut buf = [0u8; 256];
        let n = client.read(&mut buf).await.expect("read");
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&answer).to_lowercase();
    assert!(text.starts_with("http/1.1 101"), "{text}");
    assert!(text.contains("upgrade: rot13"), "{text}");
    assert!(!text.contains("transfer-encoding"), "{text}");
    // Not an HTTP request head: passed on as it is.
    client.write_all(b"abcde").await.expect("tunnel bytes");
    let mut back = [0u8; 5];
    client.read_exact(&mut back).await.expect("answer");
    assert_eq!(&back, b"bcdef");
    let head = backend.await.expect("backend").to_lowercase();
    assert!(head.contains("upgrade: rot13"), "{head}");
    // The backend closed: so does the client's connection.
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), client.read_to_end(&mut rest)).await;
    assert!(rest.is_empty());
    d.settled("c").await;
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnels_hold_capacity_unless_the_cluster_exempts_them() {
    let backend = EchoBackend::tcp().await;
    // Held (the default): with capacity 1, an open tunnel leaves no room for a request.
    let d = start(&config("queue_timeout: 200ms", &backend, 1)).await;
    let mut ws = ws_connect(&d, "/chat").await;
    let waited = support::get(&d.target(), "/plain").await;
    assert_eq!(waited.status, 504, "{}", waited.text());
    ws.close(None).await.expect("close");
    closed(&mut ws).await;
    d.settled("c").await;
    d.stop().await;

    // Exempt: two tunnels on a backend of capacity 1, and nothing in flight.
    let d = start(&config("upgrades: { hold_capacity: false }", &backend, 1)).await;
    let mut first = ws_connect(&d, "/one").await;
    let mut second = ws_connect(&d, "/two").await;
    round_trip(&mut first, Message::text("one")).await;
    round_trip(&mut second, Message::text("two")).await;
    let cluster = d.cluster("c");
    assert_eq!(cluster.admission.stats.in_flight.current(), 0);
    assert_eq!(tunnels_in_api(&d).await, (2, 2));
    assert_eq!(d.backend("c", "ws").stats.tunnels.current(), 2);
    drop((first, second));
    eventually("both tunnels closed", || {
        cluster.admission.stats.tunnels.current() == 0
    })
    .await;
    d.settled("c").await;
    d.stop().await;
}

/// FastCGI can't switch protocols: the application gets the request without the upgrade and
/// its answer is relayed.
#[cfg_attr(
    not(has_php_fpm),
    ignore = "php-fpm not installed (apt-get install php8.2-fpm)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_routed_to_fastcgi_is_answered_without_it() {
    use support::php::{Listen, PhpFpm};
    let fpm = PhpFpm::start(Listen::Unix, 2).await;
    let d = start(&crate::fastcgi::php_config("", None, &[("php", fpm.url())])).await;
    let answer = exchange(
        &d,
        "GET /echo.php HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: websocket\r\n\
         sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // The other fields reach the application; the hop-by-hop pair does not.
    assert!(answer.contains("HTTP_SEC_WEBSOCKET_VERSION"), "{answer}");
    assert!(!answer.contains("HTTP_UPGRADE"), "{answer}");
    assert!(!answer.contains("HTTP_CONNECTION"), "{answer}");
    d.settled("c").await;
    d.stop().await;
}

/// An upgrade request with a body is not an upgrade, and its body ends where its
/// `Content-Length` says: what follows can't reach the backend as a request of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_request_with_a_body_smuggles_nothing() {
    let backend = TestBackend::start("plain").await;
    let d = start(&cluster_config("", &[("plain", backend.url(), 4, "active")])).await;
    let answer = exchange(
        &d,
        "POST /echo HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: websocket\r\n\
         content-length: 5\r\n\r\nhelloGET /smuggled HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.contains("hello") && !answer.contains("smuggled"),
        "{answer}"
    );
    d.settled("c").await;
    // Every request the backend saw went through director (the one behind the body may be
    // served as a pipelined request of its own, or dropped with the connection); a request
    // past director would be one more hit. A later request gives it every chance to arrive.
    assert_eq!(support::get(&d.target(), "/status?code=200").await.status, 200);
    let forwarded = d.cluster("c").admission.stats.snapshot().in_flight.total;
    assert_eq!(
        backend.hits(),
        forwarded,
        "a request reached the backend past director"
    );
    d.stop().await;
}
