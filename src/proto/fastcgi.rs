//! FastCGI 1.0 record codec: the record header, the request-side encoders (BEGIN_REQUEST,
//! PARAMS, STDIN, ABORT_REQUEST, GET_VALUES), name-value pairs, and a streaming
//! [`RecordDecoder`] for what a backend (the FastCGI "application") sends back.
//!
//! Sans-io and on the hot path of every FastCGI request: encoders append to the caller's
//! `BytesMut` without any other allocation, and the decoder splits record content out of the
//! caller's read buffer (zero-copy) as soon as it is complete, whatever byte boundaries the
//! socket reads fall on. Everything that comes from the backend is untrusted: framing faults
//! are errors, never panics, and the decoder stops at the first one (a FastCGI stream has no
//! way to resynchronise).

use std::fmt;

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The only protocol version (`FCGI_VERSION_1`).
pub const VERSION: u8 = 1;

/// Length of a record header (`FCGI_HEADER_LEN`).
pub const HEADER_LEN: usize = 8;

/// Most content bytes one record can carry (its length field is a `u16`).
pub const MAX_CONTENT_LEN: usize = u16::MAX as usize;

/// Request id of management records (`FCGI_NULL_REQUEST_ID`).
pub const NULL_REQUEST_ID: u16 = 0;

/// Longest name or value a name-value pair can carry (31-bit length).
pub const MAX_PAIR_PART_LEN: usize = 0x7fff_ffff;

/// `FCGI_KEEP_CONN`: the application keeps the connection open after the request.
pub const KEEP_CONN: u8 = 1;

/// GET_VALUES variable: how many concurrent connections the application accepts.
pub const VAR_MAX_CONNS: &[u8] = b"FCGI_MAX_CONNS";

/// GET_VALUES variable: how many concurrent requests the application accepts.
pub const VAR_MAX_REQS: &[u8] = b"FCGI_MAX_REQS";

/// GET_VALUES variable: `"1"` if the application multiplexes requests on one connection.
pub const VAR_MPXS_CONNS: &[u8] = b"FCGI_MPXS_CONNS";

/// The type byte of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordType {
    /// `FCGI_BEGIN_REQUEST` (1): starts a request; 8-byte body (role, flags).
    BeginRequest,
    /// `FCGI_ABORT_REQUEST` (2): the web server gives up on a request.
    AbortRequest,
    /// `FCGI_END_REQUEST` (3): the application finished a request; 8-byte body.
    EndRequest,
    /// `FCGI_PARAMS` (4): stream of name-value pairs (the CGI environment).
    Params,
    /// `FCGI_STDIN` (5): stream of the request body.
    Stdin,
    /// `FCGI_STDOUT` (6): stream of the CGI response (headers, blank line, body).
    Stdout,
    /// `FCGI_STDERR` (7): stream of error output.
    Stderr,
    /// `FCGI_DATA` (8): extra input stream of the Filter role.
    Data,
    /// `FCGI_GET_VALUES` (9): management query (id 0) of name-value pairs with empty values.
    GetValues,
    /// `FCGI_GET_VALUES_RESULT` (10): management answer (id 0) to GET_VALUES.
    GetValuesResult,
    /// `FCGI_UNKNOWN_TYPE` (11): management answer (id 0) to a management type it doesn't know.
    UnknownType,
    /// Any other type byte; only an unrestricted decoder ([`RecordDecoder::unrestricted`])
    /// yields it.
    Other(u8),
}

/// The types with a name, in type-byte order from 1.
const KNOWN_TYPES: [(RecordType, &str); 11] = [
    (RecordType::BeginRequest, "BEGIN_REQUEST"),
    (RecordType::AbortRequest, "ABORT_REQUEST"),
    (RecordType::EndRequest, "END_REQUEST"),
    (RecordType::Params, "PARAMS"),
    (RecordType::Stdin, "STDIN"),
    (RecordType::Stdout, "STDOUT"),
    (RecordType::Stderr, "STDERR"),
    (RecordType::Data, "DATA"),
    (RecordType::GetValues, "GET_VALUES"),
    (RecordType::GetValuesResult, "GET_VALUES_RESULT"),
    (RecordType::UnknownType, "UNKNOWN_TYPE"),
];

impl RecordType {
    /// The record type for a type byte.
    pub fn from_u8(code: u8) -> Self {
        let known = (code as usize).checked_sub(1).and_then(|i| KNOWN_TYPES.get(i));
        known.map_or(Self::Other(code), |&(kind, _)| kind)
    }

    /// The type byte on the wire.
    pub fn as_u8(self) -> u8 {
        match self {
            Self::Other(code) => code,
            known => KNOWN_TYPES
                .iter()
                .position(|&(k, _)| k == known)
                .map_or(0, |i| i as u8 + 1),
        }
    }

    /// Management records belong to the connection, not to a request (request id 0).
    pub fn is_management(self) -> bool {
        matches!(self, Self::GetValues | Self::GetValuesResult | Self::UnknownType)
    }

    /// The content length the format fixes for this type, if any.
    fn fixed_content_len(self) -> Option<usize> {
        match self {
            Self::BeginRequest | Self::EndRequest | Self::UnknownType => Some(8),
            _ => None,
        }
    }
}

impl fmt::Display for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match KNOWN_TYPES.iter().find(|&&(k, _)| k == *self) {
            Some((_, name)) => f.write_str(name),
            None => write!(f, "type-{}", self.as_u8()),
        }
    }
}

/// The role a BEGIN_REQUEST asks the application to play.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `FCGI_RESPONDER` (1): the CGI role; the only one the proxy uses.
    Responder,
    /// `FCGI_AUTHORIZER` (2).
    Authorizer,
    /// `FCGI_FILTER` (3).
    Filter,
    /// Any other role number.
    Other(u16),
}

impl Role {
    fn from_u16(role: u16) -> Self {
        match role {
            1 => Self::Responder,
            2 => Self::Authorizer,
            3 => Self::Filter,
            other => Self::Other(other),
        }
    }
}

/// The protocol status of an END_REQUEST.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolStatus {
    /// `FCGI_REQUEST_COMPLETE` (0): normal end of the request.
    RequestComplete,
    /// `FCGI_CANT_MPX_CONN` (1): the application doesn't multiplex and the connection is busy.
    CantMpxConn,
    /// `FCGI_OVERLOADED` (2): the application is out of some resource (e.g. workers).
    Overloaded,
    /// `FCGI_UNKNOWN_ROLE` (3): the application doesn't play the requested role.
    UnknownRole,
    /// A status byte the specification doesn't define; the request failed in an unknown way.
    Other(u8),
}

impl ProtocolStatus {
    /// The status for a status byte.
    pub fn from_u8(code: u8) -> Self {
        match code {
            0 => Self::RequestComplete,
            1 => Self::CantMpxConn,
            2 => Self::Overloaded,
            3 => Self::UnknownRole,
            other => Self::Other(other),
        }
    }

    /// The status byte on the wire.
    pub fn as_u8(self) -> u8 {
        match self {
            Self::RequestComplete => 0,
            Self::CantMpxConn => 1,
            Self::Overloaded => 2,
            Self::UnknownRole => 3,
            Self::Other(code) => code,
        }
    }
}

/// Why FastCGI bytes can't be encoded or decoded.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum FcgiError {
    #[error("unsupported FastCGI version {0} (expected 1): not a FastCGI stream or out of sync")]
    BadVersion(u8),
    #[error("unknown FastCGI record type {0} from the application")]
    UnknownRecordType(u8),
    #[error("unexpected FastCGI {kind} record from the application (request id {request_id})")]
    UnexpectedRecord { kind: RecordType, request_id: u16 },
    #[error("FastCGI {kind} record for request id {got}, expected {expected}")]
    WrongRequestId {
        kind: RecordType,
        expected: u16,
        got: u16,
    },
    #[error("FastCGI {kind} record after the END_REQUEST of request {request_id}")]
    RecordAfterEnd { kind: RecordType, request_id: u16 },
    #[error("FastCGI {kind} record with {len} content bytes, the limit is {max}")]
    ContentTooLong {
        kind: RecordType,
        len: usize,
        max: usize,
    },
    #[error("FastCGI {kind} record with {len} content bytes, the format requires {expected}")]
    BadBodyLength {
        kind: RecordType,
        len: usize,
        expected: usize,
    },
    #[error("FastCGI stream ended inside a record: {have} of {need} bytes received")]
    Truncated { have: usize, need: usize },
    #[error("FastCGI name-value pair needs {need} bytes but only {have} remain")]
    PairOverrun { need: u64, have: usize },
    #[error("FastCGI name or value of {0} bytes is longer than the 2^31-1 the format allows")]
    PairTooLong(usize),
    #[error("FastCGI {kind} record content of {len} bytes is longer than one record can carry")]
    RecordTooLarge { kind: RecordType, len: usize },
}

// ---------------------------------------------------------------------------------------------
// Encoding (proxy -> application)

fn padding_for(content_len: usize) -> usize {
    (8 - content_len % 8) % 8
}

fn header_bytes(kind: RecordType, request_id: u16, content_len: u16, padding_len: u8) -> [u8; HEADER_LEN] {
    let [i0, i1] = request_id.to_be_bytes();
    let [l0, l1] = content_len.to_be_bytes();
    [VERSION, kind.as_u8(), i0, i1, l0, l1, padding_len, 0]
}

/// Appends one record whose content is known to fit, padded to 8-byte alignment.
fn put_record(buf: &mut BytesMut, kind: RecordType, request_id: u16, content: &[u8]) {
    debug_assert!(content.len() <= MAX_CONTENT_LEN);
    let pad = padding_for(content.len());
    buf.reserve(HEADER_LEN + content.len() + pad);
    buf.put_slice(&header_bytes(kind, request_id, content.len() as u16, pad as u8));
    buf.put_slice(content);
    buf.put_bytes(0, pad);
}

/// Writes the content of a stream (PARAMS, STDIN, STDOUT, ...) as records of at most
/// [`MAX_CONTENT_LEN`] bytes each, padded to 8-byte alignment.
///
/// Bytes are copied straight into the buffer; a record's header is written as a placeholder
/// and filled in when the record closes, so data (and name-value pairs) may span records.
/// The open record is closed when the writer is finished or dropped. Writing nothing writes
/// no record: the empty end-of-stream record is [`end_stream`]'s job.
pub struct StreamWriter<'a> {
    buf: &'a mut BytesMut,
    kind: RecordType,
    request_id: u16,
    /// Offset of the open record's header in `buf`.
    open: Option<usize>,
}

impl<'a> StreamWriter<'a> {
    /// A writer appending `kind` records for `request_id` to `buf`.
    pub fn new(buf: &'a mut BytesMut, kind: RecordType, request_id: u16) -> Self {
        Self {
            buf,
            kind,
            request_id,
            open: None,
        }
    }

    /// Appends stream content.
    pub fn write(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let start = match self.open {
                Some(start) => start,
                None => {
                    let start = self.buf.len();
                    let want = data.len().min(MAX_CONTENT_LEN);
                    self.buf.reserve(HEADER_LEN + want + padding_for(want));
                    self.buf.put_bytes(0, HEADER_LEN);
                    self.open = Some(start);
                    start
                }
            };
            let room = MAX_CONTENT_LEN - (self.buf.len() - start - HEADER_LEN);
            let n = room.min(data.len());
            self.buf.put_slice(&data[..n]);
            data = &data[n..];
            if n == room {
                self.close_record();
            }
        }
    }

    /// Appends one name-value pair; on error nothing is written.
    pub fn write_pair(&mut self, name: &[u8], value: &[u8]) -> Result<(), FcgiError> {
        let (name_len, name_n) = encode_len(name.len())?;
        let (value_len, value_n) = encode_len(value.len())?;
        self.write(&name_len[..name_n]);
        self.write(&value_len[..value_n]);
        self.write(name);
        self.write(value);
        Ok(())
    }

    /// Closes the open record (also done on drop).
    pub fn finish(self) {}

    fn close_record(&mut self) {
        if let Some(start) = self.open.take() {
            let len = self.buf.len() - start - HEADER_LEN;
            let pad = padding_for(len);
            let header = header_bytes(self.kind, self.request_id, len as u16, pad as u8);
            self.buf[start..start + HEADER_LEN].copy_from_slice(&header);
            self.buf.put_bytes(0, pad);
        }
    }
}

impl Drop for StreamWriter<'_> {
    fn drop(&mut self) {
        // An open record still has a placeholder header: close it so the buffer never holds
        // a malformed stream.
        self.close_record();
    }
}

/// The length prefix of a pair part: 1 byte below 128, else 4 bytes with the high bit set.
fn encode_len(len: usize) -> Result<([u8; 4], usize), FcgiError> {
    if len < 0x80 {
        Ok(([len as u8, 0, 0, 0], 1))
    } else if len <= MAX_PAIR_PART_LEN {
        Ok(((len as u32 | 0x8000_0000).to_be_bytes(), 4))
    } else {
        Err(FcgiError::PairTooLong(len))
    }
}

/// Appends one name-value pair (no record framing) to `buf`; on error nothing is written.
pub fn encode_pair(buf: &mut BytesMut, name: &[u8], value: &[u8]) -> Result<(), FcgiError> {
    let (name_len, name_n) = encode_len(name.len())?;
    let (value_len, value_n) = encode_len(value.len())?;
    buf.reserve(name_n + value_n + name.len() + value.len());
    buf.put_slice(&name_len[..name_n]);
    buf.put_slice(&value_len[..value_n]);
    buf.put_slice(name);
    buf.put_slice(value);
    Ok(())
}

/// Appends a BEGIN_REQUEST in the Responder role, with `FCGI_KEEP_CONN` when `keep_conn`.
pub fn begin_request(buf: &mut BytesMut, request_id: u16, keep_conn: bool) {
    let role = 1u16.to_be_bytes();
    let flags = if keep_conn { KEEP_CONN } else { 0 };
    put_record(
        buf,
        RecordType::BeginRequest,
        request_id,
        &[role[0], role[1], flags, 0, 0, 0, 0, 0],
    );
}

/// Appends the whole PARAMS stream: the pairs, split into records as needed (a pair may
/// span records), then the empty PARAMS record that ends the stream.
///
/// On error (a name or value longer than 2^31-1 bytes) `buf` is left as it was.
pub fn params<I, N, V>(buf: &mut BytesMut, request_id: u16, pairs: I) -> Result<(), FcgiError>
where
    I: IntoIterator<Item = (N, V)>,
    N: AsRef<[u8]>,
    V: AsRef<[u8]>,
{
    let start = buf.len();
    let mut writer = StreamWriter::new(buf, RecordType::Params, request_id);
    for (name, value) in pairs {
        if let Err(e) = writer.write_pair(name.as_ref(), value.as_ref()) {
            drop(writer);
            buf.truncate(start);
            return Err(e);
        }
    }
    writer.finish();
    end_stream(buf, RecordType::Params, request_id);
    Ok(())
}

/// Appends `data` as records of `kind` (split at [`MAX_CONTENT_LEN`], padded); nothing when
/// `data` is empty.
pub fn stream(buf: &mut BytesMut, kind: RecordType, request_id: u16, data: &[u8]) {
    StreamWriter::new(buf, kind, request_id).write(data);
}

/// Appends the empty record that ends a stream of `kind`.
pub fn end_stream(buf: &mut BytesMut, kind: RecordType, request_id: u16) {
    put_record(buf, kind, request_id, &[]);
}

/// Appends request body bytes as STDIN records; nothing when `data` is empty (so an empty
/// chunk can never end the stream by accident).
pub fn stdin(buf: &mut BytesMut, request_id: u16, data: &[u8]) {
    stream(buf, RecordType::Stdin, request_id, data);
}

/// Appends the empty STDIN record that ends the request body.
pub fn end_stdin(buf: &mut BytesMut, request_id: u16) {
    end_stream(buf, RecordType::Stdin, request_id);
}

/// Appends an ABORT_REQUEST.
pub fn abort_request(buf: &mut BytesMut, request_id: u16) {
    put_record(buf, RecordType::AbortRequest, request_id, &[]);
}

/// Appends a GET_VALUES management record asking for `names` (e.g. [`VAR_MAX_CONNS`]).
///
/// A management record is not a stream: all names must fit in one record, else
/// [`FcgiError::RecordTooLarge`] and `buf` is left as it was.
pub fn get_values<I, N>(buf: &mut BytesMut, names: I) -> Result<(), FcgiError>
where
    I: IntoIterator<Item = N>,
    N: AsRef<[u8]>,
{
    single_record(buf, RecordType::GetValues, |buf| {
        names
            .into_iter()
            .try_for_each(|name| encode_pair(buf, name.as_ref(), b""))
    })
}

/// Appends a GET_VALUES_RESULT management record (what an application answers; used by
/// test backends). All pairs must fit in one record.
pub fn get_values_result<I, N, V>(buf: &mut BytesMut, pairs: I) -> Result<(), FcgiError>
where
    I: IntoIterator<Item = (N, V)>,
    N: AsRef<[u8]>,
    V: AsRef<[u8]>,
{
    single_record(buf, RecordType::GetValuesResult, |buf| {
        pairs
            .into_iter()
            .try_for_each(|(n, v)| encode_pair(buf, n.as_ref(), v.as_ref()))
    })
}

/// Writes one management record whose content `fill` appends; rolls back on error.
fn single_record(
    buf: &mut BytesMut,
    kind: RecordType,
    fill: impl FnOnce(&mut BytesMut) -> Result<(), FcgiError>,
) -> Result<(), FcgiError> {
    let start = buf.len();
    buf.put_bytes(0, HEADER_LEN);
    let filled = fill(buf);
    let len = buf.len() - start - HEADER_LEN;
    let result = match filled {
        Ok(()) if len > MAX_CONTENT_LEN => Err(FcgiError::RecordTooLarge { kind, len }),
        other => other,
    };
    if result.is_err() {
        buf.truncate(start);
        return result;
    }
    let pad = padding_for(len);
    let header = header_bytes(kind, NULL_REQUEST_ID, len as u16, pad as u8);
    buf[start..start + HEADER_LEN].copy_from_slice(&header);
    buf.put_bytes(0, pad);
    Ok(())
}

/// Appends an END_REQUEST (what an application sends; used by test backends).
pub fn end_request(buf: &mut BytesMut, request_id: u16, app_status: u32, status: ProtocolStatus) {
    let a = app_status.to_be_bytes();
    let body = [a[0], a[1], a[2], a[3], status.as_u8(), 0, 0, 0];
    put_record(buf, RecordType::EndRequest, request_id, &body);
}

/// Appends an UNKNOWN_TYPE management record naming `type_code` (what an application answers
/// to a management record it doesn't know; used by test backends).
pub fn unknown_type(buf: &mut BytesMut, type_code: u8) {
    put_record(
        buf,
        RecordType::UnknownType,
        NULL_REQUEST_ID,
        &[type_code, 0, 0, 0, 0, 0, 0, 0],
    );
}

// ---------------------------------------------------------------------------------------------
// Decoding (application -> proxy)

/// One decoded record; `content` shares the decoder's input buffer (padding already skipped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The record type.
    pub kind: RecordType,
    /// The request id (0 for management records).
    pub request_id: u16,
    /// The content bytes; empty for the record that ends a stream.
    pub content: Bytes,
}

#[derive(Debug, Clone, Copy)]
struct Header {
    kind: RecordType,
    request_id: u16,
    content_len: usize,
    padding_len: usize,
}

/// A streaming decoder of FastCGI records.
///
/// Feed it the connection's read buffer: [`decode`](Self::decode) takes one record off the
/// front as soon as its header and content have arrived, wherever reads split the stream, and
/// skips the padding (now or on a later call, if it hasn't arrived yet).
///
/// A decoder made with [`new`](Self::new) checks the stream as a proxy must check a backend:
/// - the version byte is 1;
/// - only the types an application sends are accepted: STDOUT, STDERR and END_REQUEST for the
///   expected request id, GET_VALUES_RESULT and UNKNOWN_TYPE with request id 0. Request-side
///   types (BEGIN_REQUEST, PARAMS, STDIN, ...) and unknown type bytes are protocol errors: a
///   proxy can't tell what an unknown record means for the response, and the only types a
///   later protocol version could add are management ones, which an application never sends
///   unasked (x0 logged and skipped them; we would rather fail the request loudly, 502);
/// - after the END_REQUEST of the expected request no more records for it are accepted;
/// - fixed-size bodies (BEGIN_REQUEST, END_REQUEST, UNKNOWN_TYPE) are exactly 8 bytes and
///   content is within the configured limit ([`with_max_content_len`](Self::with_max_content_len)).
///
/// The reserved header byte is ignored, as the specification asks. The first error is sticky:
/// FastCGI has no way to find the next record boundary, so every later call returns it again.
#[derive(Debug, Clone)]
pub struct RecordDecoder {
    /// `None`: accept every type and request id (framing checks only).
    request_id: Option<u16>,
    max_content_len: usize,
    /// Header of the record whose content hasn't fully arrived.
    header: Option<Header>,
    /// Padding bytes still to skip.
    padding: usize,
    /// Unconsumed bytes left in the buffer by the last `decode` call.
    buffered: usize,
    ended: bool,
    failed: Option<FcgiError>,
}

impl RecordDecoder {
    /// A decoder for the backend side of request `request_id` (see the type docs for checks).
    pub fn new(request_id: u16) -> Self {
        Self::with_request_id(Some(request_id))
    }

    /// A decoder that checks framing only (version, fixed body sizes, content limit) and
    /// yields records of every type and request id, unknown type bytes as
    /// [`RecordType::Other`]. For tests, fuzzing and an application-side peer.
    pub fn unrestricted() -> Self {
        Self::with_request_id(None)
    }

    fn with_request_id(request_id: Option<u16>) -> Self {
        Self {
            request_id,
            max_content_len: MAX_CONTENT_LEN,
            header: None,
            padding: 0,
            buffered: 0,
            ended: false,
            failed: None,
        }
    }

    /// Rejects records with more than `max` content bytes ([`FcgiError::ContentTooLong`]),
    /// before their content is buffered. The format's own limit is 65535.
    pub fn with_max_content_len(mut self, max: u16) -> Self {
        self.max_content_len = max as usize;
        self
    }

    /// The request id this decoder expects (`None` when unrestricted).
    pub fn request_id(&self) -> Option<u16> {
        self.request_id
    }

    /// True once the END_REQUEST of the expected request has been decoded.
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// Expects the next request on a kept-alive connection. The framing state is kept (a
    /// padding tail of the last record may still be due); a sticky error stays.
    pub fn next_request(&mut self, request_id: u16) {
        self.request_id = Some(request_id);
        self.ended = false;
    }

    /// True when the decoder stands at a record boundary with no bytes left over from the last
    /// call: the connection can be reused (after END_REQUEST) or closed without loss.
    pub fn is_idle(&self) -> bool {
        self.failed.is_none() && self.header.is_none() && self.padding == 0 && self.buffered == 0
    }

    /// Takes the next complete record off the front of `buf`; `Ok(None)` when more bytes are
    /// needed (a partial record is not an error here: see [`finish`](Self::finish)).
    ///
    /// Validation happens as soon as the 8 header bytes are in, before any content is waited
    /// for; a rejected header is left in `buf`.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Record>, FcgiError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let result = self.step(buf);
        self.buffered = buf.len();
        if let Err(e) = &result {
            self.failed = Some(e.clone());
        }
        result
    }

    /// Reports a stream that ended (EOF) inside a record, judged by the state the last
    /// [`decode`](Self::decode) call left: call it after `decode` returned `Ok(None)`.
    pub fn finish(&self) -> Result<(), FcgiError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let incomplete = match self.header {
            Some(h) => Some((
                HEADER_LEN + self.buffered,
                HEADER_LEN + h.content_len + h.padding_len,
            )),
            // The content was delivered, its padding never came.
            None if self.padding > 0 => Some((0, self.padding)),
            None if self.buffered > 0 => Some((self.buffered, HEADER_LEN)),
            None => None,
        };
        match incomplete {
            Some((have, need)) => Err(FcgiError::Truncated { have, need }),
            None => Ok(()),
        }
    }

    fn step(&mut self, buf: &mut BytesMut) -> Result<Option<Record>, FcgiError> {
        self.skip_padding(buf);
        if self.padding > 0 {
            return Ok(None);
        }
        let header = match self.header {
            Some(header) => header,
            None => {
                if buf.len() < HEADER_LEN {
                    return Ok(None);
                }
                let header = self.parse_header(&buf[..HEADER_LEN])?;
                buf.advance(HEADER_LEN);
                self.header = Some(header);
                header
            }
        };
        if buf.len() < header.content_len {
            return Ok(None);
        }
        self.header = None;
        let content = buf.split_to(header.content_len).freeze();
        self.padding = header.padding_len;
        self.skip_padding(buf);
        if header.kind == RecordType::EndRequest && self.request_id.is_some() {
            self.ended = true;
        }
        Ok(Some(Record {
            kind: header.kind,
            request_id: header.request_id,
            content,
        }))
    }

    fn skip_padding(&mut self, buf: &mut BytesMut) {
        let n = self.padding.min(buf.len());
        buf.advance(n);
        self.padding -= n;
    }

    fn parse_header(&self, raw: &[u8]) -> Result<Header, FcgiError> {
        if raw[0] != VERSION {
            return Err(FcgiError::BadVersion(raw[0]));
        }
        let header = Header {
            kind: RecordType::from_u8(raw[1]),
            request_id: u16::from_be_bytes([raw[2], raw[3]]),
            content_len: u16::from_be_bytes([raw[4], raw[5]]) as usize,
            padding_len: raw[6] as usize,
        };
        let (kind, request_id) = (header.kind, header.request_id);
        if let Some(expected) = self.request_id {
            match kind {
                RecordType::Stdout | RecordType::Stderr | RecordType::EndRequest => {
                    if request_id != expected {
                        return Err(FcgiError::WrongRequestId {
                            kind,
                            expected,
                            got: request_id,
                        });
                    }
                    if self.ended {
                        return Err(FcgiError::RecordAfterEnd { kind, request_id });
                    }
                }
                RecordType::GetValuesResult | RecordType::UnknownType => {
                    if request_id != NULL_REQUEST_ID {
                        return Err(FcgiError::WrongRequestId {
                            kind,
                            expected: NULL_REQUEST_ID,
                            got: request_id,
                        });
                    }
                }
                RecordType::Other(code) => return Err(FcgiError::UnknownRecordType(code)),
                _ => return Err(FcgiError::UnexpectedRecord { kind, request_id }),
            }
        }
        let len = header.content_len;
        if let Some(expected) = kind.fixed_content_len().filter(|&n| n != len) {
            return Err(FcgiError::BadBodyLength { kind, len, expected });
        }
        if len > self.max_content_len {
            return Err(FcgiError::ContentTooLong {
                kind,
                len,
                max: self.max_content_len,
            });
        }
        Ok(header)
    }
}

// ---------------------------------------------------------------------------------------------
// Record bodies

/// The body of an END_REQUEST.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndRequest {
    /// The application's exit status (CGI-style; php-fpm sends 0).
    pub app_status: u32,
    /// Whether the request completed, and if not, why.
    pub protocol_status: ProtocolStatus,
}

/// Parses END_REQUEST content (exactly 8 bytes: app status, protocol status, 3 reserved).
pub fn parse_end_request(content: &[u8]) -> Result<EndRequest, FcgiError> {
    let body: &[u8; 8] = fixed_body(RecordType::EndRequest, content)?;
    Ok(EndRequest {
        app_status: u32::from_be_bytes([body[0], body[1], body[2], body[3]]),
        protocol_status: ProtocolStatus::from_u8(body[4]),
    })
}

/// The body of a BEGIN_REQUEST.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BeginRequest {
    /// The role asked for.
    pub role: Role,
    /// `FCGI_KEEP_CONN` was set.
    pub keep_conn: bool,
}

/// Parses BEGIN_REQUEST content (exactly 8 bytes: role, flags, 5 reserved).
pub fn parse_begin_request(content: &[u8]) -> Result<BeginRequest, FcgiError> {
    let body: &[u8; 8] = fixed_body(RecordType::BeginRequest, content)?;
    Ok(BeginRequest {
        role: Role::from_u16(u16::from_be_bytes([body[0], body[1]])),
        keep_conn: body[2] & KEEP_CONN != 0,
    })
}

/// Parses UNKNOWN_TYPE content (exactly 8 bytes) into the type byte it names.
pub fn parse_unknown_type(content: &[u8]) -> Result<u8, FcgiError> {
    Ok(fixed_body(RecordType::UnknownType, content)?[0])
}

fn fixed_body(kind: RecordType, content: &[u8]) -> Result<&[u8; 8], FcgiError> {
    content.try_into().map_err(|_| FcgiError::BadBodyLength {
        kind,
        len: content.len(),
        expected: 8,
    })
}

/// Iterates over the name-value pairs of complete content (a GET_VALUES_RESULT record, or a
/// PARAMS stream joined up); see [`pairs`].
#[derive(Debug, Clone)]
pub struct Pairs<'a> {
    rest: &'a [u8],
    failed: bool,
}

/// A name and its value, borrowed from record content.
pub type Pair<'a> = (&'a [u8], &'a [u8]);

/// The name-value pairs in `content`, each borrowed from it. A length that runs past the end
/// of `content` yields [`FcgiError::PairOverrun`] and ends the iteration.
pub fn pairs(content: &[u8]) -> Pairs<'_> {
    Pairs {
        rest: content,
        failed: false,
    }
}

/// Parses all name-value pairs of `content`, e.g. a GET_VALUES_RESULT.
pub fn parse_pairs(content: &[u8]) -> Result<Vec<Pair<'_>>, FcgiError> {
    pairs(content).collect()
}

impl<'a> Pairs<'a> {
    fn decode_len(&mut self) -> Result<usize, FcgiError> {
        let overrun = |need, have| FcgiError::PairOverrun { need, have };
        match *self.rest {
            [b, ..] if b & 0x80 == 0 => {
                self.rest = &self.rest[1..];
                Ok(b as usize)
            }
            [b0, b1, b2, b3, ..] => {
                self.rest = &self.rest[4..];
                Ok((u32::from_be_bytes([b0, b1, b2, b3]) & 0x7fff_ffff) as usize)
            }
            [] => Err(overrun(1, 0)),
            _ => Err(overrun(4, self.rest.len())),
        }
    }

    fn decode_pair(&mut self) -> Result<Pair<'a>, FcgiError> {
        let name_len = self.decode_len()?;
        let value_len = self.decode_len()?;
        // u64: two 31-bit lengths can't overflow it, whatever the platform's usize.
        let need = name_len as u64 + value_len as u64;
        if need > self.rest.len() as u64 {
            return Err(FcgiError::PairOverrun {
                need,
                have: self.rest.len(),
            });
        }
        let (name, rest) = self.rest.split_at(name_len);
        let (value, rest) = rest.split_at(value_len);
        self.rest = rest;
        Ok((name, value))
    }
}

impl<'a> Iterator for Pairs<'a> {
    type Item = Result<Pair<'a>, FcgiError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        let pair = self.decode_pair();
        self.failed = pair.is_err();
        Some(pair)
    }
}

#[cfg(test)]
mod tests;
