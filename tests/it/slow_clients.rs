//! Slow and greedy clients against the connection guard (src/listener/): a head deadline on
//! every request of a keep-alive connection, the idle keep-alive timeout, the send timeout
//! that frees a backend from a client that never reads, director's own 414/431 answers, and
//! the connection limit — on the proxy and the admin listener, with sub-second timeouts.

use crate::support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::backend::TestBackend;
use support::{eventually, Director};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{timeout, Instant};

/// The head deadline of the tests' directors.
const CLIENT_TIMEOUT: Duration = Duration::from_millis(500);
/// Slack for a loaded machine on top of a deadline.
const MARGIN: Duration = Duration::from_millis(1500);

/// A director with an admin listener over one cluster `c` of one backend at `url`;
/// `proxy` holds extra `proxy:` keys, one per line.
async fn director(url: &str, proxy: &str) -> Director {
    let mut yaml = String::from("proxy:\n  listen: [\"127.0.0.1:0\"]\n");
    for line in proxy.lines().filter(|l| !l.trim().is_empty()) {
        yaml.push_str(&format!("  {}\n", line.trim()));
    }
    yaml.push_str(&format!(
        "admin: {{ listen: \"127.0.0.1:0\" }}\nroutes:\n  - {{ cluster: c }}\nclusters:\n  c:\n    \
         backends:\n      - {{ name: b, url: \"{url}\", capacity: 8 }}\n"
    ));
    support::start(&yaml).await
}

/// The usual settings: a short head deadline, a longer keep-alive.
const SHORT_HEAD: &str = "workers: 2\nclient_timeout: 500ms\nkeep_alive: 5s";

/// A raw HTTP/1.1 client connection.
struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.expect("connect");
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("send");
    }

    /// Reads one response with a `Content-Length` body: its status and body.
    async fn response(&mut self) -> (u16, Vec<u8>) {
        timeout(Duration::from_secs(5), self.read_response())
            .await
            .expect("a response within 5 s")
    }

    async fn read_response(&mut self) -> (u16, Vec<u8>) {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut res = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(head) = res.parse(&self.buf).expect("an HTTP response") {
                let status = res.code.expect("status");
                let length: usize = res
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .map(|h| {
                        std::str::from_utf8(h.value)
                            .expect("length")
                            .parse()
                            .expect("length")
                    })
                    .expect("a Content-Length");
                if self.buf.len() >= head + length {
                    let body = self.buf[head..head + length].to_vec();
                    self.buf.drain(..head + length);
                    return (status, body);
                }
            }
            let mut chunk = [0u8; 16 * 1024];
            let n = self.stream.read(&mut chunk).await.expect("read");
            assert!(n > 0, "connection closed before a whole response");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// A whole request for `path` on `host`.
    async fn get(&mut self, host: &str, path: &str) -> (u16, Vec<u8>) {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
            .await;
        self.response().await
    }

    /// Sends one byte per 100 ms (the `i`th is `byte(i)`) until the server closes the
    /// connection or `budget` passes: the time from the first byte to the close (`None` when
    /// still open) and what the server sent meanwhile.
    async fn trickle(self, byte: fn(usize) -> u8, budget: Duration) -> (Option<Duration>, Vec<u8>) {
        let (mut reader, mut writer) = self.stream.into_split();
        let started = Instant::now();
        let closed = Arc::new(AtomicBool::new(false));
        let flag = closed.clone();
        let read = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                match reader.read(&mut chunk).await {
                    Ok(n) if n > 0 => got.extend_from_slice(&chunk[..n]),
                    _ => break,
                }
            }
            flag.store(true, Ordering::SeqCst);
            (started.elapsed(), got)
        });
        let mut sent = 0;
        while started.elapsed() < budget && !closed.load(Ordering::SeqCst) {
            if writer.write_all(&[byte(sent)]).await.is_err() {
                break;
            }
            sent += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        match timeout(Duration::from_millis(200), read).await {
            Ok(result) => {
                let (after, got) = result.expect("reader");
                (Some(after), got)
            }
            Err(_) => (None, Vec::new()),
        }
    }

    /// Waits up to `limit` for the server to close the connection (reading and dropping what
    /// it sends): how long that took, `None` if it stayed open.
    async fn closed_within(&mut self, limit: Duration) -> Option<Duration> {
        let started = Instant::now();
        let drain = async {
            let mut chunk = [0u8; 16 * 1024];
            while matches!(self.stream.read(&mut chunk).await, Ok(n) if n > 0) {}
        };
        timeout(limit, drain).await.ok().map(|()| started.elapsed())
    }
}

/// The `i`th byte of an endless request head.
fn endless_head(i: usize) -> u8 {
    b"GET / HTTP/1.1\r\nHost: x\r\nX-Trickle: "
        .get(i)
        .copied()
        .unwrap_or(b'a')
}

/// The `i`th byte of a stream of empty lines.
fn empty_lines(i: usize) -> u8 {
    b"\r\n"[i % 2]
}

/// A client's next request trickles in after a first one: the connection is closed about
/// `client_timeout` after the trickle began (with a 408 at most), on the proxy and the admin
/// listener alike. actix-http alone timed only the first request's head.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_second_request_is_cut_at_the_head_deadline() {
    let app = TestBackend::start("app").await;
    let d = director(&app.url(), SHORT_HEAD).await;
    for (addr, host, path) in [
        (d.addr(), "x", "/"),
        (d.admin_addr(), "localhost", "/haproxy/monitor"),
    ] {
        let mut client = Client::connect(addr).await;
        assert_eq!(client.get(host, path).await.0, 200);
        let (closed, got) = client.trickle(endless_head, Duration::from_secs(4)).await;
        let closed = closed.unwrap_or_else(|| panic!("{addr}: a trickling client kept its connection"));
        assert!(
            closed >= CLIENT_TIMEOUT - Duration::from_millis(50) && closed <= CLIENT_TIMEOUT + MARGIN,
            "{addr}: closed {closed:?} after the first byte"
        );
        assert!(
            got.is_empty() || got.starts_with(b"HTTP/1.1 408 "),
            "{addr}: {}",
            String::from_utf8_lossy(&got)
        );
    }
    d.stop().await;
}

/// A hundred such clients at once: every one is cut, in bounded time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_trickling_connections_are_all_closed() {
    let _ = director::listener::limits::raise_nofile_limit();
    let app = TestBackend::start("app").await;
    let d = director(&app.url(), SHORT_HEAD).await;
    let addr = d.addr();
    let mut tasks = Vec::new();
    for _ in 0..100 {
        tasks.push(tokio::spawn(async move {
            let mut client = Client::connect(addr).await;
            assert_eq!(client.get("x", "/").await.0, 200);
            client.trickle(endless_head, CLIENT_TIMEOUT + MARGIN).await.0
        }));
    }
    let mut closed = 0;
    for task in tasks {
        if task.await.expect("client task").is_some() {
            closed += 1;
        }
    }
    assert_eq!(closed, 100, "connections closed by the head deadline");
    d.stop().await;
}

/// An idle keep-alive connection is closed after `keep_alive`, not at the (longer) head
/// deadline, even when it sends empty lines (which start no request, but stopped
/// actix-http's keep-alive timer); one that never sent a byte gets `client_timeout` from the
/// accept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_after_keep_alive() {
    let app = TestBackend::start("app").await;
    let d = director(&app.url(), "workers: 1\nclient_timeout: 3s\nkeep_alive: 600ms").await;
    let mut idle = Client::connect(d.addr()).await;
    assert_eq!(idle.get("x", "/").await.0, 200);
    let after = idle.closed_within(Duration::from_secs(5)).await;
    let after = after.expect("the idle connection was closed");
    assert!(
        after >= Duration::from_millis(500) && after <= Duration::from_millis(600) + MARGIN,
        "idle connection closed after {after:?}"
    );
    let mut blank = Client::connect(d.addr()).await;
    assert_eq!(blank.get("x", "/").await.0, 200);
    let (closed, got) = blank.trickle(empty_lines, Duration::from_secs(4)).await;
    let closed = closed.expect("a connection sending empty lines was closed");
    assert!(
        closed <= Duration::from_millis(600) + MARGIN && got.is_empty(),
        "closed after {closed:?}, sent {got:?}"
    );
    let mut silent = Client::connect(d.addr()).await;
    let after = silent.closed_within(Duration::from_secs(3) + MARGIN).await;
    let after = after.expect("a connection that never sent a byte was closed");
    assert!(after >= Duration::from_millis(2500), "closed after {after:?}");
    d.stop().await;
}

/// A backend that answers every request with `length` bytes and notes when a connection is
/// closed under it (a write failed or the peer went away).
struct StreamingBackend {
    addr: SocketAddr,
    closed: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StreamingBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn streaming_backend(length: u64) -> StreamingBackend {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let closed = Arc::new(AtomicBool::new(false));
    let flag = closed.clone();
    let task = tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let flag = flag.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(n) if n > 0 => head.extend_from_slice(&buf[..n]),
                        _ => return flag.store(true, Ordering::SeqCst),
                    }
                }
                let reply = format!("HTTP/1.1 200 OK\r\nContent-Length: {length}\r\n\r\n");
                let chunk = vec![b'z'; 64 * 1024];
                let mut sent = 0u64;
                let mut ok = sock.write_all(reply.as_bytes()).await.is_ok();
                while ok && sent < length {
                    ok = sock.write_all(&chunk).await.is_ok();
                    sent += chunk.len() as u64;
                }
                if ok {
                    // All sent: wait for the peer to go away.
                    while matches!(sock.read(&mut buf).await, Ok(n) if n > 0) {}
                }
                flag.store(true, Ordering::SeqCst);
            });
        }
    });
    StreamingBackend { addr, closed, task }
}

/// A client asks for 64 MB and never reads: after `send_timeout` without progress director
/// drops the response, which closes the backend connection and gives the capacity back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_frees_its_backend_after_send_timeout() {
    let backend = streaming_backend(64 * 1024 * 1024).await;
    let url = format!("http://{}", backend.addr);
    let d = director(&url, "workers: 1\nsend_timeout: 500ms").await;
    let mut client = Client::connect(d.addr()).await;
    client.send(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let cluster = d.cluster("c");
    eventually("the request is in flight", || cluster.admission.capacity().1 == 1).await;
    eventually("the backend saw its connection closed", || {
        backend.closed.load(Ordering::SeqCst)
    })
    .await;
    d.settled("c").await;
    assert!(
        client.closed_within(Duration::from_secs(5)).await.is_some(),
        "the client's connection was closed too"
    );
    d.stop().await;
}

/// A request line over `max_request_line` gets 414 and a header section over
/// `max_header_size` 431, from director itself, then the connection closes; just under each
/// limit passes; custom limits are honoured; an oversized request pipelined behind another
/// is refused too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_heads_get_414_and_431() {
    let app = TestBackend::start("app").await;
    let defaults = director(&app.url(), "workers: 1").await;
    let custom = director(
        &app.url(),
        "workers: 1\nmax_request_line: 1024\nmax_header_size: 2048",
    )
    .await;
    let cases = [
        (&defaults, 9 * 1024, 0, 414),
        (&defaults, 8 * 1024 - 100, 0, 200),
        (&defaults, 100, 33, 431),
        (&defaults, 100, 31, 200),
        (&custom, 1536, 0, 414),
        (&custom, 1000, 0, 200),
        (&custom, 100, 3, 431),
        (&custom, 100, 1, 200),
    ];
    for (d, line, kib_of_headers, expected) in cases {
        let mut client = Client::connect(d.addr()).await;
        client.send(&request(line, kib_of_headers)).await;
        let (status, body) = client.response().await;
        let what = format!("request line {line} B, {kib_of_headers} KiB of headers");
        assert_eq!(status, expected, "{what}: {}", String::from_utf8_lossy(&body));
        if expected != 200 {
            let closed = client.closed_within(Duration::from_secs(3)).await;
            assert!(closed.is_some(), "{what}: the connection stays open");
        }
    }
    // Pipelined behind a small request: the first is served, the second refused.
    let mut client = Client::connect(defaults.addr()).await;
    let mut both = request(100, 0);
    both.extend_from_slice(&request(9 * 1024, 0));
    client.send(&both).await;
    assert_eq!(client.response().await.0, 200);
    assert_eq!(client.response().await.0, 414);
    defaults.stop().await;
    custom.stop().await;
}

/// A GET whose request line is `line` bytes long, with `kib` header fields of 1 KiB each
/// (field line and CRLF) after `Host`.
fn request(line: usize, kib: usize) -> Vec<u8> {
    let fixed = "GET / HTTP/1.1".len();
    let mut head = format!("GET /{} HTTP/1.1\r\nHost: x\r\n", "a".repeat(line - fixed));
    for i in 0..kib {
        let name = format!("X-Pad-{i:03}: ");
        head.push_str(&name);
        head.push_str(&"p".repeat(1024 - name.len() - 2));
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// With one worker and `max_connections: 4`, a fifth connection waits (in the backlog) while
/// four idle ones stay open, and is served once one of them closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_holds_back_the_fifth_connection() {
    let app = TestBackend::start("app").await;
    let settings = "workers: 1\nmax_connections: 4\nclient_timeout: 30s\nkeep_alive: 30s";
    let d = director(&app.url(), settings).await;
    let mut open = Vec::new();
    for _ in 0..4 {
        let mut client = Client::connect(d.addr()).await;
        assert_eq!(client.get("x", "/").await.0, 200);
        open.push(client);
    }
    let mut fifth = Client::connect(d.addr()).await;
    fifth.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let early = timeout(Duration::from_millis(700), fifth.read_response()).await;
    assert!(early.is_err(), "the fifth connection was served: {early:?}");
    drop(open.pop());
    assert_eq!(fifth.response().await.0, 200);
    for client in &mut open {
        assert_eq!(client.get("x", "/").await.0, 200, "the idle ones stayed open");
    }
    d.stop().await;
}

/// The head deadline is about heads: a request body that trickles in for several times
/// `client_timeout` is served, and an event stream on the admin listener runs on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_and_event_streams_are_not_cut() {
    let app = TestBackend::start("app").await;
    let d = director(&app.url(), SHORT_HEAD).await;
    let mut client = Client::connect(d.addr()).await;
    let body = b"0123456789abcdefghij";
    client
        .send(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n")
        .await;
    for byte in body {
        client.send(&[*byte]).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sum: u64 = body.iter().map(|&b| u64::from(b)).sum();
    let (status, text) = client.response().await;
    assert_eq!(
        (status, String::from_utf8_lossy(&text).into_owned()),
        (200, format!("20 {sum}"))
    );

    let mut events = TcpStream::connect(d.admin_addr()).await.expect("connect");
    events
        .write_all(b"GET /api/v1/events HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("send");
    let started = Instant::now();
    let mut got = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    while count(&got, b"data: ") < 3 {
        let n = timeout(Duration::from_secs(5), events.read(&mut chunk))
            .await
            .expect("the next event within 5 s")
            .expect("read");
        assert!(n > 0, "the event stream was cut after {:?}", started.elapsed());
        got.extend_from_slice(&chunk[..n]);
    }
    assert!(started.elapsed() > CLIENT_TIMEOUT * 2);
    d.stop().await;
}

fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack.windows(needle.len()).filter(|w| w == &needle).count()
}
