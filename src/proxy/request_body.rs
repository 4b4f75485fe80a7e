//! The client's request body as an upstream `http_body::Body`, streamed chunk by chunk.
//!
//! Hot path. The payload is shared (`Rc`, one worker) between attempts so a request whose
//! body has not been touched yet can be retried on another backend.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

use actix_web::dev::Payload;
use bytes::Bytes;
use futures_util::Stream;
use http_body::{Body, Frame, SizeHint};

use crate::cluster::Backend;

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
}

impl ClientBody {
    /// `payload` is `None` for requests without a body.
    pub fn new(payload: Option<Payload>, length: Option<u64>) -> ClientBody {
        ClientBody {
            shared: payload.map(|payload| {
                Rc::new(RefCell::new(Shared {
                    payload,
                    started: false,
                }))
            }),
            length,
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
    pub fn for_backend(&self, backend: &Arc<Backend>) -> UpstreamBody {
        UpstreamBody {
            body: self.clone(),
            backend: backend.clone(),
        }
    }
}

/// One attempt's view of the client body.
pub struct UpstreamBody {
    body: ClientBody,
    backend: Arc<Backend>,
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        let Some(shared) = &this.body.shared else {
            return Poll::Ready(None);
        };
        let mut shared = shared.borrow_mut();
        shared.started = true;
        match Pin::new(&mut shared.payload).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                this.backend.stats.add_bytes_in(chunk.len());
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(io::Error::other(e.to_string())))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.shared.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.body.shared, self.body.length) {
            (None, _) => SizeHint::with_exact(0),
            (Some(_), Some(n)) => SizeHint::with_exact(n),
            (Some(_), None) => SizeHint::default(),
        }
    }
}
