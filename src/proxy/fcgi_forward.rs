//! The FastCGI forwarder: one request as a FastCGI Responder exchange over a pooled keep-alive
//! connection (`FCGI_KEEP_CONN`), full duplex: the request body is written as STDIN records
//! while STDOUT is read, by the same task that relays the response.
//!
//! Hot path. [`send`] writes BEGIN_REQUEST and the PARAMS stream, then reads STDOUT up to the
//! end of the CGI header block; the rest of the exchange ([`Exchange::poll_stdout`]) is driven
//! by the relay body. STDERR goes to the error log under the backend's name. A malformed
//! record, a wrong request id, a stream that ends before END_REQUEST, or an END_REQUEST with a
//! protocol status other than "request complete" fails the attempt (the connection is
//! dropped); a connection is reused only after a clean END_REQUEST with the request body fully
//! sent.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use actix_web::HttpRequest;
use bytes::{Buf, Bytes, BytesMut};
use http_body::Body;
use tokio::io::AsyncWrite;

use super::error::ProxyError;
use super::fcgi_params::{self, ParamsError};
use super::fcgi_pool::{OpenConnection, SharedIdlePool};
use super::http_forward::Timeouts;
use super::request_body::{ClientBody, UpstreamBody};
use crate::cluster::Backend;
use crate::proto::cgi::{self, CgiHead};
use crate::proto::fastcgi::{self, ProtocolStatus, RecordDecoder, RecordType};
use crate::transport::{self, TimedStream};

/// The request id of every exchange: one request at a time per connection.
const REQUEST_ID: u16 = 1;

/// Read buffer size of a backend connection.
const READ_CHUNK: usize = 16 * 1024;

/// Longest piece of one STDERR record written to the log.
const MAX_STDERR_LOG: usize = 4096;

/// An idle keep-alive connection to a FastCGI backend.
pub struct FcgiConn {
    io: TimedStream,
    buf: BytesMut,
    decoder: RecordDecoder,
    _open: OpenConnection,
}

thread_local! {
    static POOL: &'static SharedIdlePool<FcgiConn> = Box::leak(Box::default());
}

/// A response head from a FastCGI backend and the exchange its body is read from.
pub struct FcgiResponse {
    pub head: CgiHead,
    /// The header block's bytes; field ranges in `head` point into them.
    pub head_bytes: Bytes,
    /// Body bytes that arrived with the header block.
    pub body_start: Bytes,
    pub exchange: Exchange,
}

/// How an exchange failed.
enum Failure {
    /// A pooled connection the backend had already closed: try a fresh one.
    Stale,
    Fatal(ProxyError),
}

/// One request in flight on a connection.
pub struct Exchange {
    conn: FcgiConn,
    backend: Arc<Backend>,
    /// Encoded records not yet written.
    out: BytesMut,
    /// The client body still to be sent as STDIN; `None` once the end of STDIN is queued.
    stdin: Option<UpstreamBody>,
    /// A write failed: stop writing, keep reading (the response may still be complete).
    write_failed: Option<io::Error>,
    /// END_REQUEST arrived.
    ended: bool,
    reused: bool,
    got_bytes: bool,
}

/// Sends the request to `backend` and reads the CGI header block.
pub async fn send(
    backend: &Arc<Backend>,
    req: &HttpRequest,
    body: &ClientBody,
    timeouts: Timeouts,
) -> Result<FcgiResponse, ProxyError> {
    let mapping = backend
        .fastcgi
        .as_ref()
        .ok_or_else(|| ProxyError::BadResponse("the backend has no FastCGI script mapping".into()))?;
    if !body.is_empty() && body.length().is_none() {
        return Err(ProxyError::LengthRequired);
    }
    let mut records = BytesMut::with_capacity(1024);
    fastcgi::begin_request(&mut records, REQUEST_ID, true);
    fcgi_params::write_params(&mut records, REQUEST_ID, req, mapping, body.length()).map_err(
        |e| match e {
            ParamsError::BadPath => ProxyError::BadRequest("the request path can't be mapped to a script\n"),
            ParamsError::Encoding(_) => ProxyError::BadRequest("a request header is too long for FastCGI\n"),
        },
    )?;
    if body.is_empty() {
        fastcgi::end_stdin(&mut records, REQUEST_ID);
    }
    loop {
        let (conn, reused) = match POOL.with(|p| p.take(backend)) {
            Some(conn) => (conn, true),
            None => (connect(backend, timeouts).await?, false),
        };
        let mut exchange = Exchange {
            conn,
            backend: backend.clone(),
            out: records.clone(),
            stdin: (!body.is_empty()).then(|| body.for_backend(backend)),
            write_failed: None,
            ended: false,
            reused,
            got_bytes: false,
        };
        match tokio::time::timeout(timeouts.read, exchange.read_head()).await {
            Ok(Ok((head, head_bytes, body_start))) => {
                return Ok(FcgiResponse {
                    head,
                    head_bytes,
                    body_start,
                    exchange,
                })
            }
            Ok(Err(Failure::Stale)) if body.replayable() => {
                log::debug!(
                    "backend '{}': pooled FastCGI connection was closed; reconnecting",
                    backend.name
                );
            }
            Ok(Err(Failure::Stale)) => {
                let e = io::Error::new(io::ErrorKind::ConnectionReset, "connection closed");
                return Err(ProxyError::Io(e));
            }
            Ok(Err(Failure::Fatal(e))) => return Err(e),
            Err(_) => return Err(ProxyError::Timeout("read")),
        }
    }
}

/// Returns the connection of a cleanly finished exchange for reuse by this worker.
pub fn recycle(exchange: Exchange) {
    if exchange.reusable() {
        let Exchange {
            mut conn, backend, ..
        } = exchange;
        conn.decoder.next_request(REQUEST_ID);
        POOL.with(|p| p.put(&backend, conn));
    }
}

async fn connect(backend: &Backend, timeouts: Timeouts) -> Result<FcgiConn, ProxyError> {
    let stream = transport::connect(&backend.url.endpoint, timeouts.connect)
        .await
        .map_err(ProxyError::Connect)?;
    Ok(FcgiConn {
        io: TimedStream::new(stream, timeouts.write),
        buf: BytesMut::with_capacity(READ_CHUNK),
        decoder: RecordDecoder::new(REQUEST_ID),
        _open: POOL.with(|p| p.connected(backend)),
    })
}

impl Exchange {
    /// Reads STDOUT up to the end of the CGI header block.
    async fn read_head(&mut self) -> Result<(CgiHead, Bytes, Bytes), Failure> {
        let mut head = BytesMut::new();
        loop {
            match poll_fn(|cx| self.poll_next(cx)).await? {
                Some(data) => head.extend_from_slice(&data),
                None => {
                    let message = "FastCGI response ended without a complete CGI header block";
                    return Err(Failure::Fatal(ProxyError::BadResponse(message.into())));
                }
            }
            match cgi::parse_head(&head) {
                Ok(Some(parsed)) => {
                    let body_start = head.split_off(parsed.len).freeze();
                    return Ok((parsed, head.freeze(), body_start));
                }
                Ok(None) => {}
                Err(e) => return Err(Failure::Fatal(ProxyError::BadResponse(e.to_string()))),
            }
        }
    }

    /// The next piece of STDOUT; `None` after a clean END_REQUEST. Writes pending request
    /// records and body on the way.
    pub fn poll_stdout(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, ProxyError>>> {
        match ready!(self.poll_next(cx)) {
            Ok(Some(data)) => Poll::Ready(Some(Ok(data))),
            Ok(None) => Poll::Ready(None),
            Err(Failure::Fatal(e)) => Poll::Ready(Some(Err(e))),
            Err(Failure::Stale) => Poll::Ready(Some(Err(ProxyError::BadResponse(
                "backend closed the connection before END_REQUEST".into(),
            )))),
        }
    }

    /// Whether the connection can carry another request.
    fn reusable(&self) -> bool {
        self.ended
            && self.stdin.is_none()
            && self.out.is_empty()
            && self.write_failed.is_none()
            && self.conn.buf.is_empty()
            && self.conn.decoder.is_idle()
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, Failure>> {
        if self.ended {
            return Poll::Ready(Ok(None));
        }
        loop {
            self.poll_send(cx).map_err(Failure::Fatal)?;
            match self.conn.decoder.decode(&mut self.conn.buf) {
                Err(e) => return Poll::Ready(Err(bad(format!("bad FastCGI record: {e}")))),
                Ok(Some(record)) => match record.kind {
                    RecordType::Stdout if record.content.is_empty() => {}
                    RecordType::Stdout => return Poll::Ready(Ok(Some(record.content))),
                    // An empty STDERR record only ends the stream.
                    RecordType::Stderr if record.content.is_empty() => {}
                    RecordType::Stderr => self.log_stderr(&record.content),
                    RecordType::EndRequest => {
                        self.ended = true;
                        return Poll::Ready(self.end_request(&record.content).map(|()| None));
                    }
                    // GET_VALUES_RESULT / UNKNOWN_TYPE: answers to nothing we asked; ignored.
                    _ => {}
                },
                Ok(None) => {
                    self.conn.buf.reserve(READ_CHUNK);
                    let io = Pin::new(&mut self.conn.io);
                    match ready!(tokio_util::io::poll_read_buf(io, cx, &mut self.conn.buf)) {
                        Ok(0) => return Poll::Ready(Err(self.closed_early())),
                        Ok(_) => self.got_bytes = true,
                        Err(e) if self.reused && !self.got_bytes => {
                            log::debug!("backend '{}': {e}", self.backend.name);
                            return Poll::Ready(Err(Failure::Stale));
                        }
                        Err(e) => return Poll::Ready(Err(Failure::Fatal(ProxyError::Io(e)))),
                    }
                }
            }
        }
    }

    /// Writes queued records and feeds the client body in as STDIN, as far as the socket and
    /// the client allow without waiting. Errors only for what must end the exchange at once: a
    /// write timeout or a broken client body.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Result<(), ProxyError> {
        while self.write_failed.is_none() {
            if !self.out.is_empty() {
                match Pin::new(&mut self.conn.io).poll_write(cx, &self.out) {
                    Poll::Ready(Ok(n)) => self.out.advance(n),
                    Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::TimedOut => {
                        return Err(ProxyError::Timeout("write"))
                    }
                    Poll::Ready(Err(e)) => self.write_failed = Some(e),
                    Poll::Pending => return Ok(()),
                }
                continue;
            }
            let Some(stdin) = self.stdin.as_mut() else {
                return Ok(());
            };
            match Pin::new(stdin).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        fastcgi::stdin(&mut self.out, REQUEST_ID, &data);
                    }
                }
                Poll::Ready(Some(Err(e))) => return Err(ProxyError::ClientBody(e.to_string())),
                Poll::Ready(None) => {
                    fastcgi::end_stdin(&mut self.out, REQUEST_ID);
                    self.stdin = None;
                }
                Poll::Pending => return Ok(()),
            }
        }
        Ok(())
    }

    fn end_request(&mut self, content: &[u8]) -> Result<(), Failure> {
        let end = fastcgi::parse_end_request(content).map_err(|e| bad(format!("bad END_REQUEST: {e}")))?;
        match end.protocol_status {
            ProtocolStatus::RequestComplete => Ok(()),
            ProtocolStatus::Overloaded => Err(bad("FastCGI backend is overloaded".into())),
            ProtocolStatus::UnknownRole => Err(bad("FastCGI backend rejected the Responder role".into())),
            ProtocolStatus::CantMpxConn => Err(bad("FastCGI backend can't multiplex".into())),
            ProtocolStatus::Other(code) => Err(bad(format!("FastCGI protocol status {code}"))),
        }
    }

    /// The backend closed the connection before END_REQUEST.
    fn closed_early(&mut self) -> Failure {
        if self.reused && !self.got_bytes {
            return Failure::Stale;
        }
        let reason = match (self.conn.decoder.finish(), self.write_failed.take()) {
            (Err(e), _) => format!("FastCGI stream ended inside a record: {e}"),
            (Ok(()), Some(e)) => format!("writing the request failed: {e}"),
            (Ok(()), None) => "backend closed the connection before END_REQUEST".to_owned(),
        };
        bad(reason)
    }

    fn log_stderr(&self, content: &[u8]) {
        let text = String::from_utf8_lossy(&content[..content.len().min(MAX_STDERR_LOG)]);
        log::error!("backend '{}' stderr: {}", self.backend.name, text.trim_end());
    }
}

fn bad(reason: String) -> Failure {
    Failure::Fatal(ProxyError::BadResponse(reason))
}
