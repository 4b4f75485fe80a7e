//! Shared fixtures for the integration tests: an in-process director on port 0, a small HTTP
//! client over TCP or UNIX sockets, [`wait_until`] (and [`eventually`]) for waiting on a
//! condition, [`free_port`] and [`temp_dir`]; the real binary is in [`binary`].
#![allow(dead_code)]

pub mod backend;
pub mod binary;
pub mod dns;
pub mod origin;
pub mod php;
pub mod scripted;
pub mod tls;
pub mod tls_backend;
pub mod webdriver;
pub mod websocket;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use director::app::{self, Running, StartOptions};
use director::cluster::{Backend, ClusterHandle};
use director::config::{self, ListenAddr};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;

/// A director running in this test process.
pub struct Director {
    running: Option<Running>,
}

/// Starts director on `yaml` (which should listen on port 0).
pub async fn start(yaml: &str) -> Director {
    let document =
        config::Document::from_yaml(yaml).unwrap_or_else(|e| panic!("test config is invalid:\n{e}"));
    start_document(document, StartOptions::default()).await
}

/// Starts director on the configuration file at `path` (reloads re-read it).
pub async fn start_file(path: &std::path::Path, options: StartOptions) -> Director {
    let document =
        config::Document::from_file(path).unwrap_or_else(|e| panic!("test config is invalid:\n{e}"));
    start_document(document, options).await
}

async fn start_document(document: config::Document, options: StartOptions) -> Director {
    let running = tokio::task::spawn_blocking(move || app::start(document, options))
        .await
        .expect("start task")
        .expect("director starts");
    Director {
        running: Some(running),
    }
}

impl Director {
    fn running(&self) -> &Running {
        self.running.as_ref().expect("running")
    }

    /// The first TCP listener.
    pub fn addr(&self) -> SocketAddr {
        self.running()
            .proxy_addrs
            .iter()
            .find_map(|a| match a {
                ListenAddr::Tcp(sa) => Some(*sa),
                ListenAddr::Unix(_) => None,
            })
            .expect("a TCP listener")
    }

    /// The admin listener's TCP address.
    pub fn admin_addr(&self) -> SocketAddr {
        match &self.running().admin_addr {
            Some(ListenAddr::Tcp(sa)) => *sa,
            other => panic!("no TCP admin listener: {other:?}"),
        }
    }

    pub fn running_ref(&self) -> &Running {
        self.running()
    }

    pub fn target(&self) -> Target {
        Target::Tcp(self.addr())
    }

    pub fn cluster(&self, name: &str) -> Arc<ClusterHandle> {
        let topology = self.running().topology.load_full().expect("topology published");
        topology
            .cluster(name)
            .cloned()
            .unwrap_or_else(|| panic!("no cluster {name}"))
    }

    pub fn backend(&self, cluster: &str, name: &str) -> Arc<Backend> {
        self.cluster(cluster)
            .backend(name)
            .unwrap_or_else(|| panic!("no backend {name}"))
    }

    /// Waits until every in-flight and queued count of `cluster` and its backends is 0.
    pub async fn settled(&self, cluster: &str) {
        let c = self.cluster(cluster);
        eventually("in-flight and queued counts back to 0", || {
            let s = c.admission.stats.snapshot();
            s.in_flight.current == 0
                && s.queued.current == 0
                && c.backends.load().iter().all(|b| b.stats.in_flight.current() == 0)
                && c.admission.capacity().1 == 0
        })
        .await;
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
    }
}

/// How long [`wait_until`] waits before it fails the test.
pub const WAIT: Duration = Duration::from_secs(10);

/// What a [`wait_until`] probe answers: whether the condition holds yet and, if it does, the
/// value the wait returns; if not, what was seen (for the failure message).
pub trait Outcome {
    type Value;
    fn settled(self) -> Result<Self::Value, String>;
}

impl Outcome for bool {
    type Value = ();
    fn settled(self) -> Result<(), String> {
        if self {
            Ok(())
        } else {
            Err("false".to_owned())
        }
    }
}

impl<T> Outcome for Option<T> {
    type Value = T;
    fn settled(self) -> Result<T, String> {
        self.ok_or_else(|| "None".to_owned())
    }
}

/// `Err(seen)`: not yet, and `seen` goes into the failure message if it stays so.
impl<T, E: std::fmt::Display> Outcome for Result<T, E> {
    type Value = T;
    fn settled(self) -> Result<T, String> {
        self.map_err(|e| e.to_string())
    }
}

/// Runs `probe` every 10 ms until its [`Outcome`] settles, for up to [`WAIT`]; the settled
/// value. Panics naming `what` and the last thing the probe saw otherwise. The one waiting
/// loop of the tests: never a fixed sleep.
pub async fn wait_until<O: Outcome>(
    what: impl std::fmt::Display,
    mut probe: impl AsyncFnMut() -> O,
) -> O::Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let seen = match probe().await.settled() {
            Ok(value) => return value,
            Err(seen) => seen,
        };
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {WAIT:?} waiting for: {what}; last seen: {seen}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// [`wait_until`] for a condition that needs no `await`.
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    wait_until(what, async || condition()).await
}

/// A loopback TCP port nobody listens on right now (for processes that must be told a port:
/// php-fpm, chromedriver, the binary's config).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

/// A fresh temp directory named after `tag`, removed with everything in it when dropped.
pub fn temp_dir(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("director-{tag}-"))
        .tempdir()
        .expect("create a temp dir")
}

/// Where to send a request.
#[derive(Clone, Debug)]
pub enum Target {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// A complete response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Opens a fresh HTTP/1.1 connection to `target`.
pub async fn connect(target: &Target) -> http1::SendRequest<Full<Bytes>> {
    macro_rules! handshake {
        ($stream:expr) => {{
            let (sender, conn) = http1::handshake(TokioIo::new($stream)).await.expect("handshake");
            tokio::spawn(async move {
                let _ = conn.await;
            });
            sender
        }};
    }
    match target {
        Target::Tcp(addr) => handshake!(tokio::net::TcpStream::connect(addr).await.expect("connect")),
        Target::Unix(path) => handshake!(tokio::net::UnixStream::connect(path).await.expect("connect")),
    }
}

/// Sends one request on a new connection and reads the whole response.
pub async fn request(
    target: &Target,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Reply {
    send(&mut connect(target).await, method, path, headers, body).await
}

/// Sends one request on `sender` (plain or TLS; `Host: test.local` unless `headers` name one)
/// and reads the whole response.
pub async fn send(
    sender: &mut http1::SendRequest<Full<Bytes>>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Reply {
    let mut req = http::Request::builder().method(method).uri(path);
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        req = req.header("host", "test.local");
    }
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    sender.ready().await.expect("connection ready");
    let res = sender
        .send_request(req.body(Full::new(body)).expect("request"))
        .await
        .expect("response");
    let (head, body) = res.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Reply {
        status: head.status.as_u16(),
        headers: head.headers,
        body,
    }
}

pub async fn get(target: &Target, path: &str) -> Reply {
    request(target, "GET", path, &[], Bytes::new()).await
}

/// A minimal config with one cluster `c` over `backends` (name, url, capacity, role) and
/// extra cluster settings as YAML lines (indented by 4).
pub fn cluster_config(settings: &str, backends: &[(&str, String, u32, &str)]) -> String {
    let mut yaml = String::from(
        "proxy:\n  listen: [\"127.0.0.1:0\"]\n  workers: 2\nroutes:\n  - { path_prefix: \"/\", cluster: c }\nclusters:\n  c:\n",
    );
    for line in settings.lines().filter(|l| !l.trim().is_empty()) {
        yaml.push_str("    ");
        yaml.push_str(line.trim());
        yaml.push('\n');
    }
    yaml.push_str("    backends:\n");
    for (name, url, capacity, role) in backends {
        yaml.push_str(&format!(
            "      - {{ name: {name}, url: \"{url}\", capacity: {capacity}, role: {role} }}\n"
        ));
    }
    yaml
}

/// Calls the admin API of `director` (a TCP admin listener): `method path` with an optional
/// JSON body and bearer token; the answer's status and body parsed as JSON (`Null` if empty
/// or not JSON).
pub async fn admin(
    director: &Director,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
    token: Option<&str>,
) -> (u16, serde_json::Value) {
    let reply = admin_raw(director, method, path, body.map(|b| b.to_string()), token, &[]).await;
    let json = serde_json::from_slice(&reply.body).unwrap_or(serde_json::Value::Null);
    (reply.status, json)
}

/// Like [`admin`] with a raw body and extra headers; the whole reply. Without a `host` among
/// `headers`, the Host is the listener's address (as a browser on this machine sends it).
pub async fn admin_raw(
    director: &Director,
    method: &str,
    path: &str,
    body: Option<String>,
    token: Option<&str>,
    headers: &[(&str, &str)],
) -> Reply {
    let target = Target::Tcp(director.admin_addr());
    let auth = token.map(|t| format!("Bearer {t}"));
    let host = director.admin_addr().to_string();
    let mut all: Vec<(&str, &str)> = headers.to_vec();
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        all.push(("host", &host));
    }
    if let Some(auth) = &auth {
        all.push(("authorization", auth));
    }
    if body.is_some()
        && !headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
    {
        all.push(("content-type", "application/json"));
    }
    request(&target, method, path, &all, Bytes::from(body.unwrap_or_default())).await
}
