//! Client-facing listeners: binding them, the client connection guard, and building the HTTP
//! servers of the proxy and admin listeners on top of it.
//!
//! The guard is what HAProxy's `timeout http-request` / `timeout http-keep-alive` and nginx's
//! `send_timeout` / `large_client_header_buffers` are to them, beneath actix-http:
//!
//! - every request head of a keep-alive connection must be complete within `client_timeout`
//!   of its first byte (or of the accept), else `408` and close;
//! - a connection idle between requests is closed after `keep_alive`;
//! - a write to the client that makes no progress for `send_timeout` fails the connection,
//!   which drops the response body and so frees its backend slot and backend connection;
//! - a request line over `max_request_line` gets `414`, a header section over
//!   `max_header_size` gets `431`, both written by the guard, then the connection closes;
//! - each worker serves at most its share of `max_connections` at once;
//! - a client that leaves (closes its side, or its connection fails) ends the request being
//!   served, unless that request's cluster says `on_client_abort: ignore`: then the guard
//!   hides the client's end from actix-http and drops what is written to it until the
//!   request is over, so the backend finishes (nginx's `proxy_ignore_client_abort`).
//!
//! A WebSocket or other upgrade tunnel (`proxy::tunnel`) is the body of the response to its
//! request, so the guard sees a request being served for the tunnel's whole life: its bytes
//! are not scanned as heads and no head or idle deadline applies; the send timeout does. The
//! tunnel's own idle timeout and lifetime are the tunnel's business.
//!
//! HTTP/2 connections ([`h2`]) are not wrapped in the guard (it reads HTTP/1 heads): they have
//! limits of their own, from the same settings.
//!
//! [`io`] is the IO wrapper, [`head_scan`] finds head ends and sizes, [`conn`] is what a
//! connection shares with its requests (and the request-side API), [`server`] builds the
//! actix-server `Server`, [`limits`] handles the open-file limit. [`client_stream`] is the
//! plain-or-TLS stream beneath the guard, [`tls`] the certificates a TLS listener serves (SNI,
//! reload), [`https_policy`] `redirect_to_https` and HSTS. Hot path except `server`, `tls`
//! and `limits` (start-up, reload).

pub mod cert_watch;
pub mod client_stream;
pub mod conn;
pub mod h2;
pub mod head_scan;
pub mod https_policy;
pub mod io;
pub mod limits;
pub mod server;
mod stopping;
pub mod tls;

use std::os::unix::fs::FileTypeExt;

use socket2::{Domain, Socket, Type};

pub use conn::{
    guarded, refuse_oversized, request_started, track_requests, GuardSettings, InFlightBody, RequestInFlight,
};
pub use h2::{serve_h2, H2Settings};
pub use https_policy::HttpsPolicy;
pub use server::{http_server, ServerOptions};

use crate::config::ListenAddr;

/// Pending connections the kernel queues per listener while director is not accepting.
pub const BACKLOG: i32 = 4096;

/// A bound listening socket.
#[derive(Debug)]
pub enum Listener {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener),
}

/// A bound listener and what it serves on top of plain HTTP.
pub struct Bound {
    pub socket: Listener,
    /// TLS termination (the rustls configuration of its certificates).
    pub tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    pub policy: HttpsPolicy,
}

impl Bound {
    /// A plain listener without a policy.
    pub fn plain(socket: Listener) -> Bound {
        Bound {
            socket,
            tls: None,
            policy: HttpsPolicy::default(),
        }
    }
}

/// Binds `addr`; returns the listener and its actual address (the port the OS chose for
/// `:0`). A stale UNIX socket file left by a previous run is replaced.
pub fn bind(addr: &ListenAddr) -> std::io::Result<(Listener, ListenAddr)> {
    match addr {
        ListenAddr::Tcp(sa) => {
            let socket = Socket::new(Domain::for_address(*sa), Type::STREAM, None)?;
            socket.set_reuse_address(true)?;
            if sa.is_ipv6() {
                socket.set_only_v6(true)?;
            }
            socket.bind(&(*sa).into())?;
            socket.listen(BACKLOG)?;
            let listener: std::net::TcpListener = socket.into();
            let local = listener.local_addr()?;
            Ok((Listener::Tcp(listener), ListenAddr::Tcp(local)))
        }
        ListenAddr::Unix(path) => {
            if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
                std::fs::remove_file(path)?;
            }
            let listener = std::os::unix::net::UnixListener::bind(path)?;
            Ok((Listener::Unix(listener), addr.clone()))
        }
    }
}
