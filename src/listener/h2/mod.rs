//! HTTP/2 to clients: [`serve_h2`] serves one accepted stream (plain h2c, or TLS once ALPN chose
//! `h2`) as HTTP/2 through the same app service — the same pipeline — as HTTP/1.1.
//!
//! It is h2's server (the crate actix-http's own HTTP/2 support uses) driven here instead of by
//! actix-http's HTTP/2 dispatcher, for what that dispatcher lacks:
//!
//! - a stream the client resets (`RST_STREAM`, or the connection failing) ends its request as
//!   a client that leaves ends an HTTP/1 request: its future or response body is dropped, which
//!   frees its admission grant and backend connection, unless its cluster says
//!   `on_client_abort: ignore` (then it goes on and its answer is read to the end and dropped);
//! - the connection's limits: the HTTP/2 handshake must finish within `client_timeout`, a
//!   connection without open streams closes (GOAWAY) after `keep_alive`, a stream whose
//!   client grants no flow-control window for `send_timeout` is reset, and streams and header
//!   lists are bounded ([`H2Settings`]);
//! - per-stream data: each request gets its own [`ThroughAbort`] flag in its extensions; the
//!   connection data of HTTP/1 (the guard's handle, the `sendfile(2)` sink) is absent, so
//!   X-Sendfile streams the file's bytes through the response body.
//!
//! Flow control: a response body is polled for its next chunk only once the previous one was
//! handed to h2 within the window the client granted, so a slow reader holds at most one chunk
//! and its window, and director stops reading the backend (see `stream`). Request bodies
//! release window only as director takes their chunks.
//!
//! Hot path; one worker thread per connection (`Rc`, `spawn_local` per stream).

mod preface;
mod stream;

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix_http::body::{BoxBody, MessageBody};
use actix_http::error::DispatchError;
use actix_http::{Request, Response};
use actix_server::GracefulShutdownSignal;
use actix_service::Service;
use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Notify;
use tokio::time::{sleep_until, timeout, Instant};

pub(super) use preface::sent as preface_sent;
pub use preface::Preface;

use super::https_policy::HttpsPolicy;
use crate::config::ProxyConfig;

/// Each stream's receive window: how much of a request body a client may send ahead of
/// director taking it (h2's default is 64 KiB, slow for uploads over a long path).
const STREAM_WINDOW: u32 = 256 * 1024;
/// The connection's receive window, shared by its streams' request bodies.
const CONNECTION_WINDOW: u32 = 1024 * 1024;

/// The limits of an HTTP/2 client connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct H2Settings {
    /// Streams a client may have open at once (`SETTINGS_MAX_CONCURRENT_STREAMS`).
    pub max_concurrent_streams: u32,
    /// Largest header list a client may send (`SETTINGS_MAX_HEADER_LIST_SIZE`, counted as
    /// HTTP/2 does: each field's name and value plus 32); larger ones get `431`.
    pub max_header_list_size: u32,
    /// Longest `METHOD SP target SP HTTP/1.1` a request may amount to (`414` beyond), measured
    /// as for HTTP/1.
    pub max_request_line: usize,
    /// From the accept (or the end of the TLS handshake) until the client's preface and
    /// settings are in, and then until its first request; also how long a closing connection
    /// may take to say goodbye.
    pub handshake_timeout: Duration,
    /// A connection without open streams for this long is closed (GOAWAY).
    pub idle_timeout: Duration,
    /// Longest a response may wait for the client to grant flow-control window (or to read
    /// what was sent) before its stream is reset.
    pub send_timeout: Duration,
}

impl H2Settings {
    /// The limits `proxy:` sets: its client timeouts and head limits, and
    /// `http2_max_concurrent_streams`.
    pub fn from_config(proxy: &ProxyConfig) -> H2Settings {
        H2Settings {
            max_concurrent_streams: proxy.http2_max_concurrent_streams,
            max_header_list_size: u32::try_from(proxy.max_header_size).unwrap_or(u32::MAX),
            max_request_line: proxy.max_request_line,
            handshake_timeout: proxy.client_timeout,
            idle_timeout: proxy.keep_alive,
            send_timeout: proxy.send_timeout,
        }
    }
}

/// Serves the accepted stream `io` as HTTP/2 with `app` (one worker's app service, shared by
/// its connections) until the client closes, the connection idles out, or `shutdown` fires
/// (then GOAWAY, and the streams in flight finish). `peer` is the client's address, `policy`
/// its listener's redirect / HSTS policy (in each request's extensions).
///
/// Each request runs on a task of its own (`spawn_local`), so this must run inside a
/// `LocalSet` (an actix worker).
pub async fn serve_h2<T, S, B>(
    io: T,
    peer: Option<SocketAddr>,
    app: Rc<S>,
    settings: H2Settings,
    shutdown: Option<GracefulShutdownSignal>,
    policy: Option<Arc<HttpsPolicy>>,
) -> Result<(), DispatchError>
where
    T: AsyncRead + AsyncWrite + Unpin + 'static,
    S: Service<Request> + 'static,
    S::Error: Into<Response<BoxBody>>,
    S::Response: Into<Response<B>>,
    B: MessageBody + 'static,
{
    let mut builder = h2::server::Builder::new();
    builder
        .max_concurrent_streams(settings.max_concurrent_streams)
        .max_header_list_size(settings.max_header_list_size)
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW);
    let mut conn = match timeout(settings.handshake_timeout, builder.handshake::<_, Bytes>(io)).await {
        Ok(conn) => conn.map_err(DispatchError::H2)?,
        Err(_) => {
            log::debug!("HTTP/2 handshake timed out");
            return Ok(());
        }
    };
    let streams = Rc::new(OpenStreams::default());
    let shutdown = async move {
        match shutdown {
            Some(signal) => signal.notified().await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(shutdown);
    // When the connection was told to close (GOAWAY sent): the streams in flight finish, and a
    // connection left without any gets `handshake_timeout` to flush its goodbye.
    let mut closing: Option<Instant> = None;
    loop {
        let open = streams.open.get();
        let idle_since = streams.idle_since.get();
        // Until its first request a client has `handshake_timeout` (as an HTTP/1 client has
        // for its first head), then `idle_timeout` between requests.
        let idle_at = idle_since
            + match streams.served.get() {
                true => settings.idle_timeout,
                false => settings.handshake_timeout,
            };
        let gone_at = closing.unwrap_or(idle_since).max(idle_since) + settings.handshake_timeout;
        tokio::select! {
            next = conn.accept() => match next {
                Some(Ok((req, respond))) => {
                    let open = streams.opened();
                    let policy = policy.clone();
                    tokio::task::spawn_local(stream::serve(req, respond, app.clone(), peer, settings, open, policy));
                }
                Some(Err(e)) => {
                    log::debug!("HTTP/2 connection failed: {e}");
                    return Ok(());
                }
                None => return Ok(()),
            },
            () = streams.ended.notified(), if open > 0 => {}
            () = sleep_until(idle_at), if open == 0 && closing.is_none() => {
                conn.graceful_shutdown();
                closing = Some(Instant::now());
            }
            () = &mut shutdown, if closing.is_none() => {
                conn.graceful_shutdown();
                closing = Some(Instant::now());
            }
            () = sleep_until(gone_at), if open == 0 && closing.is_some() => return Ok(()),
        }
    }
}

/// The streams of one connection being served, for its idle timeout.
struct OpenStreams {
    open: Cell<usize>,
    /// A stream was opened.
    served: Cell<bool>,
    /// When the last stream ended (or the connection began).
    idle_since: Cell<Instant>,
    /// Wakes the connection when a stream ends.
    ended: Notify,
}

impl Default for OpenStreams {
    fn default() -> Self {
        OpenStreams {
            open: Cell::new(0),
            served: Cell::new(false),
            idle_since: Cell::new(Instant::now()),
            ended: Notify::new(),
        }
    }
}

impl OpenStreams {
    fn opened(self: &Rc<Self>) -> OpenStream {
        self.open.set(self.open.get() + 1);
        self.served.set(true);
        OpenStream(self.clone())
    }
}

/// One stream being served; its drop counts it off.
struct OpenStream(Rc<OpenStreams>);

impl Drop for OpenStream {
    fn drop(&mut self) {
        let streams = &self.0;
        let open = streams.open.get().saturating_sub(1);
        streams.open.set(open);
        if open == 0 {
            streams.idle_since.set(Instant::now());
            streams.ended.notify_one();
        }
    }
}
