//! The client's request body, streamed chunk by chunk to the backend of each attempt.
//!
//! Hot path. The payload is shared (`Rc`, one worker) between attempts so a request whose body
//! has not been touched yet can be retried on another backend. A client that stops sending
//! its body for `client_body_timeout` fails the request with 408: its own fault, never the
//! backend's.

use std::cell::RefCell;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::dev::Payload;
use bytes::Bytes;
use futures_util::Stream;

use super::error::ProxyError;
use crate::cluster::Backend;
use crate::transport::StallTimer;

struct Shared {
    payload: Payload,
    /// Some bytes were read from the client: the body can't be replayed.
    started: bool,
}

/// The request body of one client request, owned across attempts.
#[derive(Clone, Default)]
pub struct ClientBody {
    shared: Option<Rc<RefCell<Shared>>>,
    length: Option<u64>,
    timeout: Duration,
}

impl ClientBody {
    /// `payload` is `None` for requests without a body; `timeout` is the longest the client
    /// may pause while sending it (zero: no limit, for a tunnel's client side, which its own
    /// idle timeout covers).
    pub fn new(payload: Option<Payload>, length: Option<u64>, timeout: Duration) -> ClientBody {
        ClientBody {
            shared: payload.map(|payload| {
                Rc::new(RefCell::new(Shared {
                    payload,
                    started: false,
                }))
            }),
            length,
            timeout,
        }
    }

    /// Whether the request has no body at all.
    pub fn is_empty(&self) -> bool {
        self.shared.is_none()
    }

    /// The announced `Content-Length` of a request with a body.
    pub fn length(&self) -> Option<u64> {
        self.shared.as_ref().and(self.length)
    }

    /// Whether another attempt may send the body again (nothing consumed yet).
    pub fn replayable(&self) -> bool {
        self.shared.as_ref().is_none_or(|s| !s.borrow().started)
    }

    /// The body for one attempt to `backend` (whose counters get the bytes).
    pub fn reader(&self, backend: &Arc<Backend>) -> BodyReader {
        BodyReader {
            body: self.clone(),
            backend: backend.clone(),
            stall: StallTimer::default(),
        }
    }
}

/// One attempt's view of the client body.
pub struct BodyReader {
    body: ClientBody,
    backend: Arc<Backend>,
    stall: StallTimer,
}

impl BodyReader {
    /// The next chunk of the client's body; `None` at its end.
    pub fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, ProxyError>>> {
        let Some(shared) = &self.body.shared else {
            return Poll::Ready(None);
        };
        let mut shared = shared.borrow_mut();
        shared.started = true;
        match Pin::new(&mut shared.payload).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                self.stall.progressed();
                self.backend.stats.add_bytes_in(chunk.len());
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(ProxyError::ClientBody(e.to_string())))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending if !self.body.timeout.is_zero() && self.stall.expired(cx, self.body.timeout) => {
                Poll::Ready(Some(Err(ProxyError::ClientTimeout)))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}
