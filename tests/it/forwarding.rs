//! HTTP forwarding semantics, transports (UNIX, IPv6, road warrior) and bad input.

use crate::support;

use std::time::Duration;

use bytes::Bytes;
use support::backend::{raw_backend, silent_backend, TestBackend};
use support::{cluster_config, get, request, start, Target};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn raw_exchange(d: &support::Director, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(d.addr()).await.expect("connect");
    // The server may answer and close before it has read everything (431): ignore that.
    let _ = s.write_all(bytes).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_are_rewritten_like_a_proxy_should() {
    let a = TestBackend::start("a").await;
    let d = start(&cluster_config("", &[("a", a.url(), 0, "active")])).await;
    let r = request(
        &d.target(),
        "GET",
        "/headers?x=1",
        &[
            ("connection", "x-private"),
            ("x-private", "secret"),
            ("keep-alive", "timeout=5"),
            ("x-forwarded-for", "10.9.8.7"),
            ("x-forwarded-proto", "https"),
            ("via", "1.0 edge"),
            ("x-custom", "kept"),
        ],
        Bytes::new(),
    )
    .await;
    assert_eq!(r.status, 200);
    let seen = r.text();
    assert!(seen.starts_with("GET /headers?x=1\n"), "{seen}");
    for expected in [
        "host: test.local",
        "x-forwarded-for: 10.9.8.7, 127.0.0.1",
        "x-forwarded-proto: http",
        "x-forwarded-host: test.local",
        "via: 1.0 edge, 1.1 director",
        "x-custom: kept",
    ] {
        assert!(seen.contains(expected), "missing {expected:?} in\n{seen}");
    }
    for removed in ["x-private", "keep-alive", "connection:"] {
        assert!(!seen.contains(removed), "{removed:?} forwarded:\n{seen}");
    }
    assert_eq!(r.header("via"), Some("1.1 director"));
    assert_eq!(r.header("x-backend"), Some("a"));
    d.settled("c").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_204_304_chunked_and_100_continue() {
    let a = TestBackend::start("a").await;
    let d = start(&cluster_config("", &[("a", a.url(), 0, "active")])).await;
    let t = d.target();
    let head = request(&t, "HEAD", "/download?bytes=1000", &[], Bytes::new()).await;
    assert_eq!(
        (head.status, head.header("content-length"), head.body.len()),
        (200, Some("1000"), 0)
    );
    let r = get(&t, "/status?code=204").await;
    assert_eq!(
        (r.status, r.body.len(), r.header("content-length")),
        (204, 0, None)
    );
    let r = get(&t, "/status?code=304").await;
    assert_eq!((r.status, r.body.len()), (304, 0));
    let r = get(&t, "/download?bytes=300000&chunked=1").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(r.body.as_ref(), support::backend::pattern(0, 300_000).as_slice());
    let r = get(&t, "/download?bytes=5000").await;
    assert_eq!((r.header("content-length"), r.body.len()), (Some("5000"), 5000));

    let reply = raw_exchange(
        &d,
        b"POST /upload HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\nexpect: 100-continue\r\nconnection: close\r\n\r\nhello",
    )
    .await;
    assert!(
        reply.starts_with("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK"),
        "{reply}"
    );
    assert!(reply.ends_with("5 532"), "{reply}");
    let chunked = raw_exchange(
        &d,
        b"POST /upload HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
    )
    .await;
    assert!(chunked.ends_with("5 495"), "{chunked}");
    d.settled("c").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_socket_backend_and_listener() {
    let dir = support::temp_dir("unix");
    let a = TestBackend::start_unix("ua", &dir.path().join("backend.sock")).await;
    let listen = dir.path().join("director.sock");
    let yaml = format!(
        "proxy:\n  listen: [\"127.0.0.1:0\", \"unix:{}\"]\n  workers: 1\nroutes:\n  - {{ cluster: c }}\nclusters:\n  c:\n    backends:\n      - {{ name: ua, url: \"{}\" }}\n",
        listen.display(),
        a.url()
    );
    let d = start(&yaml).await;
    let r = get(&Target::Unix(listen), "/").await;
    assert_eq!((r.status, r.text().as_str()), (200, "ua"));
    let r = get(&d.target(), "/").await;
    assert_eq!((r.status, r.text().as_str()), (200, "ua"));
    d.settled("c").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_backend_and_listener_and_road_warrior_route() {
    let v6 = TestBackend::start_v6("v6").await;
    let rw = TestBackend::start("rw").await;
    let yaml = format!(
        "proxy:\n  listen: [\"[::1]:0\"]\n  workers: 1\nroutes:\n  - {{ path_prefix: /legacy/, backend: \"{}\" }}\n  - {{ host: v6.example, cluster: c }}\nclusters:\n  c:\n    backends:\n      - {{ name: v6, url: \"{}\" }}\n",
        rw.url(),
        v6.url()
    );
    let d = start(&yaml).await;
    let t = d.target();
    assert!(d.addr().is_ipv6());
    let r = get(&t, "/legacy/x").await;
    assert_eq!((r.status, r.text().as_str()), (200, "rw"));
    let r = request(&t, "GET", "/", &[("host", "V6.example:80")], Bytes::new()).await;
    assert_eq!((r.status, r.text().as_str()), (200, "v6"));
    let r = get(&t, "/nowhere").await;
    assert_eq!(r.status, 404, "test.local matches no route");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_request_line_and_oversized_headers() {
    let a = TestBackend::start("a").await;
    let d = start(&cluster_config("", &[("a", a.url(), 0, "active")])).await;
    let reply = raw_exchange(&d, b"THIS IS NOT HTTP\r\n\r\n").await;
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    // The request head may hold 128 KiB and 96 fields (actix-http's limits).
    let big = format!(
        "GET / HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
        "a".repeat(130 * 1024)
    );
    let reply = raw_exchange(&d, big.as_bytes()).await;
    assert!(reply.starts_with("HTTP/1.1 431"), "{reply}");
    let many: String = (0..100).map(|i| format!("x-h{i}: v\r\n")).collect();
    let reply = raw_exchange(&d, format!("GET / HTTP/1.1\r\nhost: x\r\n{many}\r\n").as_bytes()).await;
    assert!(reply.starts_with("HTTP/1.1 431"), "{reply}");
    assert_eq!(a.hits(), 0);
    assert_eq!(get(&d.target(), "/").await.status, 200);
    d.settled("c").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_backend_status_line_is_a_502() {
    let bad = raw_backend(b"HTTP/1.1 abc\r\n\r\n").await;
    let good = TestBackend::start("good").await;
    let yaml = cluster_config("max_retry_count: 0", &[("bad", bad.url(), 0, "active")]);
    let d = start(&yaml).await;
    let r = get(&d.target(), "/").await;
    assert_eq!(r.status, 502);
    assert_eq!(bad.accepted(), 1);
    d.settled("c").await;
    // With a retry left, the next backend answers instead.
    let yaml = cluster_config(
        "max_retry_count: 1\nscheduler: chance",
        &[("bad", bad.url(), 0, "active"), ("good", good.url(), 0, "active")],
    );
    let d2 = start(&yaml).await;
    let r = get(&d2.target(), "/").await;
    assert_eq!((r.status, r.text().as_str()), (200, "good"));
    d2.settled("c").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_backend_hits_the_read_timeout() {
    let silent = silent_backend().await;
    let yaml = cluster_config(
        "read_timeout: 300ms\nmax_retry_count: 0",
        &[("s", silent.url(), 0, "active")],
    );
    let d = start(&yaml).await;
    let started = std::time::Instant::now();
    let r = get(&d.target(), "/").await;
    assert_eq!(r.status, 504);
    assert!(started.elapsed() >= Duration::from_millis(300));
    d.settled("c").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_aborts_leave_no_capacity_behind() {
    let a = TestBackend::start("a").await;
    let d = start(&cluster_config("", &[("a", a.url(), 4, "active")])).await;
    // Mid-request: announce 1 MB, send 10 KB, hang up.
    let mut s = TcpStream::connect(d.addr()).await.expect("connect");
    s.write_all(b"POST /upload HTTP/1.1\r\nhost: x\r\ncontent-length: 1000000\r\n\r\n")
        .await
        .expect("head");
    s.write_all(&[b'x'; 10_000]).await.expect("body");
    a.wait_hits(1).await;
    drop(s);
    d.settled("c").await;
    // Mid-response: read the head of a 50 MB download, then hang up.
    let mut s = TcpStream::connect(d.addr()).await.expect("connect");
    s.write_all(b"GET /download?bytes=50000000 HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .expect("req");
    let mut buf = vec![0; 64 * 1024];
    let n = s.read(&mut buf).await.expect("read");
    assert!(n > 0);
    drop(s);
    d.settled("c").await;
    assert_eq!(get(&d.target(), "/").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_writes_combined_lines() {
    let a = TestBackend::start("a").await;
    let dir = support::temp_dir("log");
    let path = dir.path().join("access.log");
    let mut yaml = cluster_config("", &[("a", a.url(), 0, "active")]);
    yaml.push_str(&format!(
        "access_log: {{ enabled: true, path: \"{}\" }}\n",
        path.display()
    ));
    let d = start(&yaml).await;
    let r = request(
        &d.target(),
        "GET",
        "/download?bytes=123",
        &[("user-agent", "probe/1")],
        Bytes::new(),
    )
    .await;
    assert_eq!(r.status, 200);
    support::eventually("log line written", || {
        std::fs::read_to_string(&path).is_ok_and(|s| s.contains('\n'))
    })
    .await;
    let line = std::fs::read_to_string(&path).expect("log");
    assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
    assert!(
        line.contains("\"GET /download?bytes=123 HTTP/1.1\" 200 123 \"-\" \"probe/1\""),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_and_write_timeouts() {
    // A listener that never accepts, with its backlog filled: further connects hang.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket
        .bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .expect("addr")
                .into(),
        )
        .expect("bind");
    socket.listen(0).expect("listen");
    let addr = socket.local_addr().expect("addr").as_socket().expect("inet");
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(Ok(s)) = tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(addr)).await {
            fillers.push(s);
        }
    }
    let yaml = cluster_config(
        "connect_timeout: 250ms\nmax_retry_count: 0",
        &[("hang", format!("http://{addr}"), 0, "active")],
    );
    let d = start(&yaml).await;
    let started = std::time::Instant::now();
    let r = get(&d.target(), "/").await;
    assert_eq!(r.status, 502, "connect timed out");
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert!(d.backend("c", "hang").stats.snapshot().failures == 1);
    d.settled("c").await;

    // A backend that reads the head, then stops reading: a large upload stalls.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let stall_url = format!("http://{}", listener.local_addr().expect("addr"));
    let holder = tokio::spawn(async move {
        let (s, _) = listener.accept().await.expect("accept");
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(s);
    });
    let yaml = cluster_config(
        "write_timeout: 300ms\nread_timeout: 20s\nmax_retry_count: 0",
        &[("stall", stall_url, 0, "active")],
    );
    let d = start(&yaml).await;
    let body = Bytes::from(vec![b'x'; 32 * 1024 * 1024]);
    let started = std::time::Instant::now();
    let r = request(&d.target(), "POST", "/upload", &[], body).await;
    assert_eq!(r.status, 504, "write timed out");
    assert!(started.elapsed() < Duration::from_secs(10));
    d.settled("c").await;
    holder.abort();
}
