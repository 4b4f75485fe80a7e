//! The response body relayed to the client: the backend's body streamed through, holding the
//! request's admission grant until the last byte, then recycling the backend connection.
//!
//! Hot path. Also the place a request ends: it writes the access-log line when dropped, so
//! completed, cut and aborted responses are all logged once. For an upgrade tunnel it is the
//! backend's side of the tunnel, under the tunnel's idle timeout and lifetime instead of the
//! read timeout.

use std::error::Error as StdError;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use actix_web::body::{BodySize, MessageBody};
use bytes::Bytes;

use super::access_log::AccessRecord;
use super::blame;
use super::error::ProxyError;
use super::sendfile::{FileBody, FilePiece};
use super::tunnel::Tunnel;
use super::upstream::Exchange;
use crate::cache::fill::Fill;
use crate::clock;
use crate::cluster::{ClusterHandle, Grant};
use crate::stats::TrafficStats;
use crate::transport::StallTimer;

/// A backend body in flight.
struct Streaming {
    exchange: Exchange,
    grant: Grant,
    /// Relay nothing (HEAD, 204, 304) but still read the backend's message to its end.
    discard: bool,
    timing: Timing,
    stall: StallTimer,
    /// This request has not yet counted a failure against any backend (it may count one).
    may_blame: bool,
    /// The backend switched protocols: the exchange is a tunnel with limits of its own.
    tunnel: Option<Box<Tunnel>>,
}

/// When an attempt started (for the backend's latency histogram), how long a read of its
/// response may stall, and what its backend is told if the client leaves.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub started: Instant,
    pub read_timeout: Duration,
    /// The request has not counted a failure against a backend yet.
    pub may_blame: bool,
    /// A FastCGI application is told when the client leaves (`on_client_abort: notify`).
    pub notify_abort: bool,
}

/// The body of a proxied or generated response.
pub struct RelayBody {
    /// A generated body, sent once.
    fixed: Option<Bytes>,
    streaming: Option<Streaming>,
    /// An X-Sendfile file, sent once the backend's (discarded) body has ended. Boxed: few
    /// responses have one, and every response moves this body through several layers.
    file: Option<Box<FileBody>>,
    /// The cache's copy of the backend's body, stored when it ends cleanly.
    fill: Option<Box<Fill>>,
    size: BodySize,
    cluster: Option<Arc<ClusterHandle>>,
    log: Option<Box<AccessRecord>>,
    sent: u64,
}

impl RelayBody {
    /// A generated response's body.
    pub fn fixed(text: &'static str, log: Option<Box<AccessRecord>>) -> RelayBody {
        RelayBody::once(Bytes::from_static(text.as_bytes()), None, log)
    }

    /// A generated response's computed body.
    pub fn text(text: String, log: Option<Box<AccessRecord>>) -> RelayBody {
        RelayBody::once(Bytes::from(text), None, log)
    }

    /// A stored object's body (or a range of it), counted as the cluster's traffic.
    pub fn cached(body: Bytes, cluster: Arc<ClusterHandle>, log: Option<Box<AccessRecord>>) -> RelayBody {
        cluster.admission.stats.add_bytes_out(body.len());
        RelayBody::once(body, Some(cluster), log)
    }

    /// A body sent in one piece.
    fn once(body: Bytes, cluster: Option<Arc<ClusterHandle>>, log: Option<Box<AccessRecord>>) -> RelayBody {
        let n = body.len() as u64;
        RelayBody {
            fixed: Some(body),
            streaming: None,
            file: None,
            fill: None,
            size: BodySize::Sized(n),
            cluster,
            log,
            sent: n,
        }
    }

    /// Relays the body of `exchange`; `size` is what the client is told, `discard` drops the
    /// bytes.
    pub fn upstream(
        exchange: Exchange,
        size: BodySize,
        discard: bool,
        grant: Grant,
        timing: Timing,
        cluster: Arc<ClusterHandle>,
        log: Option<Box<AccessRecord>>,
    ) -> RelayBody {
        let streaming = Streaming {
            exchange,
            grant,
            discard,
            timing,
            stall: StallTimer::default(),
            may_blame: timing.may_blame,
            tunnel: None,
        };
        RelayBody {
            fixed: None,
            streaming: Some(streaming),
            file: None,
            fill: None,
            size,
            cluster: Some(cluster),
            log,
            sent: 0,
        }
    }

    /// Sends `file` after the backend's body, which should be discarded.
    pub fn then_file(mut self, file: FileBody) -> RelayBody {
        self.file = Some(Box::new(file));
        self
    }

    /// Makes the body a tunnel's backend side (the exchange switched protocols).
    pub fn into_tunnel(mut self, tunnel: Tunnel) -> RelayBody {
        if let Some(s) = self.streaming.as_mut() {
            s.tunnel = Some(Box::new(tunnel));
        }
        self
    }

    /// Tells the access log what the client sent through a tunnel.
    fn note_tunnel_bytes(&mut self) {
        if let (Some(s), Some(log)) = (&self.streaming, self.log.as_mut()) {
            if s.tunnel.is_some() {
                log.set_bytes_in(s.exchange.tunnel_bytes_in());
            }
        }
    }

    /// Copies the backend's body into the cache as it streams.
    pub fn with_fill(mut self, fill: Fill) -> RelayBody {
        if self.is_backend_body() {
            self.fill = Some(Box::new(fill));
        }
        self
    }

    /// Whether the body is a backend's (not a generated one or an X-Sendfile file).
    pub fn is_backend_body(&self) -> bool {
        self.streaming.is_some() && self.file.is_none()
    }

    /// The backend finished its message: recycle the connection and free the capacity now.
    fn finish(&mut self) {
        self.note_tunnel_bytes();
        if let Some(fill) = self.fill.take() {
            fill.complete();
        }
        if let Some(s) = self.streaming.take() {
            let backend = s.grant.backend();
            backend.stats.record_latency(clock::elapsed_std(s.timing.started));
            s.exchange.finish(backend);
        }
    }

    /// The exchange failed mid-body: drop the connection, cut the client response, and blame
    /// the backend when it is at fault.
    fn fail(&mut self, error: &ProxyError) {
        self.note_tunnel_bytes();
        self.fill = None;
        if let Some(log) = self.log.as_mut() {
            log.failed(error);
        }
        if let Some(s) = self.streaming.take() {
            s.grant
                .backend()
                .stats
                .record_latency(clock::elapsed_std(s.timing.started));
            match &self.cluster {
                Some(cluster) if error.is_backend_failure() => {
                    log::warn!(
                        "cluster '{}': backend '{}': {error}",
                        cluster.name,
                        s.grant.backend().name
                    );
                    blame::backend_failed(s.grant, cluster, error, s.may_blame);
                }
                _ => log::info!("response cut: {error}"),
            }
        }
    }
}

impl Drop for RelayBody {
    fn drop(&mut self) {
        self.note_tunnel_bytes();
        if let Some(s) = &self.streaming {
            // The backend's answer is not over: the client left.
            if s.timing.notify_abort {
                s.exchange.notify_abort();
            }
        }
        if let Some(mut log) = self.log.take() {
            // A body dropped before its end: the client went away (or stopped reading).
            let unfinished = self.streaming.as_ref().is_some_and(|s| !s.discard) || self.file.is_some();
            if unfinished {
                log.client_aborted();
            }
            log.finish(self.sent);
        }
    }
}

impl MessageBody for RelayBody {
    type Error = Box<dyn StdError>;

    fn size(&self) -> BodySize {
        self.size
    }

    /// A body sent in one piece that nothing follows to its end (no access-log line, no
    /// backend message, file or cache fill) is handed over as plain bytes: actix-http then
    /// writes it without boxing a stream (cache hits and director's own answers).
    fn try_into_bytes(mut self) -> Result<Bytes, Self> {
        let followed =
            self.streaming.is_some() || self.file.is_some() || self.fill.is_some() || self.log.is_some();
        match self.fixed.take() {
            Some(bytes) if !followed => Ok(bytes),
            fixed => {
                self.fixed = fixed;
                Err(self)
            }
        }
    }

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.get_mut();
        if let Some(fixed) = this.fixed.take() {
            return Poll::Ready(Some(Ok(fixed)));
        }
        loop {
            let Some(s) = this.streaming.as_mut() else {
                return this.poll_file(cx);
            };
            if let Some(tunnel) = s.tunnel.as_mut() {
                let moved = this.sent + s.exchange.tunnel_bytes_in();
                if let Some(reason) = tunnel.limit_reached(cx, moved) {
                    log::debug!("backend {}: {reason}; closing it", s.grant.backend().name);
                    if let Some(log) = this.log.as_mut() {
                        log.terminate(*b"cD");
                    }
                    this.finish();
                    return Poll::Ready(None);
                }
            }
            let next = match s.exchange.poll_body(cx) {
                // The read timeout runs only once the whole request was sent: until then a
                // pause may be the client's (its body timeout covers that).
                Poll::Pending if s.exchange.request_sent() && s.tunnel.is_none() => {
                    if s.stall.expired(cx, s.timing.read_timeout) {
                        this.fail(&ProxyError::Timeout("read"));
                        return Poll::Ready(Some(Err("backend read timed out".into())));
                    }
                    return Poll::Pending;
                }
                Poll::Pending => return Poll::Pending,
                Poll::Ready(next) => next,
            };
            s.stall.progressed();
            if let (Some(Ok(data)), Some(fill)) = (&next, this.fill.as_mut()) {
                if !fill.push(data) {
                    this.fill = None; // too large: streams on, unstored
                } else if fill.is_whole() {
                    if let Some(whole) = this.fill.take() {
                        whole.complete();
                    }
                }
            }
            match next {
                None => this.finish(),
                Some(Err(e)) => {
                    this.fail(&e);
                    return Poll::Ready(Some(Err(e.to_string().into())));
                }
                Some(Ok(data)) if s.discard || data.is_empty() => continue,
                Some(Ok(data)) => {
                    let n = data.len();
                    this.sent += n as u64;
                    s.grant.backend().stats.add_bytes_out(n);
                    if let Some(c) = &this.cluster {
                        c.admission.stats.add_bytes_out(n);
                    }
                    return Poll::Ready(Some(Ok(data)));
                }
            }
        }
    }
}

impl RelayBody {
    /// The X-Sendfile file's next piece, if there is a file.
    fn poll_file(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Box<dyn StdError>>>> {
        let Some(file) = self.file.as_mut() else {
            return Poll::Ready(None);
        };
        loop {
            let piece = ready!(file.poll_next(cx));
            let n = match &piece {
                Some(Ok(FilePiece::Bytes(data))) => data.len(),
                Some(Ok(FilePiece::Sent(n))) => usize::try_from(*n).unwrap_or(usize::MAX),
                _ => 0,
            };
            self.sent += n as u64;
            if let Some(c) = &self.cluster {
                c.admission.stats.add_bytes_out(n);
            }
            match piece {
                // Sent by the connection itself: nothing for actix-http to write.
                Some(Ok(FilePiece::Sent(_))) => {}
                Some(Ok(FilePiece::Bytes(data))) => return Poll::Ready(Some(Ok(data))),
                Some(Err(e)) => {
                    self.file = None;
                    if let Some(log) = self.log.as_mut() {
                        log.terminate(*b"ID");
                    }
                    log::warn!("X-Sendfile: reading the file failed: {e}");
                    return Poll::Ready(Some(Err(e.into())));
                }
                None => {
                    self.file = None;
                    return Poll::Ready(None);
                }
            }
        }
    }
}

/// Counts a response's status at cluster and (when there is one) backend level.
pub fn record_status(cluster: &ClusterHandle, backend: Option<&crate::cluster::Backend>, status: u16) {
    cluster.admission.stats.responses.record(status);
    if let Some(b) = backend {
        b.stats.responses.record(status);
    }
}

/// Counts a generated 503/504.
pub fn record_dropped(cluster: &ClusterHandle) {
    TrafficStats::count(&cluster.admission.stats.dropped);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::access_log::AccessLog;

    #[test]
    fn a_fixed_body_nothing_follows_is_handed_over_as_bytes() {
        let body = RelayBody::fixed("not found\n", None);
        assert_eq!(body.size(), BodySize::Sized(10));
        let bytes = body.try_into_bytes().ok().expect("plain bytes");
        assert_eq!(&bytes[..], b"not found\n");
    }

    #[test]
    fn a_logged_body_stays_a_body_until_it_is_sent() {
        let (record, lines) = AccessLog::test_record();
        let body = RelayBody::fixed("hello", Some(record));
        let Err(body) = body.try_into_bytes() else {
            panic!("a logged body must not be handed over as bytes: its line is written when it ends");
        };
        assert!(lines.try_recv().is_err(), "no line before the body is done");
        drop(body);
        let line = lines.try_recv().expect("the line is written when the body goes");
        assert!(line.contains(" 5 "), "bytes sent are logged: {line}");
    }
}
