//! Wiring: binds the listeners, starts the proxy's workers (actix-server, each connection
//! under the connection guard of `listener`), places the control-plane actors on the worker
//! arbiters, starts the admin listener, and waits until the first topology is published. Also
//! the reload triggers: SIGHUP and the config file watcher.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;

use std::time::Duration;

use actix::{Actor, Addr};
use actix_web::dev::{fn_service, ServerHandle, ServiceRequest, ServiceResponse};
use actix_web::{web, App, FromRequest};
use arc_swap::{ArcSwap, ArcSwapOption};
use tokio::sync::{mpsc, oneshot};

use crate::admin::live::{collector, persist, LiveStats};
use crate::admin::{self, haproxy_compat, AdminState, Replication};
use crate::cluster::arbiters::Arbiters;
use crate::cluster::cluster_actor::SharedClusters;
use crate::cluster::director_actor::shared::AttachShared;
use crate::cluster::director_actor::{ConfigStatus, DirectorActor, Reload, SharedStatus};
use crate::cluster::SharedTopology;
use crate::config::watcher::ConfigWatcher;
use crate::config::{is_local, Config, Document, ListenAddr, SharedAdmin, SharedHaproxyCompat, TlsConfig};
use crate::listener::cert_watch::{self, CertWatchers};
use crate::listener::tls::{CertStore, TlsListeners};
use crate::listener::{self, limits, Bound, GuardSettings, H2Settings, HttpsPolicy, Listener, ServerOptions};
use crate::proxy::access_log::AccessLog;
use crate::proxy::{handler, ProxyState};
use crate::replicas;
use crate::replicas::sync_actor::StateSync;

/// Errors that stop director from starting.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: String, source: io::Error },
    #[error("cannot serve TLS on {addr}: {message}")]
    Tls { addr: String, message: String },
    #[error("cannot open the access log: {0}")]
    AccessLog(io::Error),
    #[error("the server thread failed to start: {0}")]
    Start(String),
    #[error(
        "refusing to start: the admin listener {0} is reachable from other hosts but admin.token is not set \
         (set a token of at least {min} characters, or listen on 127.0.0.1 / a UNIX socket)",
        min = crate::config::MIN_TOKEN_LEN
    )]
    InsecureAdmin(String),
}

/// How the server is run.
#[derive(Debug, Clone, Copy, Default)]
pub struct StartOptions {
    /// Stop gracefully on SIGINT/SIGTERM and reload on SIGHUP (the binary); off for
    /// in-process tests.
    pub handle_signals: bool,
    /// Watch the configuration file and reload when it changes; watch the TLS certificate
    /// and key files and reload them when they change.
    pub watch_config: bool,
}

/// A running director.
pub struct Running {
    /// The proxy listeners, with the ports the OS chose for `:0`.
    pub proxy_addrs: Vec<ListenAddr>,
    /// The admin listener, if configured, with the port the OS chose for `:0`.
    pub admin_addr: Option<ListenAddr>,
    pub topology: SharedTopology,
    pub status: SharedStatus,
    /// The Director actor, for reloads and runtime changes.
    pub director: Addr<DirectorActor>,
    server: ServerHandle,
    admin_server: Option<ServerHandle>,
    _watcher: Option<ConfigWatcher>,
    _cert_watchers: Option<CertWatchers>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish, and waits for the workers to end.
    pub async fn stop(self) {
        if let Some(admin) = &self.admin_server {
            admin.stop(true).await;
        }
        self.server.stop(true).await;
    }

    /// Blocks until the server has stopped (by signal or [`Running::stop`]).
    pub fn wait(mut self) -> io::Result<()> {
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(io::Error::other("server thread panicked")),
            None => Ok(()),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.thread.is_some() {
            // Sends the stop command; completion is not awaited here.
            drop(self.server.stop(false));
            if let Some(admin) = &self.admin_server {
                drop(admin.stop(false));
            }
        }
    }
}

fn bind(addr: &ListenAddr) -> Result<(Listener, ListenAddr), AppError> {
    listener::bind(addr).map_err(|source| AppError::Listen {
        addr: addr.to_string(),
        source,
    })
}

/// Binds a listener and loads its TLS certificates (their store is added to `tls_stores`).
fn bind_listener(
    addr: &ListenAddr,
    tls: Option<&TlsConfig>,
    policy: HttpsPolicy,
    tls_stores: &mut Vec<Arc<CertStore>>,
) -> Result<(Bound, ListenAddr), AppError> {
    let (socket, actual) = bind(addr)?;
    let tls = match tls {
        None => None,
        Some(tls) => {
            let failed = |message: String| AppError::Tls {
                addr: actual.to_string(),
                message,
            };
            let store = CertStore::load(actual.to_string(), tls).map_err(failed)?;
            let config = store.server_config().map_err(|e| failed(e.to_string()))?;
            tls_stores.push(store);
            Some(config)
        }
    };
    Ok((Bound { socket, tls, policy }, actual))
}

/// What the server thread reports once it serves.
struct Started {
    server: ServerHandle,
    admin_server: Option<ServerHandle>,
    director: Addr<DirectorActor>,
}

/// Starts director on its own thread and returns once it serves the configured topology.
pub fn start(document: Document, options: StartOptions) -> Result<Running, AppError> {
    let config = &document.config;
    let mut tls_stores = Vec::new();
    let admin_listener = match &config.admin {
        Some(admin) if admin.token.is_none() && !is_local(&admin.listen) => {
            return Err(AppError::InsecureAdmin(admin.listen.to_string()))
        }
        Some(admin) => Some(bind_listener(
            &admin.listen,
            admin.tls.as_ref(),
            HttpsPolicy::default(),
            &mut tls_stores,
        )?),
        None => None,
    };
    let mut listeners = Vec::new();
    let mut proxy_addrs = Vec::new();
    for entry in &config.proxy.listen {
        let policy = HttpsPolicy::of(entry);
        let (listener, actual) = bind_listener(&entry.address, entry.tls.as_ref(), policy, &mut tls_stores)?;
        listeners.push(listener);
        proxy_addrs.push(actual);
    }
    let tls_listeners: TlsListeners = Arc::new(tls_stores);
    let admin_addr = admin_listener.as_ref().map(|(_, addr)| addr.clone());
    let access_log = AccessLog::start(&config.access_log).map_err(AppError::AccessLog)?;
    let topology: SharedTopology = Arc::new(ArcSwapOption::empty());
    let status: SharedStatus = Arc::new(ArcSwap::from_pointee(ConfigStatus {
        generation: 0,
        config_path: document.path.clone(),
        state_file: config.state_file.clone(),
        last_reload: None,
        state_file_error: None,
        shared_state_error: None,
        discovery: Vec::new(),
    }));
    let config_path = document.path.clone();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let shared = Shared {
        topology: topology.clone(),
        status: status.clone(),
        tls: tls_listeners.clone(),
    };
    let thread = std::thread::Builder::new()
        .name("director-main".into())
        .spawn(move || {
            let listeners = Listeners {
                proxy: listeners,
                admin: admin_listener.map(|(l, _)| l),
            };
            actix_rt::System::new()
                .block_on(serve(document, listeners, shared, access_log, options, ready_tx))
        })
        .map_err(|e| AppError::Start(e.to_string()))?;
    let started = match ready_rx.recv() {
        Ok(Ok(started)) => started,
        Ok(Err(e)) => return Err(AppError::Start(e)),
        Err(_) => {
            let detail = match thread.join() {
                Ok(Err(e)) => e.to_string(),
                _ => "server thread ended during start-up".to_owned(),
            };
            return Err(AppError::Start(detail));
        }
    };
    let watcher = match (options.watch_config, config_path) {
        (true, Some(path)) => {
            let director = started.director.clone();
            let on_change = move || director.do_send(Reload { trigger: "watch" });
            match ConfigWatcher::start(&path, WATCH_POLL_INTERVAL, WATCH_DEBOUNCE, on_change) {
                Ok(w) => Some(w),
                Err(e) => {
                    log::warn!(
                        "cannot watch {}: {e}; reload with SIGHUP or the API",
                        path.display()
                    );
                    None
                }
            }
        }
        _ => None,
    };
    let cert_watchers = options
        .watch_config
        .then(|| cert_watch::watch(&tls_listeners, WATCH_POLL_INTERVAL, WATCH_DEBOUNCE));
    Ok(Running {
        proxy_addrs,
        admin_addr,
        topology,
        status,
        director: started.director,
        server: started.server,
        admin_server: started.admin_server,
        _watcher: watcher,
        _cert_watchers: cert_watchers,
        thread: Some(thread),
    })
}

/// How often the watcher polls for changes its events missed.
const WATCH_POLL_INTERVAL: Duration = Duration::from_secs(2);
/// Quiet time after the last file event before a reload.
const WATCH_DEBOUNCE: Duration = Duration::from_millis(150);

/// State the main thread shares with the server thread.
struct Shared {
    topology: SharedTopology,
    status: SharedStatus,
    tls: TlsListeners,
}

struct Listeners {
    proxy: Vec<Bound>,
    admin: Option<Bound>,
}

async fn serve(
    document: Document,
    listeners: Listeners,
    shared: Shared,
    access_log: Option<Arc<AccessLog>>,
    options: StartOptions,
    ready: std::sync::mpsc::Sender<Result<Started, String>>,
) -> io::Result<()> {
    let config = &document.config;
    let workers = config.proxy.workers.max(1);
    let state = web::Data::new(ProxyState {
        topology: shared.topology.clone(),
        access_log,
        tracing: crate::proxy::trace::Tracing::new(&config.proxy),
    });
    let haproxy_compat: SharedHaproxyCompat = Arc::new(ArcSwap::from_pointee(config.haproxy_compat.clone()));
    let front = web::Data::new(ProxyFront::default());
    let worker_front = front.clone();
    let (arbiter_tx, mut arbiter_rx) = mpsc::unbounded_channel();
    let server_options = ServerOptions {
        workers,
        max_connections_per_worker: limits::per_worker(proxy_max_connections(config), workers),
        guard: GuardSettings::from_config(&config.proxy),
        shutdown_timeout: SHUTDOWN_TIMEOUT,
        handle_signals: options.handle_signals,
        h2: (config.proxy.http2 || config.proxy.h2c).then(|| H2Settings::from_config(&config.proxy)),
        http2: config.proxy.http2,
        h2c: config.proxy.h2c,
    };
    let server = listener::http_server(listeners.proxy, server_options, move || {
        // Runs on each worker thread: report its arbiter so actors can be placed there.
        let _ = arbiter_tx.send((std::thread::current().id(), actix_rt::Arbiter::current()));
        let (state, front) = (state.clone(), worker_front.clone());
        App::new().default_service(fn_service(move |req| {
            proxy_entry(req, state.clone(), front.clone())
        }))
    })?;
    let handle = server.handle();
    let running = actix_rt::spawn(server);

    let mut arbiters = Vec::new();
    let mut seen = Vec::new();
    while arbiters.len() < workers {
        let Some((thread, arbiter)) = arbiter_rx.recv().await else {
            let _ = ready.send(Err("workers did not start".to_owned()));
            return Ok(());
        };
        if !seen.contains(&thread) {
            seen.push(thread);
            arbiters.push(arbiter);
        }
    }
    let arbiters = Arbiters::new(arbiters);
    let (published_tx, published_rx) = oneshot::channel();
    let director_arbiters = arbiters.clone();
    let admin_settings: SharedAdmin = Arc::new(ArcSwapOption::from(config.admin.clone().map(Arc::new)));
    let admin_options = admin_options(config);
    let history_file = config.state_file.as_deref().map(persist::path_beside);
    let cluster_state = config.cluster_state.clone();
    let (topology, status) = (shared.topology.clone(), shared.status.clone());
    let clusters: SharedClusters = Arc::new(ArcSwap::from_pointee(BTreeMap::new()));
    let director_clusters = clusters.clone();
    let director_admin = admin_settings.clone();
    let director_compat = haproxy_compat.clone();
    let director = DirectorActor::start_in_arbiter(&arbiters.next(), move |_| {
        DirectorActor::new(
            document,
            topology,
            director_clusters,
            status,
            director_arbiters,
            published_tx,
        )
        .with_admin(director_admin)
        .with_haproxy_compat(director_compat)
    });
    if published_rx.await.is_err() {
        let _ = ready.send(Err("the director actor did not publish a topology".to_owned()));
        return Ok(());
    }
    // Shared runtime state: its actor on a worker arbiter; the Director pushes to it. Its
    // lease is revoked once the server has stopped.
    let mut leaving = None;
    let replication = cluster_state.map(|shared| {
        let etcd = shared.etcd;
        let (sync, status) =
            StateSync::start(etcd.clone(), director.clone(), clusters.clone(), &arbiters.next());
        leaving = Some((status.clone(), etcd));
        director.do_send(AttachShared {
            sync: sync.clone().recipient(),
        });
        Replication { status, sync }
    });
    // The admin surface's state serves the admin listener and HAProxy's URIs on the proxy
    // listener (which a reload may switch on), so it exists with or without an admin listener.
    // Its live history is kept across restarts when there is a dashboard to show it; it is
    // written once more when the server has stopped.
    let history_file = history_file.filter(|_| listeners.admin.is_some());
    let earlier = match history_file.clone() {
        Some(path) => actix_rt::task::spawn_blocking(move || persist::load(&path))
            .await
            .ok()
            .flatten(),
        None => None,
    };
    let live = LiveStats::start_kept(
        shared.topology.clone(),
        &arbiters.next(),
        collector::INTERVAL,
        history_file,
        earlier,
    );
    let kept_live = live.clone();
    let admin = AdminState::new(clusters, shared.status, director.clone(), admin_settings, live)
        .with_haproxy_compat(haproxy_compat)
        .with_replication(replication)
        .with_tls(shared.tls);
    let admin = web::Data::new(admin);
    let _ = front.0.set(admin.clone());
    let admin_server = match listeners.admin {
        Some(listener) => {
            let server = admin::server(admin, listener, admin_options)?;
            let handle = server.handle();
            actix_rt::spawn(server);
            Some(handle)
        }
        None => None,
    };
    if options.handle_signals {
        reload_on_sighup(director.clone());
    }
    let _ = ready.send(Ok(Started {
        server: handle,
        admin_server,
        director,
    }));
    let stopped = running.await.map_err(io::Error::other);
    kept_live.save().await;
    if let Some((status, etcd)) = leaving {
        replicas::leave(&status, &etcd).await;
    }
    stopped?
}

/// How long a graceful stop waits for the proxy's requests in flight (actix-web's default).
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// The admin surface's state for the proxy listener's HAProxy URIs, set once the control
/// plane is up (until then the proxy listener only proxies).
#[derive(Default)]
struct ProxyFront(OnceLock<web::Data<AdminState>>);

/// The proxy's entry point: the request is tracked on its connection (no head deadline while
/// it is served; see `listener`), refused when its head is over the limits, answered by
/// `haproxy_compat` when it is one of HAProxy's URIs served here, else served by the pipeline.
///
/// A plain service rather than a handler (`web::to`): the state comes with the call instead
/// of being looked up in the app data by type, and the response is boxed once here instead
/// of going through extractors and a `Responder`.
async fn proxy_entry(
    req: ServiceRequest,
    state: web::Data<ProxyState>,
    front: web::Data<ProxyFront>,
) -> Result<ServiceResponse, actix_web::Error> {
    let (req, mut payload) = req.into_parts();
    let payload = web::Payload::from_request(&req, &mut payload).into_inner()?;
    let response = listener::guarded(req.clone(), |req| async move {
        let compat = front
            .0
            .get()
            .and_then(|admin| Some((admin, haproxy_compat::proxy_match(&req, admin)?)));
        if let Some((admin, kind)) = compat {
            // Boxed: the proxied request's future stays as small as it was.
            let reply = Box::pin(haproxy_compat::proxy_answer(req, admin.clone(), kind)).await;
            return reply.map_into_boxed_body();
        }
        // Boxed here, where the response is first whole: the layers above move a small
        // `HttpResponse<BoxBody>` instead of the relay body by value.
        handler::handle(req, payload, state).await.map_into_boxed_body()
    })
    .await;
    Ok(ServiceResponse::new(req, response.map_into_boxed_body()))
}

/// Client connections the proxy serves at once: `proxy.max_connections`, or what the
/// open-file limit allows. Logged, with a warning when the configured figure exceeds it.
fn proxy_max_connections(config: &Config) -> usize {
    let allowed = limits::nofile_limit().map(|l| (l.soft, limits::derived_max_connections(l.soft)));
    let total = match (config.proxy.max_connections, &allowed) {
        (Some(n), Ok((soft, allowed))) if n > *allowed => {
            log::warn!(
                "proxy.max_connections {n} exceeds what the open-file limit {soft} allows (about {allowed}); \
                 connections beyond that will fail"
            );
            n
        }
        (Some(n), _) => n,
        (None, Ok((_, allowed))) => *allowed,
        (None, Err(e)) => {
            log::warn!("cannot read the open-file limit ({e}); assuming 1024");
            limits::derived_max_connections(1024)
        }
    };
    let workers = config.proxy.workers.max(1);
    let per_worker = limits::per_worker(total, workers);
    log::info!(
        "proxy: at most {} client connections ({per_worker} per worker, {workers} workers)",
        per_worker * workers
    );
    total
}

/// The admin server's settings: one worker, `admin.max_connections`, the proxy's client
/// timeouts and head limits.
fn admin_options(config: &Config) -> ServerOptions {
    ServerOptions {
        workers: 1,
        max_connections_per_worker: config.admin.as_ref().map_or(1, |a| a.max_connections),
        guard: GuardSettings::from_config(&config.proxy),
        // Event streams never end by themselves: don't let them hold a shutdown.
        shutdown_timeout: Duration::from_secs(1),
        // It stops with the proxy server.
        handle_signals: false,
        h2: None,
        http2: false,
        h2c: false,
    }
}

/// SIGHUP reloads the configuration.
fn reload_on_sighup(director: Addr<DirectorActor>) {
    actix_rt::spawn(async move {
        let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
            log::warn!("cannot listen for SIGHUP; reload with the API or by editing the file");
            return;
        };
        while hangups.recv().await.is_some() {
            log::info!("SIGHUP: reloading the configuration");
            director.do_send(Reload { trigger: "signal" });
        }
    });
}
