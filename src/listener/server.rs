//! Building an HTTP/1 server whose connections run under the connection guard: what
//! actix-web's `HttpServer` does (actix-server workers, actix-http's HTTP/1 service, graceful
//! shutdown, signals), with each accepted TCP or UNIX stream wrapped in a [`GuardedIo`] before
//! actix-http sees it; with h2c on, HTTP/2 clients (prior knowledge) are served by `h2`.
//!
//! Start-up only; the service it builds runs on each worker.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use actix_http::body::MessageBody;
use actix_http::error::DispatchError;
use actix_http::{HttpService, KeepAlive, Request, Response};
use actix_server::{GracefulShutdownSignal, Server, ServerBuilder};
use actix_service::boxed::{self, BoxServiceFactory};
use actix_service::{fn_service, map_config, IntoServiceFactory, Service, ServiceFactory, ServiceFactoryExt};
use actix_web::dev::AppConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};

use super::conn::GuardSettings;
use super::h2::{h2c_or_h1, H2Settings};
use super::io::{FileTarget, GuardedIo};
use super::Listener;

/// How a server runs.
#[derive(Debug, Clone, Copy)]
pub struct ServerOptions {
    /// Worker threads (at least 1).
    pub workers: usize,
    /// Connections each worker serves at once; a full worker stops taking connections, and
    /// when all are full the listeners stop accepting (clients wait in the backlog).
    pub max_connections_per_worker: usize,
    pub guard: GuardSettings,
    /// How long a graceful stop waits for requests in flight.
    pub shutdown_timeout: Duration,
    /// Stop on SIGINT/SIGTERM/SIGQUIT (actix-server's handling).
    pub handle_signals: bool,
    /// Serve clients that open with HTTP/2's preface (h2c prior knowledge) as HTTP/2, with
    /// these limits; `None`: HTTP/1 only.
    pub h2c: Option<H2Settings>,
}

/// How long actix-http waits for a client to close after director closed its side; as
/// actix-web's `HttpServer`.
const CLIENT_DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// A stream the server accepts.
trait Accepted: AsyncRead + AsyncWrite + FileTarget + Unpin + 'static {
    /// The client's address, for `HttpRequest::peer_addr`.
    fn peer(&self) -> Option<SocketAddr>;

    /// Socket options for a client connection.
    fn tune(&self) {}
}

impl Accepted for TcpStream {
    fn peer(&self) -> Option<SocketAddr> {
        self.peer_addr().ok()
    }

    /// `TCP_NODELAY`, as nginx's `tcp_nodelay on` and HAProxy do: a streamed response goes
    /// out as a head and then body pieces, and with Nagle the second write waits for the
    /// client's (delayed) ACK of the first, 20-40 ms on a kept-alive connection.
    fn tune(&self) {
        if let Err(e) = self.set_nodelay(true) {
            log::debug!("TCP_NODELAY on a client connection: {e}");
        }
    }
}

impl Accepted for UnixStream {
    fn peer(&self) -> Option<SocketAddr> {
        None
    }
}

/// An HTTP/1 server on `listeners` for the app `factory` builds (called once per worker and
/// listener, on the worker's thread, like `HttpServer::new`'s).
pub fn http_server<F, I, S, B>(
    listeners: Vec<Listener>,
    options: ServerOptions,
    factory: F,
) -> io::Result<Server>
where
    F: Fn() -> I + Send + Clone + 'static,
    I: IntoServiceFactory<S, Request> + 'static,
    S: ServiceFactory<Request, Config = AppConfig> + 'static,
    S::Error: Into<actix_web::Error> + 'static,
    S::InitError: fmt::Debug,
    S::Response: Into<Response<B>> + 'static,
    <S::Service as Service<Request>>::Future: 'static,
    B: MessageBody + 'static,
{
    let mut builder = ServerBuilder::default()
        .workers(options.workers.max(1))
        .max_concurrent_connections(options.max_connections_per_worker.max(1))
        .shutdown_timeout(options.shutdown_timeout.as_secs());
    if !options.handle_signals {
        builder = builder.disable_signals();
    }
    let shutdown = builder.graceful_shutdown_signal();
    for listener in listeners {
        let factory = factory.clone();
        let shutdown = shutdown.clone();
        builder = match listener {
            Listener::Tcp(l) => {
                let addr = l.local_addr()?;
                builder.listen(format!("director-{addr}"), l, move || {
                    let app = app_service(factory(), addr);
                    serve::<TcpStream, _, _>(app, options, shutdown.clone(), Some(addr))
                })?
            }
            Listener::Unix(l) => {
                let name = format!("director-{:?}", l.local_addr()?);
                // What actix-web's HttpServer reports as the local address of a UNIX listener.
                let addr = SocketAddr::from(([127, 0, 0, 1], 8080));
                builder.listen_uds(name, l, move || {
                    let app = app_service(factory(), addr);
                    serve::<UnixStream, _, _>(app, options, shutdown.clone(), None)
                })?
            }
        };
    }
    Ok(builder.run())
}

/// The app as actix-http's service: errors turned into responses, configured as listening
/// on `addr` (for `HttpRequest::app_config`, e.g. FastCGI's `SERVER_PORT`).
fn app_service<I, S, B>(
    app: I,
    addr: SocketAddr,
) -> impl ServiceFactory<
    Request,
    Config = (),
    Response = S::Response,
    Error = Response<actix_http::body::BoxBody>,
    InitError = S::InitError,
>
where
    I: IntoServiceFactory<S, Request>,
    S: ServiceFactory<Request, Config = AppConfig>,
    S::Error: Into<actix_web::Error>,
    S::Response: Into<Response<B>>,
{
    let app = app
        .into_factory()
        .map_err(|err| err.into().error_response().into());
    // `AppConfig::new` is crate-private; this is how actix-web's test server builds one.
    let config = AppConfig::__priv_test_new(false, addr.to_string(), addr);
    map_config(app, move |_| config.clone())
}

/// A listener's service: HTTP/1 under the connection guard, and with h2c on, HTTP/2 for the
/// clients that open with its preface (`h2`).
fn serve<T, S, B>(
    app: S,
    options: ServerOptions,
    shutdown: GracefulShutdownSignal,
    local: Option<SocketAddr>,
) -> BoxServiceFactory<(), T, (), DispatchError, ()>
where
    T: Accepted + super::h2::Preface,
    S: ServiceFactory<Request, Config = ()> + 'static,
    S::Error: Into<Response<actix_http::body::BoxBody>> + 'static,
    S::InitError: fmt::Debug,
    S::Response: Into<Response<B>> + 'static,
    <S::Service as Service<Request>>::Future: 'static,
    B: MessageBody + 'static,
{
    let guard = options.guard;
    let Some(h2) = options.h2c else {
        return boxed::factory(guarded_h1(app, guard, shutdown, local));
    };
    let h1_shutdown = shutdown.clone();
    let h1 = move |app| {
        let shared = actix_service::fn_factory(move || std::future::ready(Ok::<_, ()>(Rc::clone(&app))));
        guarded_h1(shared, guard, h1_shutdown.clone(), local)
    };
    let prepare = |stream: &T| {
        stream.tune();
        stream.peer()
    };
    boxed::factory(h2c_or_h1(app, h2, shutdown, h1, prepare))
}

/// Wraps each accepted stream in the connection guard and serves it with actix-http's
/// HTTP/1 dispatcher; each connection's guard state becomes its requests' connection data.
fn guarded_h1<T, S, B>(
    app: S,
    guard: GuardSettings,
    shutdown: GracefulShutdownSignal,
    local: Option<SocketAddr>,
) -> impl ServiceFactory<T, Config = (), Response = (), Error = DispatchError, InitError = ()>
where
    T: Accepted,
    S: ServiceFactory<Request, Config = ()> + 'static,
    S::Error: Into<Response<actix_http::body::BoxBody>> + 'static,
    S::InitError: fmt::Debug,
    S::Response: Into<Response<B>> + 'static,
    <S::Service as Service<Request>>::Future: 'static,
    B: MessageBody + 'static,
{
    // actix-http's own timers are off: the guard owns head and idle timing (keep_alive 0
    // still turns keep-alive off).
    let keep_alive = match guard.keep_alive.is_zero() {
        true => KeepAlive::Disabled,
        false => KeepAlive::Os,
    };
    let mut http = HttpService::build()
        .keep_alive(keep_alive)
        .client_request_timeout(Duration::ZERO)
        .client_disconnect_timeout(CLIENT_DISCONNECT_TIMEOUT)
        // A client that closes its side has left (as nginx and HAProxy take it): the request
        // in flight ends at once, and its cluster's `on_client_abort` decides what the
        // backend is told. Allowing half-closed connections would keep serving it instead.
        .h1_allow_half_closed(false)
        // Idle keep-alive connections close at once on a graceful stop, as in HttpServer
        // (this builder method is doc(hidden) in actix-http 3.20; HttpServer uses it).
        .graceful_shutdown_signal(move || {
            let signal = shutdown.clone();
            async move { signal.notified().await }
        })
        .on_connect_ext(|io: &GuardedIo<T>, data| {
            let handle = io.handle();
            data.insert(handle.0.files.clone());
            data.insert(handle.0.through_abort.clone());
            data.insert(handle);
        });
    if let Some(addr) = local {
        http = http.local_addr(addr);
    }
    fn_service(move |stream: T| {
        let peer = stream.peer();
        stream.tune();
        std::future::ready(Ok::<_, DispatchError>((GuardedIo::new(stream, guard), peer)))
    })
    .and_then(http.h1(app))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn client_tcp_connections_get_nodelay() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = TcpStream::connect(addr).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        assert!(!accepted.nodelay().unwrap(), "Nagle is on by default");
        accepted.tune();
        assert!(accepted.nodelay().unwrap());
    }
}
