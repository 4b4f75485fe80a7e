//! Why an attempt to forward a request failed, who is to blame, and what the client gets.

use std::io;

/// A failed forwarding attempt.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("connect failed: {0}")]
    Connect(#[source] io::Error),
    #[error("backend timed out: {0}")]
    Timeout(&'static str),
    #[error("backend sent a bad response: {0}")]
    BadResponse(String),
    #[error("backend connection failed: {0}")]
    Io(#[source] io::Error),
    /// A pooled connection the backend had closed, for a request that can't be retried.
    #[error("the backend closed a kept-alive connection as the request was sent")]
    Stale,
    /// This host ran out of descriptors, buffers, memory or ports: nobody else's fault.
    #[error("local resources exhausted: {0}")]
    LocalResource(#[source] io::Error),
    #[error("client request body failed: {0}")]
    ClientBody(String),
    /// The client stopped sending its request body for `client_body_timeout`.
    #[error("the client stopped sending its request body")]
    ClientTimeout,
    /// The request can't be forwarded as it is (the client gets 400 with this text).
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// A request body without `Content-Length` for a backend that needs one (FastCGI's
    /// `CONTENT_LENGTH`); director streams bodies and does not buffer them to count.
    #[error("a Content-Length is required")]
    LengthRequired,
}

impl ProxyError {
    /// The status the client gets when no retry is left.
    pub fn status(&self) -> u16 {
        match self {
            ProxyError::Timeout(_) => 504,
            ProxyError::ClientBody(_) | ProxyError::BadRequest(_) => 400,
            ProxyError::ClientTimeout => 408,
            ProxyError::LengthRequired => 411,
            ProxyError::LocalResource(_) => 503,
            ProxyError::Connect(_) | ProxyError::BadResponse(_) | ProxyError::Io(_) | ProxyError::Stale => {
                502
            }
        }
    }

    /// Whether the backend is to blame (passive health). The client's faults, this host's
    /// resource limits and a kept-alive connection closed at the wrong moment are not.
    pub fn is_backend_failure(&self) -> bool {
        matches!(
            self,
            ProxyError::Connect(_) | ProxyError::Timeout(_) | ProxyError::BadResponse(_) | ProxyError::Io(_)
        )
    }

    /// Whether another backend may be tried. Before anything was sent (connect failed), any
    /// request may; after, only idempotent ones (RFC 9110 §9.2.2), as nginx does.
    pub fn may_retry(&self, idempotent: bool) -> bool {
        match self {
            ProxyError::Connect(_) => true,
            ProxyError::Timeout(_) | ProxyError::BadResponse(_) | ProxyError::Io(_) => idempotent,
            _ => false,
        }
    }

    /// The body of the answer the client gets when the backend is not to blame.
    pub fn client_message(&self) -> &'static str {
        match self {
            ProxyError::BadRequest(text) => text,
            ProxyError::LengthRequired => {
                "this backend needs the request body's Content-Length (chunked bodies are not buffered)\n"
            }
            ProxyError::ClientTimeout => "the request body was not received in time\n",
            ProxyError::LocalResource(_) => "the proxy is out of resources; try again later\n",
            ProxyError::Stale => "backend failed\n",
            _ => "bad request body\n",
        }
    }
}
