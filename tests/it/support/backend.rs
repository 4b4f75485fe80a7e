//! Test fixture: real, controllable HTTP/1.1 backend servers for integration tests.
//!
//! [`TestBackend`] is a hyper 1 server (keep-alive, one task per connection) on TCP
//! (IPv4/IPv6) or a UNIX socket that counts requests, tracks concurrency, records
//! request headers and serves a set of behaviour-driving paths:
//!
//! - `/` and unknown paths: 200, body = backend name (every response carries `x-backend: NAME`)
//! - `/hold`: blocks until [`TestBackend::release_holds`] (a latch; [`TestBackend::reset_holds`] re-arms it)
//! - `/sleep?ms=N`: sleeps N ms, then 200
//! - `/echo`: full-duplex streaming echo of the request body (chunked response)
//! - `/download?bytes=N[&chunked=1]`: N bytes of [`pattern`] in 64 KiB chunks
//! - `/die?bytes=N`: claims `content-length: 1000000` (N+1 if N >= 1000000), sends N pattern
//!   bytes, then closes the connection (all N bytes are flushed first)
//! - `/status?code=N`: that status (no body for 204/304)
//! - `/headers`: body = `METHOD PATH?QUERY\n` then `name: value\n` per request header
//! - `/upload`: consumes the body, replies `"{len} {sum}"` (sum = wrapping u64 sum of the bytes)
//! - `/cacheable[?max_age=N]`: 200, body = backend name, `Cache-Control: max-age=N` (60 by
//!   default): a response director's object cache stores
//! - `/hsts`: 200 with the backend's own `strict-transport-security: max-age=1`
//! - `/xsendfile?path=P[&accel=1]`: 200 with `X-Sendfile: P` (or `X-Accel-Redirect: P`; P is
//!   percent-decoded), `content-type: text/x-backend-body` and the body [`XSENDFILE_BODY`]
//!
//! HEAD requests get the GET headers (including `content-length`) and no body.
//! A request counts in [`TestBackend::current`] while its handler runs, i.e. until the
//! response head is produced (streamed bodies are not counted).
//!
//! Misbehaving peers: [`refusing_url`], [`raw_backend`], [`silent_backend`].
//! Everything runs on the caller's tokio runtime and stops when the handle is dropped.
#![allow(dead_code)]

use std::convert::Infallible;
use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{stream, TryStreamExt};
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body::{Body as _, Frame};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::{watch, Notify};
use tokio::task::{JoinHandle, JoinSet};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type RespBody = UnsyncBoxBody<Bytes, BoxError>;

const CHUNK: usize = 64 * 1024;
const DIE_CLAIMED_LEN: u64 = 1_000_000;

/// The body `/xsendfile` answers with (what a client gets when X-Sendfile is not honoured).
pub const XSENDFILE_BODY: &str = "backend body, not the file\n";

/// `len` bytes of the deterministic pattern starting at absolute offset `offset`
/// (byte i = `(i % 251) as u8`), as served by `/download` and `/die`.
pub fn pattern(offset: u64, len: usize) -> Vec<u8> {
    let cycle: [u8; 251] = std::array::from_fn(|i| i as u8);
    let mut out = Vec::with_capacity(len);
    let mut start = (offset % 251) as usize;
    while out.len() < len {
        let n = (251 - start).min(len - out.len());
        out.extend_from_slice(&cycle[start..start + n]);
        start = 0;
    }
    out
}

/// Wrapping u64 sum of the first `len` pattern bytes (what `/upload` reports for them).
pub fn pattern_checksum(len: u64) -> u64 {
    let (cycles, rest) = (len / 251, len % 251);
    cycles
        .wrapping_mul(250 * 251 / 2)
        .wrapping_add(rest * rest.saturating_sub(1) / 2)
}

/// Listeners the accept loops can serve.
trait Accept: Send + Sync + 'static {
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<Self::Io>>;
}

impl Accept for TcpListener {
    type Io = TcpStream;
    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<TcpStream>> {
        TcpListener::poll_accept(self, cx).map_ok(|(s, _)| s)
    }
}

impl Accept for UnixListener {
    type Io = UnixStream;
    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<UnixStream>> {
        UnixListener::poll_accept(self, cx).map_ok(|(s, _)| s)
    }
}

/// Accepts connections forever, running `handler` for each in a task owned by a
/// `JoinSet`, so aborting this loop also aborts every connection.
async fn accept_loop<L, F, Fut>(listener: L, handler: F)
where
    L: Accept,
    F: Fn(L::Io) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut conns = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            res = poll_fn(|cx| listener.poll_accept(cx)) => res,
            Some(_) = conns.join_next() => continue,
        };
        match accepted {
            Ok(io) => {
                conns.spawn(handler(io));
            }
            // e.g. EMFILE: back off instead of spinning.
            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
}

struct State {
    name: String,
    /// Status `/health` answers with, and how many times it was asked.
    health: AtomicU64,
    probes: AtomicU64,
    hits: AtomicU64,
    current: AtomicU64,
    peak: AtomicU64,
    arrivals: Mutex<Vec<String>>,
    last_headers: Mutex<Vec<(String, String)>>,
    released: watch::Sender<bool>,
    changed: Notify,
}

/// Counts a request in `current`/`peak` for as long as it lives.
struct InFlight(Arc<State>);

impl InFlight {
    fn new(state: &Arc<State>) -> InFlight {
        let now = state.current.fetch_add(1, Ordering::SeqCst) + 1;
        state.peak.fetch_max(now, Ordering::SeqCst);
        state.changed.notify_waiters();
        InFlight(state.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.current.fetch_sub(1, Ordering::SeqCst);
        self.0.changed.notify_waiters();
    }
}

/// A running test backend; dropping it stops the server and all its connections.
pub struct TestBackend {
    state: Arc<State>,
    url: String,
    unix_path: Option<(PathBuf, u64, u64)>,
    task: JoinHandle<()>,
}

impl TestBackend {
    /// HTTP backend on `127.0.0.1:0`.
    pub async fn start(name: &str) -> TestBackend {
        Self::start_tcp(name, "127.0.0.1:0").await
    }

    /// HTTP backend on `[::1]:0`.
    pub async fn start_v6(name: &str) -> TestBackend {
        Self::start_tcp(name, "[::1]:0").await
    }

    /// HTTP backend on `bind` (e.g. `127.0.0.1:PORT`: an address a test chose beforehand).
    pub async fn start_tcp(name: &str, bind: &str) -> TestBackend {
        let listener = TcpListener::bind(bind).await.expect("bind test backend");
        let addr = listener.local_addr().unwrap();
        Self::spawn(name, listener, format!("http://{addr}"), None)
    }

    /// HTTP backend on a UNIX socket at `path` (a stale socket file there is replaced).
    pub async fn start_unix(name: &str, path: &Path) -> TestBackend {
        let path = std::env::current_dir().unwrap().join(path);
        if let Ok(meta) = std::fs::symlink_metadata(&path) {
            if meta.file_type().is_socket() {
                let _ = std::fs::remove_file(&path);
            }
        }
        let listener = UnixListener::bind(&path).expect("bind unix test backend");
        let meta = std::fs::metadata(&path).unwrap();
        let url = format!("http+unix://{}", path.display());
        Self::spawn(name, listener, url, Some((path, meta.dev(), meta.ino())))
    }

    fn spawn<L: Accept>(
        name: &str,
        listener: L,
        url: String,
        unix_path: Option<(PathBuf, u64, u64)>,
    ) -> TestBackend {
        let state = Arc::new(State {
            name: name.to_string(),
            health: AtomicU64::new(200),
            probes: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            current: AtomicU64::new(0),
            peak: AtomicU64::new(0),
            arrivals: Mutex::new(Vec::new()),
            last_headers: Mutex::new(Vec::new()),
            released: watch::Sender::new(false),
            changed: Notify::new(),
        });
        let st = state.clone();
        let task = tokio::spawn(accept_loop(listener, move |io| serve_conn(io, st.clone())));
        TestBackend {
            state,
            url,
            unix_path,
            task,
        }
    }

    /// `http://127.0.0.1:PORT`, `http://[::1]:PORT` or `http+unix:///abs/path`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    pub fn name(&self) -> &str {
        &self.state.name
    }

    /// Requests received (any path).
    /// Sets the status `/health` answers with (200 at start).
    pub fn set_health(&self, status: u16) {
        self.state.health.store(u64::from(status), Ordering::SeqCst);
    }

    /// Requests to `/health` so far (not counted in `hits`).
    pub fn probes(&self) -> u64 {
        self.state.probes.load(Ordering::SeqCst)
    }

    pub fn hits(&self) -> u64 {
        self.state.hits.load(Ordering::SeqCst)
    }

    /// Requests whose handler is currently running.
    pub fn current(&self) -> u64 {
        self.state.current.load(Ordering::SeqCst)
    }

    /// Maximum of `current()` ever observed.
    pub fn peak(&self) -> u64 {
        self.state.peak.load(Ordering::SeqCst)
    }

    /// `x-seq` header of every request in arrival order (`""` when absent).
    pub fn arrivals(&self) -> Vec<String> {
        self.state.arrivals.lock().unwrap().clone()
    }

    /// Headers of the most recent request: lowercase names, in order, repeats kept.
    pub fn last_request_headers(&self) -> Vec<(String, String)> {
        self.state.last_headers.lock().unwrap().clone()
    }

    /// Lets every current and future `/hold` request complete (until `reset_holds`).
    pub fn release_holds(&self) {
        self.state.released.send_replace(true);
    }

    /// Re-arms the latch: new `/hold` requests block again.
    pub fn reset_holds(&self) {
        self.state.released.send_replace(false);
    }

    /// Resolves once `current() >= n`.
    pub async fn wait_current(&self, n: u64) {
        self.wait_until(|| self.current() >= n).await
    }

    /// Resolves once `hits() >= n`.
    pub async fn wait_hits(&self, n: u64) {
        self.wait_until(|| self.hits() >= n).await
    }

    async fn wait_until(&self, cond: impl Fn() -> bool) {
        loop {
            let notified = self.state.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if cond() {
                return;
            }
            notified.await;
        }
    }

    /// Stops the server and waits until its listener and connections are closed
    /// (plain `drop` does the same, but asynchronously).
    pub async fn shutdown(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

impl Drop for TestBackend {
    fn drop(&mut self) {
        self.task.abort();
        if let Some((path, dev, ino)) = &self.unix_path {
            // Only remove the socket file if it is still ours.
            if let Ok(meta) = std::fs::symlink_metadata(path) {
                if meta.dev() == *dev && meta.ino() == *ino {
                    let _ = std::fs::remove_file(path);
                }
            }
        }
    }
}

/// Connection IO wrapper: once `kill` is set (by `/die`), the next successful flush
/// (hyper only flushes the socket after writing out all buffered bytes) shuts the
/// write side down and fails, making hyper drop the connection.
struct KillableIo<S> {
    inner: S,
    kill: Arc<AtomicBool>,
}

impl<S: AsyncRead + Unpin> AsyncRead for KillableIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for KillableIo<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(Pin::new(&mut self.inner).poll_flush(cx))?;
        if !self.kill.load(Ordering::SeqCst) {
            return Poll::Ready(Ok(()));
        }
        let _ = ready!(Pin::new(&mut self.inner).poll_shutdown(cx));
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "test backend: /die",
        )))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

async fn serve_conn<S>(io: S, state: Arc<State>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let kill = Arc::new(AtomicBool::new(false));
    let io = TokioIo::new(KillableIo {
        inner: io,
        kill: kill.clone(),
    });
    let svc = service_fn(move |req| {
        let (state, kill) = (state.clone(), kill.clone());
        async move { Ok::<_, Infallible>(handle(state, kill, req).await) }
    });
    let _ = http1::Builder::new()
        .keep_alive(true)
        .serve_connection(io, svc)
        .await;
}

fn full(body: impl Into<Bytes>) -> RespBody {
    Full::new(body.into()).map_err(|e| match e {}).boxed_unsync()
}

fn empty() -> RespBody {
    Empty::new().map_err(|e| match e {}).boxed_unsync()
}

fn query<'a>(req: &'a Request<Incoming>, key: &str) -> Option<&'a str> {
    req.uri()
        .query()?
        .split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// `%XX` escapes decoded (anything malformed is kept as is; `+` stays `+`).
fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

fn query_u64(req: &Request<Incoming>, key: &str) -> u64 {
    query(req, key).and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn lossy(v: &HeaderValue) -> String {
    String::from_utf8_lossy(v.as_bytes()).into_owned()
}

/// Pattern bytes `[0, n)` as 64 KiB data frames; `on_last` runs when the final frame
/// is produced (or on the first poll if `n == 0`), after which the stream ends
/// unless `hang` is set, in which case it never ends.
fn pattern_body(n: u64, on_last: impl Fn() + Send + 'static, hang: bool) -> RespBody {
    let frames = stream::unfold((0u64, on_last), move |(sent, on_last)| async move {
        if sent >= n {
            on_last();
            if hang {
                futures_util::future::pending::<()>().await;
            }
            return None;
        }
        let len = (n - sent).min(CHUNK as u64);
        if sent + len == n {
            on_last();
        }
        let frame = Frame::data(Bytes::from(pattern(sent, len as usize)));
        Some((Ok::<_, BoxError>(frame), (sent + len, on_last)))
    });
    StreamBody::new(frames).boxed_unsync()
}

async fn handle(state: Arc<State>, kill: Arc<AtomicBool>, req: Request<Incoming>) -> Response<RespBody> {
    if req.uri().path() == "/health" {
        // Health probes are counted apart from traffic.
        state.probes.fetch_add(1, Ordering::SeqCst);
        state.changed.notify_waiters();
        let code = state.health.load(Ordering::SeqCst) as u16;
        let mut resp = Response::new(full(state.name.clone()));
        *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
        return resp;
    }
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), lossy(v)))
        .collect();
    let seq = req.headers().get("x-seq").map(lossy).unwrap_or_default();
    state.arrivals.lock().unwrap().push(seq);
    *state.last_headers.lock().unwrap() = headers.clone();
    state.hits.fetch_add(1, Ordering::SeqCst);
    let _in_flight = InFlight::new(&state);

    let is_head = req.method() == Method::HEAD;
    let name = state.name.clone();
    let mut resp = match req.uri().path() {
        "/hold" => {
            let mut rx = state.released.subscribe();
            let _ = rx.wait_for(|released| *released).await;
            Response::new(full(name))
        }
        "/sleep" => {
            tokio::time::sleep(Duration::from_millis(query_u64(&req, "ms"))).await;
            Response::new(full(name))
        }
        "/echo" => {
            // Each request body frame is forwarded as soon as it is read; the head
            // goes out immediately (unknown length => chunked).
            let frames = req
                .into_body()
                .into_data_stream()
                .map_ok(Frame::data)
                .map_err(|e| Box::new(e) as BoxError);
            Response::new(StreamBody::new(frames).boxed_unsync())
        }
        "/download" => {
            let n = query_u64(&req, "bytes");
            let mut resp = Response::new(pattern_body(n, || {}, false));
            if query(&req, "chunked") != Some("1") {
                resp.headers_mut()
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(n));
            }
            resp
        }
        "/die" => {
            let n = query_u64(&req, "bytes");
            let on_last = move || kill.store(true, Ordering::SeqCst);
            let mut resp = Response::new(pattern_body(n, on_last, true));
            let claimed = DIE_CLAIMED_LEN.max(n + 1);
            resp.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(claimed));
            resp
        }
        "/status" => {
            let code = query(&req, "code").and_then(|c| c.parse::<u16>().ok());
            let (status, body) = match code.and_then(|c| StatusCode::from_u16(c).ok()) {
                Some(s @ (StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED)) => (s, empty()),
                Some(s) => (s, full(name)),
                None => (StatusCode::BAD_REQUEST, full("bad status code")),
            };
            let mut resp = Response::new(body);
            *resp.status_mut() = status;
            resp
        }
        "/headers" => {
            let target = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
            let mut body = format!("{} {}\n", req.method(), target);
            for (k, v) in &headers {
                body.push_str(&format!("{k}: {v}\n"));
            }
            Response::new(full(body))
        }
        "/upload" => {
            let (mut len, mut sum) = (0u64, 0u64);
            let mut body = req.into_body();
            while let Some(frame) = body.frame().await {
                let Ok(frame) = frame else { break };
                if let Ok(data) = frame.into_data() {
                    len += data.len() as u64;
                    sum = data.iter().fold(sum, |s, &b| s.wrapping_add(b as u64));
                }
            }
            Response::new(full(format!("{len} {sum}")))
        }
        "/cacheable" => {
            let max_age = query(&req, "max_age")
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(60);
            let mut resp = Response::new(full(name));
            let value = HeaderValue::from_str(&format!("max-age={max_age}")).expect("a header value");
            resp.headers_mut().insert(header::CACHE_CONTROL, value);
            resp
        }
        "/hsts" => {
            let mut resp = Response::new(full(name));
            let value = HeaderValue::from_static("max-age=1");
            resp.headers_mut()
                .insert(header::STRICT_TRANSPORT_SECURITY, value);
            resp
        }
        "/xsendfile" => {
            let target = percent_decode(query(&req, "path").unwrap_or(""));
            let header_name = if query(&req, "accel") == Some("1") {
                "x-accel-redirect"
            } else {
                "x-sendfile"
            };
            let mut resp = Response::new(full(XSENDFILE_BODY));
            let headers = resp.headers_mut();
            match HeaderValue::from_bytes(&target) {
                Ok(value) => {
                    headers.insert(header_name, value);
                }
                Err(_) => *resp.status_mut() = StatusCode::BAD_REQUEST,
            }
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/x-backend-body"),
            );
            resp
        }
        _ => Response::new(full(name)),
    };

    let name_value = HeaderValue::from_str(&state.name).expect("backend name is a header value");
    resp.headers_mut().insert("x-backend", name_value);
    if is_head {
        // Same headers as GET (including the length), no body.
        let (mut parts, body) = resp.into_parts();
        let bodyless = matches!(parts.status.as_u16(), 100..=199 | 204 | 304);
        if !bodyless && !parts.headers.contains_key(header::CONTENT_LENGTH) {
            if let Some(n) = body.size_hint().exact() {
                parts.headers.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
            }
        }
        resp = Response::from_parts(parts, empty());
    }
    resp
}

/// `http://127.0.0.1:PORT` where nothing listens.
pub async fn refusing_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

/// A raw TCP peer (see [`raw_backend`], [`silent_backend`]); dropping it stops it.
pub struct RawBackend {
    addr: SocketAddr,
    accepted: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl RawBackend {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for RawBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// For each connection: reads the request head (up to `\r\n\r\n`), writes `reply`
/// verbatim and closes (FIN; the rest of the input is drained briefly so the
/// close is not turned into a reset).
pub async fn raw_backend(reply: &'static [u8]) -> RawBackend {
    spawn_raw(Some(reply)).await
}

/// Accepts connections and reads from them but never answers.
pub async fn silent_backend() -> RawBackend {
    spawn_raw(None).await
}

async fn spawn_raw(reply: Option<&'static [u8]>) -> RawBackend {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicU64::new(0));
    let counter = accepted.clone();
    let task = tokio::spawn(accept_loop(listener, move |sock| {
        counter.fetch_add(1, Ordering::SeqCst);
        raw_conn(sock, reply)
    }));
    RawBackend { addr, accepted, task }
}

async fn raw_conn(mut sock: TcpStream, reply: Option<&'static [u8]>) {
    let mut buf = vec![0u8; 8192];
    let Some(reply) = reply else {
        // Silent: swallow input until the peer goes away.
        while matches!(sock.read(&mut buf).await, Ok(n) if n > 0) {}
        return;
    };
    let mut head = Vec::new();
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match sock.read(&mut buf).await {
            Ok(n) if n > 0 => head.extend_from_slice(&buf[..n]),
            _ => return,
        }
    }
    let _ = sock.write_all(reply).await;
    let _ = sock.shutdown().await;
    let drain = async { while matches!(sock.read(&mut buf).await, Ok(n) if n > 0) {} };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}
