//! The response body relayed to the client: the backend's body streamed through, holding the
//! request's admission grant until the last byte, then recycling the backend connection.
//!
//! Hot path. Also the place a request ends: it writes the access-log line when dropped, so
//! completed, cut and aborted responses are all logged once.

use std::error::Error as StdError;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use actix_web::body::{BodySize, MessageBody};
use bytes::Bytes;
use http_body::Body;
use hyper::body::Incoming;

use super::access_log::AccessRecord;
use super::fcgi_forward::{self, Exchange};
use super::h1_client::{self, RawConn};
use super::http_forward::{self, Connection};
use super::sendfile::FileBody;
use crate::cluster::{ClusterHandle, Grant};
use crate::proto::http1::{Chunk, ChunkedDecoder, Framing};
use crate::stats::TrafficStats;
use crate::transport::StallTimer;

/// Where the backend's body comes from.
pub enum Source {
    /// hyper's client (requests with a body).
    Hyper {
        incoming: Incoming,
        connection: Connection,
    },
    /// The lean client: read from the connection here, framed by `framing`.
    Raw {
        conn: RawConn,
        framing: Framing,
        chunked: ChunkedDecoder,
        keep_alive: bool,
    },
    /// A FastCGI exchange's STDOUT after the header block.
    FastCgi {
        exchange: Box<Exchange>,
        /// Body bytes that came with the header block, relayed first.
        pending: Bytes,
        /// Bytes still due by the application's `Content-Length`, if it sent one.
        remaining: Option<u64>,
    },
}

/// A backend body in flight.
struct Streaming {
    source: Source,
    grant: Grant,
    /// Relay nothing (HEAD, 204, 304) but still read the backend's message to its end.
    discard: bool,
    timing: Timing,
    stall: StallTimer,
}

/// When an attempt started (for the backend's latency histogram) and how long a read of its
/// response may stall.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub started: Instant,
    pub read_timeout: Duration,
}

/// The body of a proxied or generated response.
pub struct RelayBody {
    /// A generated body, sent once.
    fixed: Option<Bytes>,
    streaming: Option<Streaming>,
    /// An X-Sendfile file, sent once the backend's (discarded) body has ended.
    file: Option<FileBody>,
    size: BodySize,
    cluster: Option<Arc<ClusterHandle>>,
    log: Option<Box<AccessRecord>>,
    sent: u64,
}

impl RelayBody {
    /// A generated response's body.
    pub fn fixed(text: &'static str, log: Option<Box<AccessRecord>>) -> RelayBody {
        let size = BodySize::Sized(text.len() as u64);
        RelayBody {
            fixed: Some(Bytes::from_static(text.as_bytes())),
            streaming: None,
            file: None,
            size,
            cluster: None,
            log,
            sent: text.len() as u64,
        }
    }

    /// Relays `source`; `size` is what the client is told, `discard` drops the bytes.
    pub fn upstream(
        source: Source,
        size: BodySize,
        discard: bool,
        grant: Grant,
        timing: Timing,
        cluster: Arc<ClusterHandle>,
        log: Option<Box<AccessRecord>>,
    ) -> RelayBody {
        let streaming = Streaming {
            source,
            grant,
            discard,
            timing,
            stall: StallTimer::default(),
        };
        RelayBody {
            fixed: None,
            streaming: Some(streaming),
            file: None,
            size,
            cluster: Some(cluster),
            log,
            sent: 0,
        }
    }

    /// Sends `file` after the backend's body, which should be discarded.
    pub fn then_file(mut self, file: FileBody) -> RelayBody {
        self.file = Some(file);
        self
    }

    /// The backend finished its message: recycle the connection and free the capacity now.
    fn finish(&mut self) {
        if let Some(s) = self.streaming.take() {
            let backend = s.grant.backend();
            backend.stats.record_latency(s.timing.started.elapsed());
            match s.source {
                Source::Hyper { connection, .. } => http_forward::recycle(backend, connection),
                Source::Raw {
                    conn,
                    keep_alive: true,
                    ..
                } if conn.buf.is_empty() => h1_client::recycle(backend, conn),
                Source::Raw { .. } => {}
                Source::FastCgi { exchange, .. } => fcgi_forward::recycle(*exchange),
            }
        }
    }

    /// The backend failed mid-body: blame it, drop the connection, cut the client response.
    fn fail(&mut self, reason: String) {
        if let Some(s) = self.streaming.take() {
            s.grant.backend().stats.record_latency(s.timing.started.elapsed());
            s.grant.backend().report_failure(reason);
            if let Some(c) = &self.cluster {
                TrafficStats::count(&c.admission.stats.failures);
            }
            s.grant.fail();
        }
    }
}

impl Drop for RelayBody {
    fn drop(&mut self) {
        if let Some(log) = self.log.take() {
            log.finish(self.sent);
        }
    }
}

impl Streaming {
    /// The next piece of body from the backend; `None` at its end.
    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, String>>> {
        match &mut self.source {
            Source::Hyper { incoming, .. } => loop {
                match ready!(Pin::new(&mut *incoming).poll_frame(cx)) {
                    None => return Poll::Ready(None),
                    Some(Err(e)) => return Poll::Ready(Some(Err(format!("response body failed: {e}")))),
                    // Trailers are dropped.
                    Some(Ok(frame)) => match frame.into_data() {
                        Ok(data) => return Poll::Ready(Some(Ok(data))),
                        Err(_) => continue,
                    },
                }
            },
            Source::Raw {
                conn,
                framing,
                chunked,
                ..
            } => loop {
                let data = match framing {
                    Framing::None | Framing::Length(0) => return Poll::Ready(None),
                    Framing::Length(left) if !conn.buf.is_empty() => {
                        let n = conn.buf.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                        *left -= n as u64;
                        Some(conn.buf.split_to(n).freeze())
                    }
                    Framing::UntilClose if !conn.buf.is_empty() => Some(conn.buf.split().freeze()),
                    Framing::Chunked => match chunked.decode(&mut conn.buf) {
                        Ok(Chunk::Data(data)) => Some(data),
                        Ok(Chunk::Done) => return Poll::Ready(None),
                        Ok(Chunk::NeedMore) => None,
                        Err(e) => return Poll::Ready(Some(Err(e.to_string()))),
                    },
                    Framing::Length(_) | Framing::UntilClose => None,
                };
                if let Some(data) = data {
                    return Poll::Ready(Some(Ok(data)));
                }
                conn.buf.reserve(16 * 1024);
                match ready!(tokio_util::io::poll_read_buf(
                    Pin::new(&mut conn.io),
                    cx,
                    &mut conn.buf
                )) {
                    Ok(0) if *framing == Framing::UntilClose => return Poll::Ready(None),
                    Ok(0) => return Poll::Ready(Some(Err("backend closed the connection mid-body".into()))),
                    Ok(_) => {}
                    Err(e) => return Poll::Ready(Some(Err(format!("reading the response body: {e}")))),
                }
            },
            Source::FastCgi {
                exchange,
                pending,
                remaining,
            } => {
                let next = if pending.is_empty() {
                    ready!(exchange.poll_stdout(cx))
                } else {
                    Some(Ok(std::mem::take(pending)))
                };
                Poll::Ready(match next {
                    None if remaining.is_some_and(|n| n > 0) => {
                        Some(Err("FastCGI response shorter than its Content-Length".to_owned()))
                    }
                    None => None,
                    Some(Ok(data)) => {
                        if let Some(n) = remaining {
                            *n = n.saturating_sub(data.len() as u64);
                        }
                        Some(Ok(data))
                    }
                    Some(Err(e)) => Some(Err(e.to_string())),
                })
            }
        }
    }
}

impl MessageBody for RelayBody {
    type Error = Box<dyn StdError>;

    fn size(&self) -> BodySize {
        self.size
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
            let next = match s.poll_data(cx) {
                Poll::Pending => {
                    if s.stall.expired(cx, s.timing.read_timeout) {
                        this.fail("read timed out mid-response".to_owned());
                        return Poll::Ready(Some(Err("backend read timed out".into())));
                    }
                    return Poll::Pending;
                }
                Poll::Ready(next) => next,
            };
            s.stall.progressed();
            match next {
                None => this.finish(),
                Some(Err(reason)) => {
                    this.fail(reason.clone());
                    return Poll::Ready(Some(Err(reason.into())));
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
        match ready!(file.poll_next(cx)) {
            Some(Ok(data)) => {
                let n = data.len();
                self.sent += n as u64;
                if let Some(c) = &self.cluster {
                    c.admission.stats.add_bytes_out(n);
                }
                Poll::Ready(Some(Ok(data)))
            }
            Some(Err(e)) => {
                self.file = None;
                log::warn!("X-Sendfile: reading the file failed: {e}");
                Poll::Ready(Some(Err(e.into())))
            }
            None => {
                self.file = None;
                Poll::Ready(None)
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
