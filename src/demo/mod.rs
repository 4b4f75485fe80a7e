//! `--demo`: what makes the shipped `config.yaml` come alive without any setup — sample
//! backends at the addresses it names, a light traffic generator aimed at the proxy, and an
//! admin token when the dashboard would otherwise be refused.
//!
//! Not part of the proxy. The samples and the generator run on one thread of their own with a
//! single-threaded tokio runtime and reach director only through its sockets, as real backends
//! and clients would.
//!
//! Which samples start is read from the configuration, not hard-coded: every backend (and every
//! road-warrior route) whose address is on this host — a loopback TCP address or a UNIX socket —
//! gets a sample server of its protocol (HTTP or FastCGI), named after the backend. A copy of
//! the config with other ports or socket paths (as the tests use) gets its samples there.
//! Backends elsewhere are left alone (logged).

mod fastcgi_sample;
mod http_sample;
mod random;
mod traffic;

use std::fmt::Write as _;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::config::{is_local, BackendUrl, Config, Endpoint, ListenAddr, Protocol, RouteTarget};

pub use random::admin_token;

/// One sample backend the demo serves: the backend's name and the address it listens on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleSpec {
    /// The name it answers with (the backend's name in the config).
    pub name: String,
    /// Where it listens and which protocol it speaks.
    pub url: BackendUrl,
}

/// The samples for `config`: one per distinct local backend address but `https://` ones, in
/// configuration order (clusters by name, then road-warrior routes). The first backend naming an address names its
/// sample.
pub fn samples(config: &Config) -> Vec<SampleSpec> {
    let cluster_backends = config
        .clusters
        .values()
        .flat_map(|c| &c.backends)
        .map(|b| (b.name.clone(), &b.url));
    let road_warriors = config.routes.iter().filter_map(|r| match &r.target {
        RouteTarget::Backend(url) => Some((format!("road-warrior {}", r.path_prefix), url)),
        RouteTarget::Cluster(_) => None,
    });
    let mut specs: Vec<SampleSpec> = Vec::new();
    let mut bound: Vec<ListenAddr> = Vec::new();
    for (name, url) in cluster_backends.chain(road_warriors) {
        if url.tls {
            log::info!(
                "demo: no sample for backend '{name}' at {}: the samples speak plain HTTP",
                url.text
            );
            continue;
        }
        let Some(addr) = bind_addr(&url.endpoint) else {
            log::info!(
                "demo: no sample for backend '{name}' at {}: not on this host",
                url.text
            );
            continue;
        };
        if !bound.contains(&addr) {
            bound.push(addr);
            specs.push(SampleSpec {
                name,
                url: url.clone(),
            });
        }
    }
    specs
}

/// Where a sample for `endpoint` listens: a loopback TCP address or a UNIX socket path.
fn bind_addr(endpoint: &Endpoint) -> Option<ListenAddr> {
    match endpoint {
        Endpoint::Unix(path) => Some(ListenAddr::Unix(path.clone())),
        Endpoint::Tcp { host, port } => {
            let ip = match host.as_str() {
                "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
                literal => literal.parse().ok()?,
            };
            let addr = ListenAddr::Tcp(SocketAddr::new(ip, *port));
            is_local(&addr).then_some(addr)
        }
    }
}

/// Whether and how the admin listener asks for a token, for the banner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminToken {
    /// No token: the admin listener is on loopback or a UNIX socket and open.
    None,
    /// The configured one (`admin.token`).
    Configured,
    /// One [`ensure_admin_token`] made for this run.
    Generated(String),
}

/// Gives the admin listener a fresh random token when it is reachable from other hosts and has
/// none, so that `--demo` starts (instead of being refused) and the dashboard can be logged
/// into; says which token applies, for the banner.
pub fn ensure_admin_token(config: &mut Config) -> AdminToken {
    let Some(admin) = config.admin.as_mut() else {
        return AdminToken::None;
    };
    if admin.token.is_some() {
        return AdminToken::Configured;
    }
    if is_local(&admin.listen) {
        return AdminToken::None;
    }
    let token = admin_token();
    admin.token = Some(token.clone());
    AdminToken::Generated(token)
}

/// The running demo: its samples, and the way to start the traffic generator on their thread.
/// Dropping it removes the UNIX sockets it created; the thread ends with the process.
pub struct Demo {
    samples: Vec<SampleSpec>,
    visits: Arc<Vec<traffic::Visit>>,
    /// Where [`Demo::drive_traffic`] sends the generator's target.
    traffic: tokio::sync::mpsc::UnboundedSender<traffic::Target>,
    sockets: Vec<PathBuf>,
}

/// Starts the sample backends of `config` on a thread of their own; returns once every one
/// listens, or with the first address that can't be bound. The thread's runtime runs a
/// `LocalSet`, for the traffic generator's awc client (not `Send`).
pub fn start(config: &Config) -> io::Result<Demo> {
    let samples = samples(config);
    let visits = Arc::new(traffic::visits(config));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (traffic_tx, mut traffic_rx) = tokio::sync::mpsc::unbounded_channel();
    let (to_bind, to_visit) = (samples.clone(), visits.clone());
    std::thread::Builder::new().name("demo".into()).spawn(move || {
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime,
            Err(e) => {
                let _ = ready_tx.send(Err(e));
                return;
            }
        };
        tokio::task::LocalSet::new().block_on(&runtime, async move {
            let rng = Arc::new(random::Rng::seeded());
            if let Err(e) = bind_all(&to_bind, &rng).await {
                let _ = ready_tx.send(Err(e));
                return;
            }
            let _ = ready_tx.send(Ok(()));
            while let Some(target) = traffic_rx.recv().await {
                let rng = Arc::new(random::Rng::seeded());
                tokio::task::spawn_local(traffic::run(target, to_visit.clone(), rng));
            }
            // The samples serve on for as long as the process runs.
            std::future::pending::<()>().await;
        });
    })?;
    ready_rx
        .recv()
        .map_err(|_| io::Error::other("the demo thread ended during start-up"))??;
    let sockets = samples
        .iter()
        .filter_map(|s| match &s.url.endpoint {
            Endpoint::Unix(path) => Some(path.clone()),
            Endpoint::Tcp { .. } => None,
        })
        .collect();
    let described: Vec<String> = samples
        .iter()
        .map(|s| format!("{} {}", s.name, s.url.text))
        .collect();
    log::info!("demo: sample backends listening: {}", described.join(", "));
    Ok(Demo {
        samples,
        visits,
        traffic: traffic_tx,
        sockets,
    })
}

/// Binds every sample (so that a busy address fails start-up) and starts its accept loop.
async fn bind_all(samples: &[SampleSpec], rng: &Arc<random::Rng>) -> io::Result<()> {
    for (index, spec) in samples.iter().enumerate() {
        let latency = Latency {
            base: Duration::from_millis(4 + 7 * index as u64),
            rng: rng.clone(),
        };
        let context = |e: io::Error| {
            let what = format!("demo backend {} at {}: {e}", spec.name, spec.url.text);
            io::Error::new(e.kind(), what)
        };
        let listener = match bind_addr(&spec.url.endpoint) {
            Some(ListenAddr::Tcp(addr)) => {
                Listener::Tcp(tokio::net::TcpListener::bind(addr).await.map_err(context)?)
            }
            Some(ListenAddr::Unix(path)) => {
                prepare_socket_path(&path).map_err(context)?;
                Listener::Unix(tokio::net::UnixListener::bind(&path).map_err(context)?)
            }
            None => return Err(context(io::Error::other("not an address on this host"))),
        };
        match spec.url.protocol {
            Protocol::Http => http_sample::spawn(listener, &spec.name, latency),
            Protocol::FastCgi => fastcgi_sample::spawn(listener, &spec.name, latency),
        }
    }
    Ok(())
}

/// Makes way for a UNIX socket at `path`: creates its directory and removes a socket file left
/// by an earlier run. A socket something still answers on, or a file that is not a socket, is
/// an error: the demo never takes an address away from a live server or deletes a file.
fn prepare_socket_path(path: &Path) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let meta = match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        other => other?,
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "the path exists and is not a socket",
        ));
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            "another process serves this socket",
        ));
    }
    std::fs::remove_file(path)
}

/// A connection a sample serves, over TCP or a UNIX socket.
trait Connection: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static {}

impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static> Connection for T {}

/// A bound sample listener.
enum Listener {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener),
}

impl Listener {
    /// Accepts connections for as long as the runtime runs, handing each to `serve`.
    fn spawn_accept_loop(self, serve: impl Fn(Box<dyn Connection>) + Send + 'static) {
        tokio::spawn(async move {
            loop {
                let accepted = match &self {
                    Listener::Tcp(l) => l.accept().await.map(|(s, _)| Box::new(s) as Box<dyn Connection>),
                    Listener::Unix(l) => l.accept().await.map(|(s, _)| Box::new(s) as Box<dyn Connection>),
                };
                match accepted {
                    Ok(connection) => serve(connection),
                    Err(e) => {
                        // E.g. out of file descriptors: wait instead of spinning.
                        log::warn!("demo: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
    }
}

/// A sample's answer time: its base, 0–25 ms of jitter, and now and then (1 in 30) a slow
/// request of 150–500 ms more, so that the latency charts have something to show.
#[derive(Clone)]
struct Latency {
    base: Duration,
    rng: Arc<random::Rng>,
}

impl Latency {
    fn next(&self) -> Duration {
        let mut ms = self.rng.between(0, 25);
        if self.rng.one_in(30) {
            ms += self.rng.between(150, 500);
        }
        self.base + Duration::from_millis(ms)
    }
}

impl Demo {
    /// The sample backends that are running.
    pub fn samples(&self) -> &[SampleSpec] {
        &self.samples
    }

    /// Starts the traffic generator against the first of `proxy_addrs` (call it once director
    /// serves). A wildcard address is reached over loopback.
    pub fn drive_traffic(&self, proxy_addrs: &[ListenAddr]) {
        let Some(target) = proxy_addrs.first().map(traffic::Target::reaching) else {
            return;
        };
        if self.visits.is_empty() {
            log::info!("demo: no routes to send traffic to");
            return;
        }
        // The demo thread lives as long as the process: the send cannot fail.
        let _ = self.traffic.send(target);
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        for path in &self.sockets {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The URL a browser or curl on this host uses for `addr` (a wildcard address becomes
/// loopback), or `unix:PATH`.
pub fn local_url(addr: &ListenAddr) -> String {
    match traffic::Target::reaching(addr) {
        traffic::Target::Tcp(sa) => format!("http://{sa}/"),
        traffic::Target::Unix(path) => format!("unix:{}", path.display()),
    }
}

/// What `--demo` prints once director serves: where to point a browser and curl, the admin
/// token when it was generated, and what runs behind.
pub fn banner(
    demo: &Demo,
    proxy_addrs: &[ListenAddr],
    admin: Option<&ListenAddr>,
    token: &AdminToken,
) -> String {
    let mut out = String::from("\ndirector --demo is running (Ctrl-C to stop)\n\n");
    for addr in proxy_addrs {
        let _ = writeln!(out, "  proxy        {}", local_url(addr));
    }
    match admin {
        Some(addr) => {
            let _ = writeln!(out, "  dashboard    {}", local_url(addr));
        }
        None => out.push_str("  dashboard    off (no `admin:` section in the config)\n"),
    }
    match token {
        AdminToken::None => {}
        AdminToken::Configured => out.push_str("  admin token  the configured one (admin.token)\n"),
        AdminToken::Generated(token) => {
            let _ = writeln!(
                out,
                "  admin token  {token}\n               (generated for this run because the admin listener is \
                 reachable from other hosts;\n                set DIRECTOR_ADMIN_TOKEN to choose your own)"
            );
        }
    }
    out.push_str("\n  sample backends:\n");
    for sample in &demo.samples {
        let _ = writeln!(out, "    {:<22} {}", sample.name, sample.url.text);
    }
    let mut paths: Vec<&str> = Vec::new();
    for visit in demo.visits.iter() {
        if !paths.contains(&visit.path.as_str()) {
            paths.push(&visit.path);
        }
    }
    let _ = writeln!(
        out,
        "\n  traffic: a few requests a second (and now and then a burst) to {}",
        paths.join(" ")
    );
    if let Some(url) = proxy_addrs
        .first()
        .map(local_url)
        .filter(|u| u.starts_with("http"))
    {
        let base = url.trim_end_matches('/');
        out.push_str("\n  try:\n");
        for visit in demo
            .visits
            .iter()
            .filter(|v| v.host.is_none() && (v.weight >= 4 || v.header.is_some()))
        {
            let header = visit
                .header
                .as_ref()
                .map_or(String::new(), |(name, value)| format!(" -H '{name}: {value}'"));
            let _ = writeln!(out, "    curl -i{header} '{base}{}'", visit.path);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> Config {
        crate::config::load_str(yaml).unwrap_or_else(|e| panic!("{e}"))
    }

    const BASE: &str = "proxy:\n  listen: [\"127.0.0.1:0\"]\n";

    #[test]
    fn samples_are_the_local_backend_addresses_once_each() {
        let yaml = format!(
            "{BASE}routes:\n  - {{ path_prefix: /old/, backend: \"http://127.0.0.1:9\" }}\n  \
             - {{ path_prefix: /again/, backend: \"http://127.0.0.1:7\" }}\n  - {{ cluster: c }}\n\
             clusters:\n  c:\n    fastcgi: {{ document_root: /srv }}\n    backends:\n      \
             - {{ name: a, url: \"http://localhost:7\" }}\n      - {{ name: far, url: \"http://10.1.2.3:7\" }}\n      \
             - {{ name: f, url: \"fastcgi+unix:///tmp/x/f.sock\" }}\n      \
             - {{ name: tls, url: \"https://127.0.0.1:8443\", tls: {{ verify: false }} }}\n"
        );
        let names: Vec<String> = samples(&config(&yaml)).into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["a", "f", "road-warrior /old/"]);
    }

    #[test]
    fn a_token_is_made_up_only_for_an_open_admin_listener_off_loopback() {
        let admin = |listen: &str, token: &str| {
            config(&format!(
                "{BASE}admin: {{ listen: \"{listen}\", token: \"{token}\" }}\n"
            ))
        };
        let mut open_off_loopback = admin("0.0.0.0:0", "");
        let AdminToken::Generated(token) = ensure_admin_token(&mut open_off_loopback) else {
            panic!("no token made up");
        };
        assert_eq!(open_off_loopback.admin.and_then(|a| a.token), Some(token));
        let mut on_loopback = admin("127.0.0.1:0", "");
        assert_eq!(ensure_admin_token(&mut on_loopback), AdminToken::None);
        assert_eq!(on_loopback.admin.and_then(|a| a.token), None);
        let mut configured = admin("0.0.0.0:0", "0123456789abcdef");
        assert_eq!(ensure_admin_token(&mut configured), AdminToken::Configured);
        assert_eq!(ensure_admin_token(&mut config(BASE)), AdminToken::None);
    }

    #[test]
    fn stale_sockets_are_removed_but_live_ones_and_files_are_kept() {
        let temp = crate::test_util::temp_dir("demo-unit");
        let dir = temp.path();
        let socket = dir.join("sub/s.sock");
        assert!(prepare_socket_path(&socket).is_ok(), "creates the directory");
        let live = std::os::unix::net::UnixListener::bind(&socket).expect("bind");
        let busy = prepare_socket_path(&socket).expect_err("a live socket is kept");
        assert_eq!(busy.kind(), io::ErrorKind::AddrInUse);
        drop(live);
        prepare_socket_path(&socket).expect("a stale socket is removed");
        assert!(!socket.exists());
        let file = dir.join("sub/not-a-socket");
        std::fs::write(&file, "keep me").expect("write");
        assert!(prepare_socket_path(&file).is_err());
        assert!(file.exists());
    }
}
