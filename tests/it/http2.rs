//! HTTP/2 to clients, as h2c with prior knowledge on a plain listener (`proxy.h2c: true`):
//! many streams on one connection to an HTTP/1.1 backend, routed by `:authority`; request and
//! response bodies streamed; cache hits, X-Sendfile and FastCGI as over HTTP/1.1; a stream
//! the client resets ends its request (or not, under `on_client_abort: ignore`); and a client
//! that grants no flow-control window holds director's reads from the backend back.
//!
//! Clients: h2's (the crate director serves with) and `curl --http2-prior-knowledge`.

use crate::access_log_fields::{json_lines, logged};
use crate::support;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use h2::client::SendRequest;
use support::backend::{pattern, pattern_checksum, TestBackend};
use support::php::{Listen, PhpFpm};
use support::{cluster_config, eventually, start, Director};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// The host the test routes serve.
const HOST: &str = "h2.example";

/// `yaml` with h2c on, its catch-all route bound to [`HOST`], and an admin listener.
fn h2c(yaml: String) -> String {
    yaml.replacen("  workers: 2\n", "  workers: 2\n  h2c: true\n", 1)
        .replacen(
            "- { path_prefix: \"/\", cluster: c }",
            &format!("- {{ host: \"{HOST}\", path_prefix: \"/\", cluster: c }}"),
            1,
        )
        + "admin: { listen: \"127.0.0.1:0\" }\n"
}

/// An HTTP/2 connection to `addr` (prior knowledge); its `window` is the client's receive
/// window per stream and for the connection (h2's default, 64 KiB, when `None`).
async fn connect(addr: SocketAddr, window: Option<u32>) -> SendRequest<Bytes> {
    connect_with_task(addr, window).await.0
}

/// [`connect`], and the task that ends when the connection does.
async fn connect_with_task(addr: SocketAddr, window: Option<u32>) -> (SendRequest<Bytes>, JoinHandle<()>) {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let mut builder = h2::client::Builder::new();
    if let Some(window) = window {
        builder
            .initial_window_size(window)
            .initial_connection_window_size(window);
    }
    let (client, conn) = builder.handshake(tcp).await.expect("HTTP/2 handshake");
    let task = tokio::spawn(async move {
        let _ = conn.await;
    });
    (client, task)
}

/// A request for `path` on `authority` (`HOST` and director's port when `None`).
fn request(d: &Director, method: &str, path: &str, authority: Option<&str>) -> http02::Request<()> {
    let authority = authority.map_or_else(|| format!("{HOST}:{}", d.addr().port()), str::to_owned);
    http02::Request::builder()
        .method(method)
        .uri(format!("http://{authority}{path}"))
        .body(())
        .expect("request")
}

/// A response's head and whole body (its window given back as it is read), within a bound
/// that only a stuck answer exceeds.
async fn read(response: h2::client::ResponseFuture) -> (http02::response::Parts, Vec<u8>) {
    let whole = async {
        let (head, mut body) = response.await.expect("response").into_parts();
        let mut bytes = Vec::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.expect("body");
            let _ = body.flow_control().release_capacity(chunk.len());
            bytes.extend_from_slice(&chunk);
        }
        (head, bytes)
    };
    tokio::time::timeout(Duration::from_secs(30), whole)
        .await
        .expect("the answer within 30 s")
}

/// Sends a bodiless request and reads its answer.
async fn fetch(client: &SendRequest<Bytes>, req: http02::Request<()>) -> (http02::response::Parts, Vec<u8>) {
    let mut client = client.clone().ready().await.expect("ready");
    let (response, _) = client.send_request(req, true).expect("send");
    read(response).await
}

/// `curl --http2-prior-knowledge` with `args`; its standard output.
async fn curl(args: Vec<String>) -> String {
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl")
            .args(["--http2-prior-knowledge", "-sS", "--max-time", "20"])
            .args(&args)
            .output()
            .expect("curl runs")
    })
    .await
    .expect("curl task");
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_streams_on_one_connection_reach_an_http1_backend() {
    let a = TestBackend::start("a").await;
    let d = start(&h2c(cluster_config("", &[("a", a.url(), 64, "active")]))).await;
    let client = connect(d.addr(), None).await;
    let mut streams = tokio::task::JoinSet::new();
    for i in 0..50 {
        let (client, req) = (
            client.clone(),
            request(&d, "GET", &format!("/sleep?ms=200&n={i}"), None),
        );
        streams.spawn(async move { fetch(&client, req).await });
    }
    while let Some(done) = streams.join_next().await {
        let (head, body) = done.expect("stream");
        assert_eq!(head.status, 200);
        assert_eq!(head.version, http02::Version::HTTP_2);
        assert!(head.headers.contains_key("date"));
        assert!(head.headers.contains_key("via"), "{:?}", head.headers);
        assert!(
            body.is_empty() || body == b"a",
            "{}",
            String::from_utf8_lossy(&body)
        );
    }
    assert_eq!(a.hits(), 50);
    assert!(
        a.peak() > 1,
        "the streams were served at the same time (peak {})",
        a.peak()
    );

    // `:authority` routes, and is the backend's `Host`.
    let (head, body) = fetch(&client, request(&d, "GET", "/headers?x=1", None)).await;
    assert_eq!(head.status, 200);
    let body = String::from_utf8_lossy(&body);
    assert!(body.starts_with("GET /headers?x=1\n"), "{body}");
    assert!(
        body.contains(&format!("\nhost: {HOST}:{}\n", d.addr().port())),
        "{body}"
    );
    let (head, _) = fetch(&client, request(&d, "GET", "/", Some("elsewhere.example"))).await;
    assert_eq!(head.status, 404, "no route for another authority");

    // HTTP/1.1 on the same listener, and curl over HTTP/2.
    let reply = support::request(&d.target(), "GET", "/", &[("host", HOST)], Bytes::new()).await;
    assert_eq!((reply.status, reply.text().as_str()), (200, "a"));
    let url = format!("http://{HOST}:{}/", d.addr().port());
    let resolve = format!("{HOST}:{}:127.0.0.1", d.addr().port());
    let out = curl(vec![
        "--resolve".into(),
        resolve,
        "-w".into(),
        " %{http_version} %{response_code}".into(),
        url,
    ])
    .await;
    assert_eq!(out, "a 2 200");
    d.settled("c").await;
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_and_response_bodies_stream() {
    let a = TestBackend::start("a").await;
    let d = start(&h2c(cluster_config("", &[("a", a.url(), 8, "active")]))).await;
    let client = connect(d.addr(), None).await;

    // An upload without `Content-Length`, sent in pieces.
    const UPLOAD: usize = 4 * 1024 * 1024 + 5;
    let mut sender = client.clone().ready().await.expect("ready");
    let (response, mut upload) = sender
        .send_request(request(&d, "POST", "/upload", None), false)
        .expect("send");
    let body = Bytes::from(pattern(0, UPLOAD));
    let sending = tokio::spawn(async move {
        for piece in body.chunks(64 * 1024) {
            upload.reserve_capacity(piece.len());
            while std::future::poll_fn(|cx| upload.poll_capacity(cx))
                .await
                .expect("open")
                .expect("capacity")
                == 0
            {}
            upload
                .send_data(Bytes::copy_from_slice(piece), false)
                .expect("data");
        }
        upload.send_data(Bytes::new(), true).expect("end");
    });
    let (head, answer) = read(response).await;
    sending.await.expect("upload sent");
    assert_eq!(head.status, 200);
    let answer = String::from_utf8_lossy(&answer);
    assert_eq!(answer, format!("{UPLOAD} {}", pattern_checksum(UPLOAD as u64)));

    // A large download, exact.
    const DOWNLOAD: usize = 24 * 1024 * 1024 + 3;
    let (head, body) = fetch(
        &client,
        request(&d, "GET", &format!("/download?bytes={DOWNLOAD}"), None),
    )
    .await;
    assert_eq!(head.status, 200);
    assert_eq!(head.headers["content-length"], DOWNLOAD.to_string());
    assert_eq!(body.len(), DOWNLOAD);
    assert!(body == pattern(0, DOWNLOAD), "the bytes of the download");
    let (head, body) = fetch(
        &client,
        request(&d, "GET", "/download?bytes=300000&chunked=1", None),
    )
    .await;
    assert_eq!(head.status, 200);
    assert!(!head.headers.contains_key("transfer-encoding"));
    assert!(body == pattern(0, 300_000), "a chunked download");

    // curl's upload (with `Content-Length`).
    let dir = support::temp_dir("h2-upload");
    let file = dir.path().join("up.bin");
    std::fs::write(&file, pattern(0, 1_000_000)).expect("write");
    let url = format!("http://{HOST}:{}/upload", d.addr().port());
    let resolve = format!("{HOST}:{}:127.0.0.1", d.addr().port());
    let out = curl(vec![
        "--resolve".into(),
        resolve,
        "--data-binary".into(),
        format!("@{}", file.display()),
        url,
    ])
    .await;
    assert_eq!(out, format!("1000000 {}", pattern_checksum(1_000_000)));
    d.settled("c").await;
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_hit_is_served_over_http2() {
    let a = TestBackend::start("a").await;
    let d = start(&h2c(cluster_config(
        "cache: { enabled: true }",
        &[("a", a.url(), 8, "active")],
    )))
    .await;
    let client = connect(d.addr(), None).await;
    let (head, body) = fetch(&client, request(&d, "GET", "/cacheable", None)).await;
    assert_eq!((head.status.as_u16(), body.as_slice()), (200, &b"a"[..]));
    support::wait_until("the object stored", async || {
        let (_, cache) = support::admin(&d, "GET", "/api/v1/clusters/c/cache", None, None).await;
        (cache["objects"] == 1).then_some(())
    })
    .await;
    let (head, body) = fetch(&client, request(&d, "GET", "/cacheable", None)).await;
    assert_eq!((head.status.as_u16(), body.as_slice()), (200, &b"a"[..]));
    assert_eq!(head.headers["cache-status"], "director; hit");
    assert_eq!(a.hits(), 1, "the hit never reached the backend");
    d.settled("c").await;
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_sendfile_over_http2_delivers_the_files_bytes() {
    let dir = support::temp_dir("h2-sendfile");
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).expect("mkdir");
    const LEN: usize = 3 * 1024 * 1024 + 17;
    std::fs::write(root.join("big.bin"), pattern(0, LEN)).expect("write");
    let a = TestBackend::start("a").await;
    let settings = format!("x_sendfile: {{ enabled: true, roots: [\"{}\"] }}", root.display());
    let d = start(&h2c(cluster_config(&settings, &[("a", a.url(), 8, "active")]))).await;
    let client = connect(d.addr(), None).await;
    let path = format!("/xsendfile?path={}/big.bin", root.display());
    for _ in 0..2 {
        // The second time the file is in the page cache (HTTP/1 would send it zero-copy).
        let (head, body) = fetch(&client, request(&d, "GET", &path, None)).await;
        assert_eq!(head.status, 200);
        assert_eq!(head.headers["content-length"], LEN.to_string());
        assert!(!head.headers.contains_key("x-sendfile"));
        assert_eq!(body.len(), LEN);
        assert!(body == pattern(0, LEN), "the file's bytes");
    }
    let (head, body) = fetch(&client, request(&d, "HEAD", &path, None)).await;
    assert_eq!((head.status.as_u16(), body.len()), (200, 0));
    assert_eq!(head.headers["content-length"], LEN.to_string());
    d.settled("c").await;
    d.stop().await;
}

#[cfg_attr(
    not(has_php_fpm),
    ignore = "php-fpm not installed (apt-get install php8.2-fpm)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fastcgi_requests_over_http2() {
    let fpm = PhpFpm::start(Listen::Unix, 2).await;
    let settings = format!(
        "fastcgi: {{ document_root: \"{}\" }}",
        support::php::docroot().display()
    );
    let d = start(&h2c(cluster_config(
        &settings,
        &[("php", fpm.url(), 2, "active")],
    )))
    .await;
    let client = connect(d.addr(), None).await;
    let (head, body) = fetch(&client, request(&d, "GET", "/echo.php?a=1", None)).await;
    assert_eq!(head.status, 200, "{}", String::from_utf8_lossy(&body));
    let doc: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(doc["server"]["SERVER_PROTOCOL"], "HTTP/2.0");
    assert_eq!(doc["server"]["SERVER_NAME"], HOST);
    assert_eq!(doc["server"]["HTTP_HOST"], format!("{HOST}:{}", d.addr().port()));
    assert_eq!(doc["get"]["a"], "1");

    // A body with its length goes to the application; HTTP/2 frames one without a length,
    // which FastCGI can't pass on (411, as for a chunked HTTP/1.1 body).
    let url = format!("http://{HOST}:{}/upload.php", d.addr().port());
    let resolve = format!("{HOST}:{}:127.0.0.1", d.addr().port());
    let out = curl(vec![
        "--resolve".into(),
        resolve,
        "--data-binary".into(),
        "abc".into(),
        url,
    ])
    .await;
    let doc: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(
        (doc["size"].as_u64(), doc["md5"].as_str()),
        (Some(3), Some("900150983cd24fb0d6963f7d28e17f72"))
    );
    let mut sender = client.clone().ready().await.expect("ready");
    let (response, mut upload) = sender
        .send_request(request(&d, "POST", "/upload.php", None), false)
        .expect("send");
    upload.send_data(Bytes::from_static(b"abc"), true).expect("data");
    let (head, _) = read(response).await;
    assert_eq!(head.status, 411);
    d.settled("c").await;
    d.stop().await;
}

/// A `/hold` request over HTTP/2 that the backend has; its stream's sending half.
async fn held_stream(
    d: &Director,
    client: &SendRequest<Bytes>,
    a: &TestBackend,
) -> (h2::SendStream<Bytes>, h2::client::ResponseFuture) {
    let mut sender = client.clone().ready().await.expect("ready");
    // A stream the client has ended its side of can still be reset.
    let (response, stream) = sender
        .send_request(request(d, "GET", "/hold", None), true)
        .expect("send");
    a.wait_current(1).await;
    (stream, response)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_the_client_resets_frees_its_capacity() {
    let a = TestBackend::start("a").await;
    let dir = support::temp_dir("h2-reset");
    let log = dir.path().join("access.log");
    let yaml = logged(
        h2c(cluster_config("", &[("a", a.url(), 4, "active")])),
        "json",
        &log,
    );
    let d = start(&yaml).await;
    let client = connect(d.addr(), None).await;

    // Reset while the backend holds the answer: the backend request ends, the capacity is free,
    // and the log says the client left, as for an HTTP/1.1 client.
    let (mut stream, _response) = held_stream(&d, &client, &a).await;
    stream.send_reset(h2::Reason::CANCEL);
    eventually("the backend request ended", || a.current() == 0).await;
    d.settled("c").await;
    let line = &json_lines(&log, 1).await[0];
    assert_eq!(
        (line["status"].as_u64(), line["termination"].as_str()),
        (Some(499), Some("CH")),
        "{line}"
    );
    assert!(
        line["request"]
            .as_str()
            .is_some_and(|r| r.ends_with("/hold HTTP/2.0")),
        "{line}"
    );
    let (_, api) = support::admin(&d, "GET", "/api/v1/clusters/c", None, None).await;
    assert_eq!(api["in_use"], 0, "{api}");
    assert_eq!(api["backends"][0]["stats"]["in_flight"]["current"], 0, "{api}");

    // Reset in the middle of a body the backend sends slowly.
    let mut sender = client.clone().ready().await.expect("ready");
    let (response, mut stream) = sender
        .send_request(request(&d, "GET", "/download?bytes=100000000", None), false)
        .expect("send");
    let (_, mut body) = response.await.expect("head").into_parts();
    let first = body.data().await.expect("a chunk").expect("data");
    assert!(!first.is_empty());
    let _ = body.flow_control().release_capacity(first.len());
    stream.send_reset(h2::Reason::CANCEL);
    // What arrived meanwhile is read and given back: the connection's window is shared.
    while let Some(Ok(chunk)) = body.data().await {
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    d.settled("c").await;

    // The connection goes on serving.
    let (head, _) = fetch(&client, request(&d, "GET", "/", None)).await;
    assert_eq!(head.status, 200);

    // Under `on_client_abort: ignore` the backend finishes, holding the capacity until then.
    let patch = serde_json::json!({ "on_client_abort": "ignore" });
    let (status, _) = support::admin(&d, "PATCH", "/api/v1/clusters/c", Some(patch), None).await;
    assert_eq!(status, 200);
    a.reset_holds();
    let (mut stream, _response) = held_stream(&d, &client, &a).await;
    stream.send_reset(h2::Reason::CANCEL);
    // A bound for something that must not happen: without ignore it ends within milliseconds.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(a.current(), 1, "the backend request goes on");
    assert_eq!(d.cluster("c").admission.stats.snapshot().in_flight.current, 1);
    a.release_holds();
    eventually("the backend answered", || a.current() == 0).await;
    d.settled("c").await;
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_grants_no_window_holds_the_backend_back() {
    let a = TestBackend::start("a").await;
    let d = start(&h2c(cluster_config("", &[("a", a.url(), 4, "active")]))).await;
    // The client's window: 64 KiB for the stream and the connection, never given back while
    // the test looks.
    let client = connect(d.addr(), Some(65_535)).await;
    const LEN: usize = 256 * 1024 * 1024;
    let mut sender = client.clone().ready().await.expect("ready");
    let (response, _) = sender
        .send_request(request(&d, "GET", &format!("/download?bytes={LEN}"), None), true)
        .expect("send");
    let (_, mut body) = response.await.expect("head").into_parts();
    let relayed = || d.backend("c", "a").stats.snapshot().bytes_out;
    // Director reads the backend until the window and the buffers in between are full, then
    // stops: wait until nothing more comes for a while.
    let mut last = u64::MAX;
    support::wait_until("director stopped reading the backend", async || {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = relayed();
        let still = now == last && now > 0;
        last = now;
        still.then_some(())
    })
    .await;
    assert!(
        last < 16 * 1024 * 1024,
        "director read {last} bytes of the backend's {LEN} for a client that took 64 KiB"
    );
    // Read on: the rest flows once the client gives its window back.
    let mut got = 0;
    while let Some(chunk) = body.data().await {
        let chunk = chunk.expect("body");
        let _ = body.flow_control().release_capacity(chunk.len());
        got += chunk.len();
    }
    assert_eq!(got, LEN);
    d.settled("c").await;
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_is_off_by_default() {
    let a = TestBackend::start("a").await;
    let d = start(&cluster_config("", &[("a", a.url(), 4, "active")])).await;
    let tcp = TcpStream::connect(d.addr()).await.expect("connect");
    let handshake = async {
        let (mut client, conn) = h2::client::handshake(tcp).await?;
        tokio::spawn(conn);
        let req = http02::Request::get(format!("http://x:{}/", d.addr().port()))
            .body(())
            .expect("req");
        let (response, _) = client.send_request(req, true)?;
        response.await
    };
    assert!(
        handshake.await.is_err(),
        "an HTTP/1 listener does not speak HTTP/2"
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_of_http2_connections() {
    let a = TestBackend::start("a").await;
    let yaml = h2c(cluster_config("", &[("a", a.url(), 4, "active")])).replacen(
        "  h2c: true\n",
        "  h2c: true\n  keep_alive: 300ms\n  max_request_line: 256\n  max_header_size: 1024\n",
        1,
    );
    let d = start(&yaml).await;
    let (client, connection) = connect_with_task(d.addr(), None).await;
    let (head, _) = fetch(&client, request(&d, "GET", "/", None)).await;
    assert_eq!(head.status, 200);
    // A method and target longer than `max_request_line` allows.
    let long = format!("/{}", "x".repeat(300));
    let (head, body) = fetch(&client, request(&d, "GET", &long, None)).await;
    assert_eq!(
        (head.status.as_u16(), body.as_slice()),
        (414, &b"request line too long\n"[..])
    );
    // A header list over `max_header_size` (h2 itself answers).
    let url = format!("http://{HOST}:{}/", d.addr().port());
    let resolve = format!("{HOST}:{}:127.0.0.1", d.addr().port());
    let big = format!("x-big: {}", "y".repeat(2000));
    let out = curl(vec![
        "--resolve".into(),
        resolve,
        "-H".into(),
        big,
        "-o".into(),
        "/dev/null".into(),
        "-w".into(),
        "%{response_code}".into(),
        url,
    ])
    .await;
    assert_eq!(out, "431");
    // Without open streams the connection is closed after `keep_alive` (GOAWAY), while the
    // client still holds it (h2's client would close one it no longer holds by itself).
    tokio::time::timeout(Duration::from_secs(5), connection)
        .await
        .expect("the idle connection was closed")
        .expect("connection task");
    assert_eq!(a.hits(), 1);
    drop(client);
    d.settled("c").await;
    d.stop().await;
}
