//! The FastCGI upstream exchange: one request as a FastCGI Responder exchange over a pooled
//! keep-alive connection (`FCGI_KEEP_CONN`), full duplex: the request body is written as STDIN
//! records while STDOUT is read, by the same task that relays the response.
//!
//! Hot path. [`request_records`] encodes BEGIN_REQUEST and the PARAMS stream once per request
//! (attempts reuse them); [`Exchange::poll_head`] writes them and reads STDOUT up to the end of
//! the CGI header block; [`Exchange::poll_body`] relays the rest. STDERR goes to the error log
//! under the backend's name. A malformed record, a wrong request id, a stream that ends before
//! END_REQUEST, or an END_REQUEST with a protocol status other than "request complete" fails
//! the attempt; a connection is reused only after a clean END_REQUEST with nothing after it
//! and the request body fully sent.

use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::AsyncWrite;

use super::{Failure, Outgoing};
use crate::proto::cgi;
use crate::proto::fastcgi::{self, ProtocolStatus, RecordDecoder, RecordType};
use crate::proxy::error::ProxyError;
use crate::proxy::fcgi_params::{self, ParamsError};
use crate::proxy::request_body::BodyReader;
use crate::transport::pool::{Conn, READ_CHUNK};

/// The request id of every exchange: one request at a time per connection.
const REQUEST_ID: u16 = 1;

/// Longest piece of one STDERR record written to the log.
const MAX_STDERR_LOG: usize = 4096;

/// BEGIN_REQUEST and the PARAMS stream of `out` (and the end of STDIN when there is no body).
pub fn request_records(out: &Outgoing<'_>) -> Result<Bytes, ProxyError> {
    let mapping = out
        .backend
        .fastcgi
        .as_ref()
        .ok_or_else(|| ProxyError::BadResponse("the backend has no FastCGI script mapping".into()))?;
    if !out.body.is_empty() && out.body.length().is_none() {
        return Err(ProxyError::LengthRequired);
    }
    let mut records = BytesMut::with_capacity(1024);
    fastcgi::begin_request(&mut records, REQUEST_ID, true);
    fcgi_params::write_params(
        &mut records,
        REQUEST_ID,
        out.req,
        mapping,
        out.body.length(),
        out.rewrite,
        out.trace,
    )
    .map_err(|e| match e {
        ParamsError::BadPath => ProxyError::BadRequest("the request path can't be mapped to a script\n"),
        ParamsError::Encoding(_) => ProxyError::BadRequest("a request header is too long for FastCGI\n"),
    })?;
    if out.body.is_empty() {
        fastcgi::end_stdin(&mut records, REQUEST_ID);
    }
    Ok(records.freeze())
}

/// A parsed CGI header block.
pub struct Head {
    pub status: u16,
    pub bytes: Bytes,
    pub fields: Vec<(Range<usize>, Range<usize>)>,
    /// The application's `Content-Length`, if it sent one.
    pub content_length: Option<u64>,
}

/// One request in flight on a connection.
pub struct Exchange {
    conn: Conn,
    decoder: RecordDecoder,
    backend: std::sync::Arc<crate::cluster::Backend>,
    /// Records not written yet.
    out: BytesMut,
    /// The client body still to be sent as STDIN; `None` once the end of STDIN is queued.
    stdin: Option<BodyReader>,
    /// A write failed: stop writing, keep reading (the response may still be complete).
    write_failed: Option<io::Error>,
    /// STDOUT collected until the CGI header block is complete.
    head: BytesMut,
    /// Body bytes that came with the header block, relayed first.
    pending: Bytes,
    /// Bytes still due by the application's `Content-Length`.
    remaining: Option<u64>,
    /// END_REQUEST arrived.
    ended: bool,
    reused: bool,
    got_bytes: bool,
}

impl Exchange {
    pub fn new(conn: Conn, reused: bool, out: &Outgoing<'_>, records: Bytes) -> Exchange {
        Exchange {
            conn,
            decoder: RecordDecoder::new(REQUEST_ID),
            backend: out.backend.clone(),
            out: BytesMut::from(&records[..]),
            stdin: (!out.body.is_empty()).then(|| out.body.reader(out.backend)),
            write_failed: None,
            head: BytesMut::new(),
            pending: Bytes::new(),
            remaining: None,
            ended: false,
            reused,
            got_bytes: false,
        }
    }

    /// Whether the whole request has been handed to the socket.
    pub fn request_sent(&self) -> bool {
        self.stdin.is_none() && self.out.is_empty()
    }

    /// Sends the request and reads STDOUT up to the end of the CGI header block.
    pub fn poll_head(&mut self, cx: &mut Context<'_>) -> Poll<Result<Head, Failure>> {
        loop {
            match ready!(self.poll_next(cx))? {
                Some(data) => self.head.extend_from_slice(&data),
                None => {
                    let message = "FastCGI response ended without a complete CGI header block";
                    return Poll::Ready(Err(Failure::Fatal(ProxyError::BadResponse(message.into()))));
                }
            }
            match cgi::parse_head(&self.head) {
                Ok(Some(parsed)) => {
                    let mut head = std::mem::take(&mut self.head);
                    self.pending = head.split_off(parsed.len).freeze();
                    let bytes = head.freeze();
                    let content_length = parsed
                        .fields
                        .iter()
                        .find(|(n, _)| bytes[n.clone()].eq_ignore_ascii_case(b"content-length"))
                        .and_then(|(_, v)| {
                            std::str::from_utf8(&bytes[v.clone()])
                                .ok()?
                                .trim()
                                .parse::<u64>()
                                .ok()
                        });
                    self.remaining = content_length;
                    return Poll::Ready(Ok(Head {
                        status: parsed.status,
                        bytes,
                        fields: parsed.fields,
                        content_length,
                    }));
                }
                Ok(None) => {}
                Err(e) => return Poll::Ready(Err(Failure::Fatal(ProxyError::BadResponse(e.to_string())))),
            }
        }
    }

    /// The next piece of the response body; `None` after a clean END_REQUEST.
    pub fn poll_body(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, ProxyError>>> {
        let next = if self.pending.is_empty() {
            match ready!(self.poll_next(cx)) {
                Ok(next) => next,
                Err(Failure::Fatal(e)) => return Poll::Ready(Some(Err(e))),
                Err(Failure::Stale) => {
                    let message = "backend closed the connection before END_REQUEST";
                    return Poll::Ready(Some(Err(ProxyError::BadResponse(message.into()))));
                }
            }
        } else {
            Some(std::mem::take(&mut self.pending))
        };
        Poll::Ready(match next {
            None if self.remaining.is_some_and(|n| n > 0) => Some(Err(ProxyError::BadResponse(
                "FastCGI response shorter than its Content-Length".to_owned(),
            ))),
            None => None,
            Some(data) => {
                if let Some(n) = &mut self.remaining {
                    *n = n.saturating_sub(data.len() as u64);
                }
                Some(Ok(data))
            }
        })
    }

    /// The client left before the answer was complete (`on_client_abort: notify`): tells the
    /// application with an ABORT_REQUEST before the connection is closed, if the request's
    /// records were all written (a record cut in its middle can't be followed by another) and
    /// the request has not ended.
    pub fn notify_abort(&self) {
        if self.ended || !self.out.is_empty() {
            return;
        }
        let mut record = BytesMut::with_capacity(fastcgi::HEADER_LEN);
        fastcgi::abort_request(&mut record, REQUEST_ID);
        match self.conn.io.try_write(&record) {
            Ok(n) if n == record.len() => {
                log::debug!("backend '{}': client left; ABORT_REQUEST sent", self.backend.name)
            }
            _ => log::debug!(
                "backend '{}': client left; ABORT_REQUEST not sent",
                self.backend.name
            ),
        }
    }

    /// Bytes the application sent after END_REQUEST.
    pub fn trailing_bytes(&self) -> usize {
        if self.ended {
            self.conn.buf.len()
        } else {
            0
        }
    }

    /// The connection, if it can carry another request.
    pub fn into_reusable(self) -> Option<Conn> {
        let reusable = self.ended
            && self.request_sent()
            && self.write_failed.is_none()
            && self.conn.buf.is_empty()
            && self.decoder.is_idle();
        if self.ended && !self.conn.buf.is_empty() {
            log::warn!(
                "backend '{}': {} byte(s) after END_REQUEST; closing the connection",
                self.backend.name,
                self.conn.buf.len()
            );
        }
        reusable.then_some(self.conn)
    }

    /// The next piece of STDOUT; `None` after a clean END_REQUEST. Writes pending request
    /// records and body on the way.
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, Failure>> {
        if self.ended {
            return Poll::Ready(Ok(None));
        }
        loop {
            self.poll_send(cx).map_err(Failure::Fatal)?;
            match self.decoder.decode(&mut self.conn.buf) {
                Err(e) => return Poll::Ready(Err(bad(format!("bad FastCGI record: {e}")))),
                Ok(Some(record)) => match record.kind {
                    RecordType::Stdout if record.content.is_empty() => {}
                    RecordType::Stdout => return Poll::Ready(Ok(Some(record.content))),
                    // An empty STDERR record only ends the stream.
                    RecordType::Stderr if record.content.is_empty() => {}
                    RecordType::Stderr => self.log_stderr(&record.content),
                    RecordType::EndRequest => {
                        self.ended = true;
                        return Poll::Ready(end_request(&record.content).map(|()| None));
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
                        Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                            return Poll::Ready(Err(Failure::Fatal(ProxyError::Timeout("write"))))
                        }
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
    /// write timeout or a failed client body.
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
            match stdin.poll_chunk(cx) {
                Poll::Ready(Some(Ok(data))) => fastcgi::stdin(&mut self.out, REQUEST_ID, &data),
                Poll::Ready(Some(Err(e))) => return Err(e),
                Poll::Ready(None) => {
                    fastcgi::end_stdin(&mut self.out, REQUEST_ID);
                    self.stdin = None;
                }
                Poll::Pending => return Ok(()),
            }
        }
        Ok(())
    }

    /// The backend closed the connection before END_REQUEST.
    fn closed_early(&mut self) -> Failure {
        if self.reused && !self.got_bytes {
            return Failure::Stale;
        }
        let reason = match (self.decoder.finish(), self.write_failed.take()) {
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

fn end_request(content: &[u8]) -> Result<(), Failure> {
    let end = fastcgi::parse_end_request(content).map_err(|e| bad(format!("bad END_REQUEST: {e}")))?;
    match end.protocol_status {
        ProtocolStatus::RequestComplete => Ok(()),
        ProtocolStatus::Overloaded => Err(bad("FastCGI backend is overloaded".into())),
        ProtocolStatus::UnknownRole => Err(bad("FastCGI backend rejected the Responder role".into())),
        ProtocolStatus::CantMpxConn => Err(bad("FastCGI backend can't multiplex".into())),
        ProtocolStatus::Other(code) => Err(bad(format!("FastCGI protocol status {code}"))),
    }
}

fn bad(reason: String) -> Failure {
    Failure::Fatal(ProxyError::BadResponse(reason))
}
