//! Protocol upgrades (WebSocket and any other `Upgrade` a backend accepts) over HTTP/1.1: which
//! requests ask for one, and the limits and statistics of the tunnel a `101` opens.
//!
//! Hot path. A request that asks to upgrade (see [`asks_upgrade`]) is forwarded with its
//! `Connection: upgrade` and `Upgrade` fields; its bytes after the head (actix-http reads them
//! as one stream, the request's payload) are held back. If the HTTP backend answers `101`, the
//! `101` is relayed and the exchange turns into a tunnel: the payload goes to the backend as it
//! comes, the backend's bytes are the response body, written raw (no chunking). The tunnel
//! lives in the ordinary response body, so the client connection's guard sees a request being
//! served: no head deadline, no head scanning, the send timeout still on. It ends when either
//! side closes, after `idle_timeout` without a byte either way, or at `max_lifetime`; the
//! backend connection is never pooled again, and the client connection closes with it. Any
//! other answer is relayed as a normal response, after which the client connection closes (its
//! unread payload leaves no way to find the next request).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Context;
use std::time::Duration;

use actix_web::http::{header as ax, Version};
use actix_web::HttpRequest;
use tokio::time::{sleep, Sleep};

use crate::cluster::{Backend, ClusterHandle, Grant};
use crate::config::UpgradesConfig;
use crate::proto::http_headers as rules;
use crate::transport::StallTimer;

/// Whether `req` asks to switch protocols in a way director relays: HTTP/1.1, `Connection:
/// upgrade` with an `Upgrade` protocol (not `h2c`), and no request body. The vendored
/// actix-http reads exactly such requests' following bytes as a stream (`vendor/README.md`).
pub fn asks_upgrade(req: &HttpRequest) -> bool {
    let headers = req.headers();
    req.version() == Version::HTTP_11
        && headers.contains_key(ax::UPGRADE)
        && !headers.contains_key(ax::TRANSFER_ENCODING)
        && headers
            .get(ax::CONTENT_LENGTH)
            .is_none_or(|v| v.as_bytes().trim_ascii() == b"0")
        && rules::requests_upgrade(
            headers.get_all(ax::CONNECTION).map(|v| v.as_bytes()),
            headers.get_all(ax::UPGRADE).map(|v| v.as_bytes()),
        )
}

/// An open tunnel: its limits, and its place in the tunnel statistics.
pub struct Tunnel {
    idle_timeout: Duration,
    idle: StallTimer,
    lifetime: Option<Pin<Box<Sleep>>>,
    /// Bytes moved either way when last looked at.
    moved: u64,
    _open: OpenTunnel,
}

impl Tunnel {
    /// Opens a tunnel on the backend of `grant`; unless the cluster holds capacity for
    /// tunnels, the grant's capacity is given back now.
    pub fn open(settings: &UpgradesConfig, cluster: &Arc<ClusterHandle>, grant: &mut Grant) -> Tunnel {
        if !settings.hold_capacity {
            grant.release();
        }
        Tunnel {
            idle_timeout: settings.idle_timeout,
            idle: StallTimer::default(),
            lifetime: settings.max_lifetime.map(|d| Box::pin(sleep(d))),
            moved: 0,
            _open: OpenTunnel::new(cluster.clone(), grant.backend().clone()),
        }
    }

    /// Whether a limit ends the tunnel, given the bytes moved either way so far; until then
    /// the task is woken when one could.
    pub fn limit_reached(&mut self, cx: &mut Context<'_>, moved: u64) -> Option<&'static str> {
        if self
            .lifetime
            .as_mut()
            .is_some_and(|l| l.as_mut().poll(cx).is_ready())
        {
            return Some("tunnel reached its max_lifetime");
        }
        if moved != self.moved {
            self.moved = moved;
            self.idle.progressed();
        }
        self.idle
            .expired(cx, self.idle_timeout)
            .then_some("tunnel idle for idle_timeout")
    }
}

/// Counts a tunnel as open at cluster and backend level while it lives.
struct OpenTunnel {
    cluster: Arc<ClusterHandle>,
    backend: Arc<Backend>,
}

impl OpenTunnel {
    fn new(cluster: Arc<ClusterHandle>, backend: Arc<Backend>) -> OpenTunnel {
        cluster.admission.stats.tunnels.inc();
        backend.stats.tunnels.inc();
        OpenTunnel { cluster, backend }
    }
}

impl Drop for OpenTunnel {
    fn drop(&mut self) {
        self.cluster.admission.stats.tunnels.dec();
        self.backend.stats.tunnels.dec();
    }
}
