//! Building an HTTP/1 server whose connections run under the connection guard: what
//! actix-web's `HttpServer` does (actix-server workers, actix-http's HTTP/1 service, graceful
//! shutdown, signals), with each accepted TCP or UNIX stream — after the TLS handshake on a
//! TLS listener — wrapped in a [`GuardedIo`] before actix-http sees it. HTTP/2 clients — ALPN
//! `h2` on a TLS listener, the h2c preface on a plain one with h2c on — are served by `h2`,
//! through the same app service, without the guard.
//!
//! Start-up only; the service it builds runs on each worker.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix_http::body::MessageBody;
use actix_http::error::DispatchError;
use actix_http::{HttpService, KeepAlive, Request, Response};
use actix_server::{GracefulShutdownSignal, Server, ServerBuilder};
use actix_service::{
    fn_factory, fn_service, map_config, IntoServiceFactory, Service, ServiceFactory, ServiceFactoryExt,
};
use actix_web::dev::AppConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::TlsAcceptor;

use super::client_stream::{handshake, ClientStream};
use super::conn::GuardSettings;
use super::h2::{self, serve_h2, H2Settings, Preface};
use super::https_policy::HttpsPolicy;
use super::io::{FileTarget, GuardedIo};
use super::tls::{ALPN_H2, ALPN_HTTP1};
use super::{stopping, Bound, Listener};
use crate::clock;

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
    /// HTTP/2's limits; `None`: HTTP/1 only.
    pub h2: Option<H2Settings>,
    /// TLS listeners offer HTTP/2 in ALPN (needs `h2`).
    pub http2: bool,
    /// Plain listeners also serve clients that open with HTTP/2's preface (h2c prior
    /// knowledge; needs `h2`).
    pub h2c: bool,
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
    listeners: Vec<Bound>,
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
    let h2_tls = options.h2.filter(|_| options.http2);
    for bound in listeners {
        let factory = factory.clone();
        let shutdown = shutdown.clone();
        let listener = ListenerSetup {
            guard: options.guard,
            shutdown,
            tls: bound
                .tls
                .map(|tls| TlsAcceptor::from(offer_alpn(tls, h2_tls.is_some()))),
            policy: bound.policy.is_active().then(|| Arc::new(bound.policy)),
            h2: h2_tls,
            h2c: options.h2.filter(|_| options.h2c),
        };
        builder = match bound.socket {
            Listener::Tcp(l) => {
                let addr = l.local_addr()?;
                builder.listen(format!("director-{addr}"), l, move || {
                    let app = app_service(factory(), addr, listener.tls.is_some());
                    serve::<TcpStream, _, _>(app, listener.clone(), Some(addr))
                })?
            }
            Listener::Unix(l) => {
                let name = format!("director-{:?}", l.local_addr()?);
                // What actix-web's HttpServer reports as the local address of a UNIX listener.
                let addr = SocketAddr::from(([127, 0, 0, 1], 8080));
                builder.listen_uds(name, l, move || {
                    let app = app_service(factory(), addr, listener.tls.is_some());
                    serve::<UnixStream, _, _>(app, listener.clone(), None)
                })?
            }
        };
    }
    Ok(builder.run())
}

/// `tls` offering `h2` before `http/1.1` in ALPN when HTTP/2 is on (the certificates, picked
/// by a shared resolver, stay the ones that reload).
fn offer_alpn(tls: Arc<rustls::ServerConfig>, h2: bool) -> Arc<rustls::ServerConfig> {
    if !h2 {
        return tls;
    }
    let mut config = (*tls).clone();
    config.alpn_protocols = [ALPN_H2, ALPN_HTTP1].iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// What each connection of one listener is served with, besides its app.
#[derive(Clone)]
struct ListenerSetup {
    guard: GuardSettings,
    shutdown: GracefulShutdownSignal,
    /// The listener terminates TLS.
    tls: Option<TlsAcceptor>,
    /// Its redirect / HSTS policy, when it has one (connection data of each connection, or
    /// each HTTP/2 request's extensions).
    policy: Option<Arc<HttpsPolicy>>,
    /// HTTP/2 on a TLS listener (ALPN `h2`), with these limits.
    h2: Option<H2Settings>,
    /// HTTP/2 on a plain listener for clients that open with its preface (h2c).
    h2c: Option<H2Settings>,
}

/// The app as actix-http's service: errors turned into responses, configured as listening
/// on `addr` (for `HttpRequest::app_config`, e.g. FastCGI's `SERVER_PORT`), over TLS when
/// `secure` (`app_config().secure()`: `X-Forwarded-Proto`, FastCGI's `HTTPS`).
fn app_service<I, S, B>(
    app: I,
    addr: SocketAddr,
    secure: bool,
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
    let config = AppConfig::__priv_test_new(secure, addr.to_string(), addr);
    map_config(app, move |_| config.clone())
}

/// Serves each accepted stream: over TLS, the handshake first (within `client_timeout`), then
/// the protocol ALPN chose; on a plain listener with h2c on, HTTP/2 for a client that opens
/// with its preface. HTTP/1 streams are wrapped in the connection guard and served with
/// actix-http's HTTP/1 dispatcher (each connection's guard state becomes its requests'
/// connection data); HTTP/2 ones by `h2`. One app service per worker and listener serves both.
fn serve<T, S, B>(
    app: S,
    listener: ListenerSetup,
    local: Option<SocketAddr>,
) -> impl ServiceFactory<T, Config = (), Response = (), Error = DispatchError, InitError = ()>
where
    T: Accepted + Preface,
    S: ServiceFactory<Request, Config = ()> + 'static,
    S::Service: 'static,
    S::Error: Into<Response<actix_http::body::BoxBody>> + 'static,
    S::InitError: fmt::Debug,
    S::Response: Into<Response<B>> + 'static,
    <S::Service as Service<Request>>::Future: 'static,
    B: MessageBody + 'static,
{
    let listener = Rc::new(listener);
    let app = Rc::new(app);
    fn_factory(move || {
        let (listener, app) = (listener.clone(), app.clone());
        async move {
            let app = Rc::new(app.new_service(()).await.map_err(|e| {
                log::error!("the app service did not start: {e:?}");
            })?);
            let shared = app.clone();
            let shared = fn_factory(move || std::future::ready(Ok::<_, ()>(Rc::clone(&shared))));
            let h1 = h1_service::<ClientStream<T>, _, B>(shared, &listener, local);
            let h1 = Rc::new(h1.new_service(()).await?);
            Ok(fn_service(move |stream: T| {
                let conn = Conn {
                    h1: h1.clone(),
                    app: app.clone(),
                    listener: listener.clone(),
                    peer: stream.peer(),
                };
                stream.tune();
                // Every poll of the connection reads the clock once for all the timestamps
                // its requests take during it (src/clock.rs).
                clock::PerPoll::new(async move {
                    // Boxed below: a plain HTTP/1 connection's future does not carry the
                    // state of a TLS handshake or an HTTP/2 connection (an idle keep-alive
                    // connection keeps its future for its life).
                    match (conn.listener.tls.clone(), conn.listener.h2c) {
                        (None, None) => conn.h1(ClientStream::Plain(stream)).await,
                        (None, Some(settings)) => Box::pin(conn.h2c_or_h1(stream, settings)).await,
                        (Some(acceptor), _) => Box::pin(conn.tls(acceptor, stream)).await,
                    }
                })
            }))
        }
    })
}

/// One accepted connection and what serves it.
struct Conn<H, A> {
    h1: Rc<H>,
    app: Rc<A>,
    listener: Rc<ListenerSetup>,
    peer: Option<SocketAddr>,
}

impl<H, A> Conn<H, A> {
    /// HTTP/1 under the connection guard.
    async fn h1<T>(self, stream: ClientStream<T>) -> Result<(), DispatchError>
    where
        H: Service<(GuardedIo<ClientStream<T>>, Option<SocketAddr>), Response = (), Error = DispatchError>,
        T: AsyncRead + AsyncWrite + Unpin,
    {
        let io = GuardedIo::new(stream, self.listener.guard);
        self.h1.call((io, self.peer)).await
    }

    /// HTTP/2 through the same app service.
    async fn h2<T, B>(self, stream: T, settings: H2Settings) -> Result<(), DispatchError>
    where
        T: AsyncRead + AsyncWrite + Unpin + 'static,
        A: Service<Request> + 'static,
        A::Error: Into<Response<actix_http::body::BoxBody>>,
        A::Response: Into<Response<B>>,
        B: MessageBody + 'static,
    {
        let shutdown = Some(self.listener.shutdown.clone());
        let policy = self.listener.policy.clone();
        serve_h2(stream, self.peer, self.app, settings, shutdown, policy).await
    }

    /// A plain connection with h2c on: HTTP/2 when the client opens with its preface.
    async fn h2c_or_h1<T, B>(self, stream: T, settings: H2Settings) -> Result<(), DispatchError>
    where
        H: Service<(GuardedIo<ClientStream<T>>, Option<SocketAddr>), Response = (), Error = DispatchError>,
        T: AsyncRead + AsyncWrite + Preface + Unpin + 'static,
        A: Service<Request> + 'static,
        A::Error: Into<Response<actix_http::body::BoxBody>>,
        A::Response: Into<Response<B>>,
        B: MessageBody + 'static,
    {
        match h2::preface_sent(&stream, settings.handshake_timeout).await {
            Some(true) => self.h2(stream, settings).await,
            Some(false) => self.h1(ClientStream::Plain(stream)).await,
            // Silent for the head deadline: closed as the guard closes it.
            None => Ok(()),
        }
    }

    /// A TLS connection: the handshake within `client_timeout`, then the service of the
    /// protocol ALPN chose.
    async fn tls<T, B>(self, acceptor: TlsAcceptor, stream: T) -> Result<(), DispatchError>
    where
        H: Service<(GuardedIo<ClientStream<T>>, Option<SocketAddr>), Response = (), Error = DispatchError>,
        T: AsyncRead + AsyncWrite + Unpin + 'static,
        A: Service<Request> + 'static,
        A::Error: Into<Response<actix_http::body::BoxBody>>,
        A::Response: Into<Response<B>>,
        B: MessageBody + 'static,
    {
        let Some(tls) = handshake(&acceptor, stream, self.listener.guard.client_timeout).await else {
            return Ok(());
        };
        // The one place where the protocol ALPN chose picks the service.
        match (tls.get_ref().1.alpn_protocol(), self.listener.h2) {
            (None | Some(ALPN_HTTP1), _) => self.h1(ClientStream::Tls(Box::new(tls))).await,
            (Some(ALPN_H2), Some(settings)) => self.h2(tls, settings).await,
            (Some(other), _) => {
                let other = String::from_utf8_lossy(other);
                log::debug!("tls: ALPN chose `{other}`, which is not served; closing");
                Ok(())
            }
        }
    }
}

/// actix-http's HTTP/1 service over guarded streams of type `T`.
fn h1_service<T, S, B>(
    app: S,
    listener: &ListenerSetup,
    local: Option<SocketAddr>,
) -> impl ServiceFactory<
    (GuardedIo<T>, Option<SocketAddr>),
    Config = (),
    Response = (),
    Error = DispatchError,
    InitError = (),
>
where
    T: AsyncRead + AsyncWrite + FileTarget + Unpin + 'static,
    S: ServiceFactory<Request, Config = ()> + 'static,
    S::Error: Into<Response<actix_http::body::BoxBody>> + 'static,
    S::InitError: fmt::Debug,
    S::Response: Into<Response<B>> + 'static,
    <S::Service as Service<Request>>::Future: 'static,
    B: MessageBody + 'static,
{
    let guard = listener.guard;
    let shutdown = listener.shutdown.clone();
    let policy = listener.policy.clone();
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
        .graceful_shutdown_signal(move || stopping::stopped(&shutdown))
        .on_connect_ext(move |io: &GuardedIo<T>, data| {
            let handle = io.handle();
            if io.stream().sends_files() {
                data.insert(handle.0.files.clone());
            }
            data.insert(handle.0.through_abort.clone());
            data.insert(handle);
            if let Some(policy) = &policy {
                data.insert(policy.clone());
            }
        });
    if let Some(addr) = local {
        http = http.local_addr(addr);
    }
    http.h1(app)
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
