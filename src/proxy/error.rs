//! Why an attempt to forward a request failed, and what the client gets for it.

use std::io;

/// A failed forwarding attempt.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("connect failed: {0}")]
    Connect(#[source] io::Error),
    #[error("backend timed out: {0}")]
    Timeout(&'static str),
    #[error("backend protocol error: {0}")]
    Protocol(#[source] hyper::Error),
    #[error("backend sent a bad response: {0}")]
    BadResponse(String),
    #[error("backend connection failed: {0}")]
    Io(#[source] io::Error),
    #[error("client request body failed: {0}")]
    ClientBody(String),
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
            ProxyError::LengthRequired => 411,
            ProxyError::Connect(_)
            | ProxyError::Protocol(_)
            | ProxyError::BadResponse(_)
            | ProxyError::Io(_) => 502,
        }
    }

    /// Whether the backend is to blame (passive health) — a broken client body or an
    /// unforwardable request is not.
    pub fn is_backend_failure(&self) -> bool {
        !matches!(
            self,
            ProxyError::ClientBody(_) | ProxyError::BadRequest(_) | ProxyError::LengthRequired
        )
    }

    /// The body of the 400 the client gets when it is to blame.
    pub fn client_message(&self) -> &'static str {
        match self {
            ProxyError::BadRequest(text) => text,
            ProxyError::LengthRequired => {
                "this backend needs the request body's Content-Length (chunked bodies are not buffered)\n"
            }
            _ => "bad request body\n",
        }
    }

    /// Classifies a hyper error from `send_request`, looking through to an I/O cause.
    pub fn from_hyper(err: hyper::Error) -> ProxyError {
        if let Some(io) = std::error::Error::source(&err).and_then(|s| s.downcast_ref::<io::Error>()) {
            if io.kind() == io::ErrorKind::TimedOut {
                return ProxyError::Timeout("write");
            }
        }
        if err.is_user() {
            // Our body stream (the client's request body) failed.
            return ProxyError::ClientBody(err.to_string());
        }
        ProxyError::Protocol(err)
    }
}
