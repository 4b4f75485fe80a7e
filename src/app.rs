//! Wiring: binds the listeners, starts actix-web's workers, places the control-plane actors
//! on the worker arbiters, and waits until the first topology is published.

use std::io;
use std::os::unix::fs::FileTypeExt;
use std::sync::Arc;
use std::thread::JoinHandle;

use actix::Actor;
use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpServer};
use arc_swap::ArcSwapOption;
use socket2::{Domain, Socket, Type};
use tokio::sync::{mpsc, oneshot};

use crate::cluster::arbiters::Arbiters;
use crate::cluster::director_actor::DirectorActor;
use crate::cluster::SharedTopology;
use crate::config::{Config, ListenAddr};
use crate::proxy::access_log::AccessLog;
use crate::proxy::{handler, ProxyState};

/// Errors that stop director from starting.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: String, source: io::Error },
    #[error("cannot open the access log: {0}")]
    AccessLog(io::Error),
    #[error("the server thread failed to start: {0}")]
    Start(String),
}

/// How the server is run.
#[derive(Debug, Clone, Copy)]
pub struct StartOptions {
    /// Stop gracefully on SIGINT/SIGTERM (the binary); off for in-process tests.
    pub handle_signals: bool,
}

/// A running director.
pub struct Running {
    /// The proxy listeners, with the ports the OS chose for `:0`.
    pub proxy_addrs: Vec<ListenAddr>,
    pub topology: SharedTopology,
    server: ServerHandle,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish, and waits for the workers to end.
    pub async fn stop(self) {
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
        }
    }
}

enum Listener {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener),
}

fn bind(addr: &ListenAddr) -> Result<(Listener, ListenAddr), AppError> {
    let err = |source| AppError::Listen {
        addr: format!("{addr:?}"),
        source,
    };
    match addr {
        ListenAddr::Tcp(sa) => {
            let socket = Socket::new(Domain::for_address(*sa), Type::STREAM, None).map_err(err)?;
            socket.set_reuse_address(true).map_err(err)?;
            if sa.is_ipv6() {
                socket.set_only_v6(true).map_err(err)?;
            }
            socket.bind(&(*sa).into()).map_err(err)?;
            socket.listen(4096).map_err(err)?;
            let listener: std::net::TcpListener = socket.into();
            let local = listener.local_addr().map_err(err)?;
            Ok((Listener::Tcp(listener), ListenAddr::Tcp(local)))
        }
        ListenAddr::Unix(path) => {
            // A socket file left by a previous run would make bind fail.
            if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
                std::fs::remove_file(path).map_err(err)?;
            }
            let listener = std::os::unix::net::UnixListener::bind(path).map_err(err)?;
            Ok((Listener::Unix(listener), addr.clone()))
        }
    }
}

/// Starts director on its own thread and returns once it serves the configured topology.
pub fn start(config: Config, options: StartOptions) -> Result<Running, AppError> {
    let mut listeners = Vec::new();
    let mut proxy_addrs = Vec::new();
    for addr in &config.proxy.listen {
        let (listener, actual) = bind(addr)?;
        listeners.push(listener);
        proxy_addrs.push(actual);
    }
    let access_log = AccessLog::start(&config.access_log).map_err(AppError::AccessLog)?;
    let topology: SharedTopology = Arc::new(ArcSwapOption::empty());
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let shared = topology.clone();
    let thread = std::thread::Builder::new()
        .name("director-main".into())
        .spawn(move || {
            actix_rt::System::new().block_on(serve(config, listeners, shared, access_log, options, ready_tx))
        })
        .map_err(|e| AppError::Start(e.to_string()))?;
    match ready_rx.recv() {
        Ok(Ok(server)) => Ok(Running {
            proxy_addrs,
            topology,
            server,
            thread: Some(thread),
        }),
        Ok(Err(e)) => Err(AppError::Start(e)),
        Err(_) => {
            let detail = match thread.join() {
                Ok(Err(e)) => e.to_string(),
                _ => "server thread ended during start-up".to_owned(),
            };
            Err(AppError::Start(detail))
        }
    }
}

async fn serve(
    config: Config,
    listeners: Vec<Listener>,
    topology: SharedTopology,
    access_log: Option<Arc<AccessLog>>,
    options: StartOptions,
    ready: std::sync::mpsc::Sender<Result<ServerHandle, String>>,
) -> io::Result<()> {
    let workers = config.proxy.workers.max(1);
    let state = web::Data::new(ProxyState {
        topology: topology.clone(),
        access_log,
    });
    let (arbiter_tx, mut arbiter_rx) = mpsc::unbounded_channel();
    let mut server = HttpServer::new(move || {
        // Runs on each worker thread: report its arbiter so actors can be placed there.
        let _ = arbiter_tx.send((std::thread::current().id(), actix_rt::Arbiter::current()));
        App::new()
            .app_data(state.clone())
            .default_service(web::to(handler::handle))
    })
    .workers(workers)
    .keep_alive(config.proxy.keep_alive)
    .client_request_timeout(config.proxy.client_timeout)
    .backlog(4096);
    if !options.handle_signals {
        server = server.disable_signals();
    }
    for listener in listeners {
        server = match listener {
            Listener::Tcp(l) => server.listen(l)?,
            Listener::Unix(l) => server.listen_uds(l)?,
        };
    }
    let server = server.run();
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
    DirectorActor::start_in_arbiter(&arbiters.next(), move |_| {
        DirectorActor::new(config, topology, director_arbiters, published_tx)
    });
    if published_rx.await.is_err() {
        let _ = ready.send(Err("the director actor did not publish a topology".to_owned()));
        return Ok(());
    }
    let _ = ready.send(Ok(handle));
    running.await.map_err(io::Error::other)?
}
