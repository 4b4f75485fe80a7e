//! HTTP/1.1 message framing for the lean upstream client: response head parsing, body
//! framing (RFC 9112 §6.3) and a streaming chunked decoder.
//!
//! Sans-io and allocation-light: the head is parsed in place and header fields are returned
//! as byte ranges into the caller's buffer.
//!
//! Strict where a lenient reading could desynchronise the connection or smuggle a response:
//! `Content-Length` is digits only (a list of identical values, which RFC 9112 §6.3 lets a
//! recipient accept, is taken as one value; differing ones are an error), `chunked` may appear
//! once in `Transfer-Encoding`, a status outside 100..=599 is an error, chunk extensions may
//! not hold control bytes and the trailer section is capped at [`MAX_TRAILERS`].

use std::mem::MaybeUninit;
use std::ops::Range;

use bytes::{Buf, Bytes, BytesMut};

/// Largest response head accepted from a backend.
pub const MAX_HEAD: usize = 64 * 1024;

/// Most header fields accepted in a response head.
pub const MAX_HEADERS: usize = 128;

/// Largest trailer section (after the last chunk) accepted from a backend, in bytes.
pub const MAX_TRAILERS: usize = 8 * 1024;

/// How the response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (HEAD, 1xx, 204, 304).
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the backend closes the connection.
    UntilClose,
}

/// A parsed response head; header fields are ranges into the parsed buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct ResponseHead {
    /// The status code, within 100..=599 (101 is left to the caller to act on).
    pub status: u16,
    /// Bytes of the head including the final CRLF.
    pub len: usize,
    /// Every header field as (name, value) ranges into the buffer, in order.
    pub headers: Vec<(Range<usize>, Range<usize>)>,
    /// How the body that follows is delimited.
    pub framing: Framing,
    /// The `Content-Length` the backend announced (also for HEAD and 304).
    pub content_length: Option<u64>,
    /// The connection may carry another request after this response.
    pub keep_alive: bool,
}

/// Why a response head is unacceptable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeadError {
    #[error("malformed response head: {0}")]
    Malformed(String),
    #[error("response head larger than {MAX_HEAD} bytes")]
    TooLarge,
    /// A `Content-Length` that is not digits only, or values that differ.
    #[error("invalid or conflicting Content-Length")]
    BadLength,
    /// `chunked` appears more than once in `Transfer-Encoding`.
    #[error("Transfer-Encoding applies chunked more than once")]
    RepeatedChunked,
    /// A status code outside 100..=599.
    #[error("response status {0} is outside 100..=599")]
    BadStatus(u16),
}

/// Parses a response head at the start of `buf`; `Ok(None)` when more bytes are needed.
pub fn parse_response_head(buf: &[u8], head_request: bool) -> Result<Option<ResponseHead>, HeadError> {
    // Left uninitialised: filling 128 empty headers costs more than parsing a typical head.
    let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut []);
    let parsed =
        httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut res, buf, &mut fields);
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => return Err(HeadError::TooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(e) => return Err(HeadError::Malformed(e.to_string())),
    };
    // The same limit whether the head arrived in one read or in many.
    if len > MAX_HEAD {
        return Err(HeadError::TooLarge);
    }
    let status = res.code.unwrap_or(0);
    if !(100..=599).contains(&status) {
        return Err(HeadError::BadStatus(status));
    }
    let http11 = res.version == Some(1);
    let base = buf.as_ptr() as usize;
    let range = |s: &[u8]| {
        let start = s.as_ptr() as usize - base;
        start..start + s.len()
    };
    let mut headers = Vec::with_capacity(res.headers.len());
    let (mut length, mut close, mut keep) = (None, false, false);
    // Transfer-Encoding fields are one list (RFC 9110 §5.3): what counts is its last coding
    // and how often `chunked` appears in it.
    let (mut te, mut last_coding_chunked, mut chunked_seen) = (false, false, 0u32);
    for h in res.headers.iter() {
        headers.push((range(h.name.as_bytes()), range(h.value)));
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            let n = content_length(h.value)?;
            if length.is_some_and(|l| l != n) {
                return Err(HeadError::BadLength);
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            te = true;
            for coding in tokens(h.value).filter(|t| !t.is_empty()) {
                last_coding_chunked = coding.eq_ignore_ascii_case(b"chunked");
                chunked_seen += u32::from(last_coding_chunked);
            }
        } else if name.eq_ignore_ascii_case(b"connection") {
            close |= has_token(h.value, b"close");
            keep |= has_token(h.value, b"keep-alive");
        }
    }
    if chunked_seen > 1 {
        return Err(HeadError::RepeatedChunked);
    }
    let chunked = last_coding_chunked;
    let framing = if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
        Framing::None
    } else if te {
        // Transfer-Encoding overrides Content-Length; a final coding other than chunked
        // can only be delimited by closing the connection.
        if chunked {
            Framing::Chunked
        } else {
            Framing::UntilClose
        }
    } else {
        length.map_or(Framing::UntilClose, Framing::Length)
    };
    let keep_alive = !close && (http11 || keep) && framing != Framing::UntilClose;
    Ok(Some(ResponseHead {
        status,
        len,
        headers,
        framing,
        content_length: length,
        keep_alive,
    }))
}

fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(|t| t.trim_ascii())
}

fn has_token(value: &[u8], token: &[u8]) -> bool {
    tokens(value).any(|t| t.eq_ignore_ascii_case(token))
}

/// A `Content-Length` value: ASCII digits, or a comma list of identical digit strings' value
/// (`5, 5`, as an intermediary that merged repeated fields writes). Signs, blanks, empty list
/// elements and values past `u64` are errors.
fn content_length(value: &[u8]) -> Result<u64, HeadError> {
    let mut found = None;
    for element in value.split(|&b| b == b',') {
        let digits = element.trim_ascii();
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return Err(HeadError::BadLength);
        }
        let n = std::str::from_utf8(digits)
            .ok()
            .and_then(|d| d.parse::<u64>().ok())
            .ok_or(HeadError::BadLength)?;
        if found.is_some_and(|f| f != n) {
            return Err(HeadError::BadLength);
        }
        found = Some(n);
    }
    found.ok_or(HeadError::BadLength)
}

/// What the chunked decoder produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Chunk {
    Data(Bytes),
    /// Feed more bytes.
    NeedMore,
    /// The last chunk and the trailers were read.
    Done,
}

/// A malformed chunked body.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed chunked body: {0}")]
pub struct ChunkError(&'static str);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Size { digits: u8 },
    Extension,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    TrailerStart,
    TrailerLine,
    EndLf,
    Done,
}

/// A streaming decoder of `Transfer-Encoding: chunked`; trailers are read (at most
/// [`MAX_TRAILERS`] bytes) and dropped.
#[derive(Debug)]
pub struct ChunkedDecoder {
    state: State,
    remaining: u64,
    /// Trailer section bytes read so far.
    trailers: usize,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder {
            state: State::Size { digits: 0 },
            remaining: 0,
            trailers: 0,
        }
    }
}

impl ChunkedDecoder {
    /// Consumes framing bytes from `buf` and returns the next piece of data, if any.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Chunk, ChunkError> {
        loop {
            if self.state == State::Done {
                return Ok(Chunk::Done);
            }
            if self.state == State::Data {
                if buf.is_empty() {
                    return Ok(Chunk::NeedMore);
                }
                let n = buf
                    .len()
                    .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
                self.remaining -= n as u64;
                if self.remaining == 0 {
                    self.state = State::DataCr;
                }
                return Ok(Chunk::Data(buf.split_to(n).freeze()));
            }
            let Some(&b) = buf.first() else {
                return Ok(Chunk::NeedMore);
            };
            buf.advance(1);
            self.state = self.step(b)?;
        }
    }

    fn step(&mut self, b: u8) -> Result<State, ChunkError> {
        if matches!(
            self.state,
            State::TrailerStart | State::TrailerLine | State::EndLf
        ) {
            // Trailers are dropped, so without a cap a backend could stream them forever.
            self.trailers += 1;
            if self.trailers > MAX_TRAILERS {
                return Err(ChunkError("trailer section too large"));
            }
        }
        Ok(match (self.state, b) {
            (State::Size { digits }, _) if b.is_ascii_hexdigit() => {
                if digits >= 15 {
                    return Err(ChunkError("chunk size too large"));
                }
                let v = u64::from((b as char).to_digit(16).unwrap_or(0));
                self.remaining = self.remaining * 16 + v;
                State::Size { digits: digits + 1 }
            }
            (State::Size { digits }, b';' | b' ' | b'\t') if digits > 0 => State::Extension,
            (State::Size { digits }, b'\r') if digits > 0 => State::SizeLf,
            (State::Size { .. }, _) => return Err(ChunkError("bad chunk size")),
            (State::Extension, b'\r') => State::SizeLf,
            // A bare LF or other control byte here is how request smuggling hides a chunk
            // boundary from one parser and not another (RFC 9112 §7.1.1: extensions are tokens
            // and quoted strings).
            (State::Extension, _) if is_ctl(b) => return Err(ChunkError("control byte in chunk extension")),
            (State::Extension, _) => State::Extension,
            (State::SizeLf, b'\n') if self.remaining == 0 => State::TrailerStart,
            (State::SizeLf, b'\n') => State::Data,
            (State::DataCr, b'\r') => State::DataLf,
            (State::DataLf, b'\n') => State::Size { digits: 0 },
            (State::TrailerStart, b'\r') => State::EndLf,
            (State::TrailerStart | State::TrailerLine, b'\n') => State::TrailerStart,
            (State::TrailerStart | State::TrailerLine, _) => State::TrailerLine,
            (State::EndLf, b'\n') => State::Done,
            _ => return Err(ChunkError("missing CRLF")),
        })
    }
}

/// A control byte other than HTAB (RFC 5234 CTL).
fn is_ctl(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str, head_request: bool) -> ResponseHead {
        parse_response_head(raw.as_bytes(), head_request)
            .expect("valid")
            .expect("complete")
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let h = head(
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello",
            false,
        );
        assert_eq!(
            (h.status, h.framing, h.keep_alive, h.len),
            (200, Framing::Length(5), true, 46)
        );
        let raw = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 9\r\n\r\n";
        assert_eq!(head(raw, false).framing, Framing::Chunked);
        let h = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false);
        assert_eq!((h.framing, h.keep_alive), (Framing::UntilClose, false));
        assert_eq!(
            head("HTTP/1.1 200 OK\r\n\r\n", false).framing,
            Framing::UntilClose
        );
        assert_eq!(
            head("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true).framing,
            Framing::None
        );
        for status in ["204 No Content", "304 Not Modified", "101 Switching"] {
            let raw = format!("HTTP/1.1 {status}\r\nContent-Length: 5\r\n\r\n");
            assert_eq!(head(&raw, false).framing, Framing::None);
        }
        assert!(
            !head(
                "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
                false
            )
            .keep_alive
        );
        assert!(!head("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false).keep_alive);
        assert!(
            head(
                "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n",
                false
            )
            .keep_alive
        );
    }

    #[test]
    fn header_ranges_point_into_the_buffer() {
        let raw = "HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n";
        let h = head(raw, false);
        let pairs: Vec<(&str, &str)> = h
            .headers
            .iter()
            .map(|(n, v)| (&raw[n.clone()], &raw[v.clone()]))
            .collect();
        assert_eq!(pairs, [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]);
    }

    #[test]
    fn bad_heads_are_errors_and_partial_heads_wait() {
        assert_eq!(
            parse_response_head(b"HTTP/1.1 200 OK\r\nX: y\r\n", false),
            Ok(None)
        );
        assert!(matches!(
            parse_response_head(b"HTTP/1.1 abc\r\n\r\n", false),
            Err(HeadError::Malformed(_))
        ));
        assert!(matches!(
            parse_response_head(b"garbage\r\n\r\n", false),
            Err(HeadError::Malformed(_))
        ));
        let two = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n";
        assert_eq!(parse_response_head(two, false).err(), Some(HeadError::BadLength));
        let bad = b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n";
        assert_eq!(parse_response_head(bad, false).err(), Some(HeadError::BadLength));
        let big = format!("HTTP/1.1 200 OK\r\nX: {}", "a".repeat(MAX_HEAD));
        assert_eq!(
            parse_response_head(big.as_bytes(), false).err(),
            Some(HeadError::TooLarge)
        );
        // Complete in one read is no way around the limit.
        let whole = big + "\r\n\r\n";
        assert_eq!(
            parse_response_head(whole.as_bytes(), false).err(),
            Some(HeadError::TooLarge)
        );
        let many: String = (0..MAX_HEADERS + 1).map(|i| format!("X-{i}: v\r\n")).collect();
        let raw = format!("HTTP/1.1 200 OK\r\n{many}\r\n");
        assert_eq!(
            parse_response_head(raw.as_bytes(), false).err(),
            Some(HeadError::TooLarge)
        );
    }

    fn head_error(raw: &str) -> Option<HeadError> {
        parse_response_head(raw.as_bytes(), false).err()
    }

    #[test]
    fn content_length_is_digits_only() {
        for value in [
            "+5",
            "-1",
            "",
            " ",
            "5 5",
            "0x5",
            "5,",
            ",5",
            "5,,5",
            "1e3",
            "５",
            "18446744073709551616",
        ] {
            let raw = format!("HTTP/1.1 200 OK\r\nContent-Length: {value}\r\n\r\n");
            assert_eq!(head_error(&raw), Some(HeadError::BadLength), "{value:?}");
        }
        assert_eq!(
            head_error("HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n"),
            Some(HeadError::BadLength)
        );
        // RFC 9112 §6.3: a list of identical values may be taken as that one value.
        for value in ["5, 5", "5,5", "05", "\t5 "] {
            let raw = format!("HTTP/1.1 200 OK\r\nContent-Length: {value}\r\n\r\n");
            assert_eq!(head(&raw, false).framing, Framing::Length(5), "{value:?}");
        }
        let twice = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5, 5\r\n\r\n";
        assert_eq!(head(twice, false).content_length, Some(5));
    }

    #[test]
    fn chunked_may_be_applied_once() {
        for te in [
            "Transfer-Encoding: chunked, chunked",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
            "Transfer-Encoding: chunked, gzip\r\nTransfer-Encoding: CHUNKED",
            "Transfer-Encoding: gzip, chunked\r\nTransfer-Encoding: chunked",
        ] {
            let raw = format!("HTTP/1.1 200 OK\r\n{te}\r\n\r\n");
            assert_eq!(head_error(&raw), Some(HeadError::RepeatedChunked), "{te:?}");
        }
        // Two fields are one list: the last coding decides.
        let raw = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(head(raw, false).framing, Framing::Chunked);
        let raw = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n";
        assert_eq!(head(raw, false).framing, Framing::UntilClose);
    }

    #[test]
    fn status_outside_100_to_599_is_an_error() {
        for code in [0, 99, 600, 999] {
            let raw = format!("HTTP/1.1 {code:03} X\r\nContent-Length: 0\r\n\r\n");
            assert_eq!(head_error(&raw), Some(HeadError::BadStatus(code)), "{code}");
        }
        for code in [100, 101, 599] {
            let raw = format!("HTTP/1.1 {code} X\r\n\r\n");
            assert_eq!(head(&raw, false).status, code);
        }
    }

    fn decode_all(input: &[u8], split: usize) -> Result<(Vec<u8>, bool), ChunkError> {
        let mut d = ChunkedDecoder::default();
        let (mut buf, mut out) = (BytesMut::new(), Vec::new());
        for piece in input.chunks(split.max(1)) {
            buf.extend_from_slice(piece);
            loop {
                match d.decode(&mut buf)? {
                    Chunk::Data(b) => out.extend_from_slice(&b),
                    Chunk::NeedMore => break,
                    Chunk::Done => return Ok((out, true)),
                }
            }
        }
        Ok((out, false))
    }

    #[test]
    fn chunked_bodies_decode_at_every_split() {
        let body = b"4\r\nWiki\r\n6;ext=1\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n0\r\nTrailer: x\r\n\r\n";
        for split in 1..body.len() {
            let (out, done) = decode_all(body, split).expect("valid");
            assert_eq!(
                (out.as_slice(), done),
                (&b"Wikipedia in \r\n\r\nchunks."[..], true),
                "split {split}"
            );
        }
        let (out, done) = decode_all(b"A\r\n0123456789\r\n", 3).expect("valid");
        assert_eq!((out.len(), done), (10, false), "truncated: no Done");
    }

    #[test]
    fn malformed_chunked_bodies_are_errors() {
        assert!(decode_all(b"x\r\n", 1).is_err());
        assert!(decode_all(b"\r\n", 1).is_err());
        assert!(decode_all(b"3\r\nabcX\r\n", 2).is_err());
        assert!(decode_all(b"ffffffffffffffffff\r\n", 4).is_err());
    }

    #[test]
    fn control_bytes_in_chunk_extensions_are_errors() {
        for ext in [&b"\n"[..], b"\0", b"\x1b", b"\x7f", b"\x0b"] {
            let mut body = b"3;a=".to_vec();
            body.extend_from_slice(ext);
            body.extend_from_slice(b"\r\nabc\r\n0\r\n\r\n");
            for split in [1, body.len()] {
                assert_eq!(
                    decode_all(&body, split).err(),
                    Some(ChunkError("control byte in chunk extension")),
                    "{ext:?} split {split}"
                );
            }
        }
        let tab = b"3;a=\"x\ty\"\t\r\nabc\r\n0\r\n\r\n";
        assert_eq!(decode_all(tab, 1), Ok((b"abc".to_vec(), true)));
    }

    #[test]
    fn the_trailer_section_is_capped() {
        // The section counts every byte after the last chunk's line, final CRLF included.
        let field = |len: usize| format!("X: {}\r\n", "a".repeat(len - 5));
        let fits = format!("0\r\n{}\r\n", field(MAX_TRAILERS - 2));
        assert_eq!(decode_all(fits.as_bytes(), 7), Ok((Vec::new(), true)));
        let over = format!("0\r\n{}\r\n", field(MAX_TRAILERS - 1));
        assert_eq!(
            decode_all(over.as_bytes(), 7).err(),
            Some(ChunkError("trailer section too large"))
        );
        // Many small fields add up too.
        let many = format!("0\r\n{}\r\n", "X: y\r\n".repeat(MAX_TRAILERS / 6 + 1));
        assert!(decode_all(many.as_bytes(), 64).is_err());
    }
}
