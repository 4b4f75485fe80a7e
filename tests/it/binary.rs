//! The real `director` binary: command line, and 64 MB bodies streamed both ways with the
//! process's peak memory staying far below the body size.

use crate::support;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use support::backend::{pattern, pattern_checksum, TestBackend};
use support::binary::{command, Binary, Stream};
use support::wait_until;

const SIZE: u64 = 64 * 1024 * 1024;

/// A config with one cluster `c` of one backend, `workers` workers, on port 0, in `dir`.
fn one_backend_config(dir: &tempfile::TempDir, workers: usize, backend: &TestBackend) -> std::path::PathBuf {
    let yaml = format!(
        "proxy:\n  listen: [\"127.0.0.1:0\"]\n  workers: {workers}\nroutes:\n  - {{ cluster: c }}\nclusters:\n  c:\n    backends:\n      - {{ name: {}, url: \"{}\" }}\n",
        backend.name(),
        backend.url()
    );
    write_config(dir, "config.yaml", &yaml)
}

fn write_config(dir: &tempfile::TempDir, name: &str, yaml: &str) -> std::path::PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, yaml).expect("write config");
    path
}

#[test]
fn version_and_help() {
    let out = command().arg("--version").output().expect("run");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("director {}", env!("CARGO_PKG_VERSION"))
    );
    let out = command().arg("--bogus").output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown argument '--bogus'"));
}

#[test]
fn check_config_lists_every_error_with_its_path() {
    let dir = support::temp_dir("bin");
    let bad = write_config(
        &dir,
        "bad.yaml",
        "proxy:\n  listen: [\"127.0.0.1:0\"]\n  keep_alive: 15\nroutes:\n  - { cluster: nope }\nclusters:\n  c:\n    scheduler: fastest\n    backends:\n      - { name: a, url: \"ftp://x\" }\n",
    );
    let out = command()
        .args(["--check-config", "--config"])
        .arg(&bad)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for path in [
        "proxy.keep_alive",
        "routes[0].cluster",
        "clusters.c.scheduler",
        "clusters.c.backends[0].url",
    ] {
        assert!(err.contains(path), "no error for {path} in:\n{err}");
    }
    assert!(err.contains("4 error(s)"), "{err}");
    let good = write_config(&dir, "good.yaml", "proxy:\n  listen: [\"127.0.0.1:0\"]\n");
    let out = command()
        .args(["--check-config", "--config"])
        .arg(&good)
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_megabytes_stream_both_ways_in_bounded_memory() {
    let echo = TestBackend::start("echo").await;
    let dir = support::temp_dir("bin");
    let config = one_backend_config(&dir, 2, &echo);
    let director = Binary::with_config(&config).await;
    let addr = director.listening("proxy").await;
    let target = support::Target::Tcp(addr);

    // Upload 64 MB to a backend that streams it back while still reading.
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(4);
    tokio::spawn(async move {
        let chunk = 256 * 1024;
        let mut sent = 0;
        while sent < SIZE {
            let data = Bytes::from(pattern(sent, chunk));
            sent += chunk as u64;
            if tx.send(Ok(Frame::data(data))).await.is_err() {
                return;
            }
        }
    });
    let body = StreamBody::new(tokio_stream_from(rx));
    let req = http::Request::post("/echo")
        .header("host", "x")
        .header("content-length", SIZE.to_string())
        .body(body)
        .expect("request");
    let res = sender.send_request(req).await.expect("response head");
    assert_eq!(res.status(), 200);
    assert_eq!(
        length_and_checksum(res.into_body()).await,
        (SIZE, pattern_checksum(SIZE)),
        "upload echoed byte-exact"
    );

    // Download 64 MB.
    let mut sender = support::connect(&target).await;
    let req = http::Request::get(format!("/download?bytes={SIZE}"))
        .header("host", "x")
        .body(Default::default())
        .expect("request");
    let res = sender.send_request(req).await.expect("response");
    assert_eq!(
        length_and_checksum(res.into_body()).await,
        (SIZE, pattern_checksum(SIZE)),
        "download byte-exact"
    );

    let peak = peak_rss_kib(director.pid());
    drop(director);
    eprintln!("director peak RSS after 2 x 64 MiB: {} KiB", peak);
    assert!(peak < 40 * 1024, "peak RSS {peak} KiB grows with the body size");
}

/// Adapts a tokio mpsc receiver into a `Stream` without an extra crate.
fn tokio_stream_from<T>(mut rx: tokio::sync::mpsc::Receiver<T>) -> impl futures_util::Stream<Item = T> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// Reads a body to its end: its length and the wrapping sum of its bytes.
async fn length_and_checksum(mut body: hyper::body::Incoming) -> (u64, u64) {
    let (mut received, mut sum) = (0u64, 0u64);
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.expect("body").into_data() {
            received += data.len() as u64;
            sum = data.iter().fold(sum, |s, &b| s.wrapping_add(u64::from(b)));
        }
    }
    (received, sum)
}

/// SIGTERM starts a graceful stop: an idle keep-alive client connection is closed at once (as
/// actix-web's `HttpServer` and nginx do, long before its 15 s keep-alive runs out), a request
/// in flight on another connection finishes, and then director exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_idle_connections_lets_requests_in_flight_finish_then_exits_0() {
    use tokio::io::AsyncReadExt;
    let backend = TestBackend::start("b").await;
    let dir = support::temp_dir("bin");
    let config = one_backend_config(&dir, 1, &backend);
    let mut director = Binary::with_config(&config).await;
    let addr = director.listening("proxy").await;
    let mut idle = one_request_then_idle(addr).await;
    let target = support::Target::Tcp(addr);
    let held = tokio::spawn(async move { support::get(&target, "/hold").await });
    backend.wait_current(1).await;
    director.signal("-TERM");
    director
        .line("the start of the graceful shutdown", Stream::Stderr, |l| {
            l.contains("SIGTERM received; starting graceful shutdown")
                .then_some(())
        })
        .await;
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), idle.read(&mut buf))
        .await
        .expect("the idle connection stayed open after SIGTERM");
    assert_eq!(
        read.expect("read"),
        0,
        "the idle connection was closed, without an answer"
    );
    // Director is shutting down but waits for the request it is serving.
    assert!(director.try_wait().is_none(), "exited with a request in flight");
    backend.release_holds();
    let r = held.await.expect("task");
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "b"),
        "the request in flight completed"
    );
    let exit = director.exited().await;
    assert!(exit.success(), "{exit:?}");
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Opens a keep-alive connection to `addr`, makes one request on it and returns the open
/// connection, idle.
async fn one_request_then_idle(addr: std::net::SocketAddr) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("send");
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    // The backend answers with its name, `b`.
    while !response.ends_with(b"\r\n\r\nb") {
        let n = stream.read(&mut buf).await.expect("read");
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&response));
        response.extend_from_slice(&buf[..n]);
    }
    assert!(
        response.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&response)
    );
    stream
}

/// An idle keep-alive client connection costs director little memory: it holds no read or
/// write buffer between requests (the patched actix-http gives them back to a per-thread
/// pool; unpatched, each idle connection kept 16 KiB of buffers, about 12 KiB of it resident).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connections_hold_no_buffers() {
    const CONNECTIONS: usize = 2000;
    let backend = TestBackend::start("b").await;
    let dir = support::temp_dir("bin");
    let config = one_backend_config(&dir, 1, &backend);
    let director = Binary::with_config(&config).await;
    let addr = director.listening("proxy").await;

    // Warm up: the first connections pay for one-off allocations (pools, tables).
    let mut idle = Vec::with_capacity(CONNECTIONS + 100);
    for _ in 0..100 {
        idle.push(one_request_then_idle(addr).await);
    }
    let before = rss_kib(director.pid());
    for _ in 0..CONNECTIONS / 100 {
        let opened = futures_util::future::join_all((0..100).map(|_| one_request_then_idle(addr))).await;
        idle.extend(opened);
    }
    let after = rss_kib(director.pid());
    let per_connection = (after.saturating_sub(before)) as f64 / CONNECTIONS as f64;
    assert!(
        per_connection < 6.0,
        "{per_connection:.1} KiB resident per idle connection ({before} -> {after} KiB over {CONNECTIONS})"
    );
    drop(idle);
}

/// A client that sends an IP address as its TLS server name (wrk does, and many health
/// checkers) makes rustls warn, once per handshake: with `RUST_LOG=info` that line stays out
/// of the log, so no client can fill it; naming rustls in `RUST_LOG` brings it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_cannot_fill_the_log_with_tls_warnings() {
    let backend = TestBackend::start("b1").await;
    let cert = support::tls::make_cert(&["localhost"]);
    for (rust_log, warned) in [("info", false), ("info,rustls=warn", true)] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cert.pem"), &cert.cert_pem).unwrap();
        std::fs::write(dir.path().join("key.pem"), &cert.key_pem).unwrap();
        let yaml = format!(
            "proxy:\n  listen:\n    - {{ address: \"127.0.0.1:0\", tls: {{ certificates: [{{ cert: cert.pem, key: key.pem }}] }} }}\n  workers: 1\nroutes:\n  - {{ cluster: c }}\nclusters:\n  c:\n    backends:\n      - {{ name: b1, url: \"{}\" }}\n",
            backend.url()
        );
        let config = write_config(&dir, "config.yaml", &yaml);
        let bin = Binary::spawn(|c| {
            c.arg("--config")
                .arg(&config)
                .env("RUST_LOG", rust_log)
                .current_dir(dir.path());
        });
        let addr = bin.listening("proxy").await;
        let handshake = command_output(
            "openssl",
            &[
                "s_client",
                "-connect",
                &addr.to_string(),
                "-servername",
                "127.0.0.1",
            ],
        );
        assert!(handshake.contains("Verify return code"), "{handshake}");
        // A line logged after the handshake: everything the handshake logged is in by then.
        let mark = bin.log_len();
        bin.signal("-HUP");
        wait_until("the reload's log line", async || {
            bin.logged_since(mark, &["SIGHUP: reloading the configuration"])
                .then_some(())
        })
        .await;
        let log = bin.output(Stream::Stderr);
        assert_eq!(log.contains("Illegal SNI"), warned, "RUST_LOG={rust_log}:\n{log}");
    }
}

/// Runs `program` with `args` and its standard input closed; its standard output.
fn command_output(program: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}
