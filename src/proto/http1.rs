//! HTTP/1.1 message framing for the lean upstream client: response head parsing, body
//! framing (RFC 9112 §6.3) and a streaming chunked decoder.
//!
//! Sans-io and allocation-light: the head is parsed in place and header fields are returned
//! as byte ranges into the caller's buffer.

use std::ops::Range;

use bytes::{Buf, Bytes, BytesMut};

/// Largest response head accepted from a backend.
pub const MAX_HEAD: usize = 64 * 1024;

/// Most header fields accepted in a response head.
pub const MAX_HEADERS: usize = 128;

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
    pub status: u16,
    /// Bytes of the head including the final CRLF.
    pub len: usize,
    pub headers: Vec<(Range<usize>, Range<usize>)>,
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
    #[error("conflicting Content-Length values")]
    BadLength,
}

/// Parses a response head at the start of `buf`; `Ok(None)` when more bytes are needed.
pub fn parse_response_head(buf: &[u8], head_request: bool) -> Result<Option<ResponseHead>, HeadError> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut fields);
    let len = match res.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => return Err(HeadError::TooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(e) => return Err(HeadError::Malformed(e.to_string())),
    };
    let status = res.code.unwrap_or(0);
    let http11 = res.version == Some(1);
    let base = buf.as_ptr() as usize;
    let range = |s: &[u8]| {
        let start = s.as_ptr() as usize - base;
        start..start + s.len()
    };
    let mut headers = Vec::with_capacity(res.headers.len());
    let (mut length, mut chunked, mut te, mut close, mut keep) = (None, false, false, false, false);
    for h in res.headers.iter() {
        headers.push((range(h.name.as_bytes()), range(h.value)));
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or(HeadError::BadLength)?;
            if length.is_some_and(|l| l != n) {
                return Err(HeadError::BadLength);
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            te = true;
            chunked = last_token_is(h.value, b"chunked");
        } else if name.eq_ignore_ascii_case(b"connection") {
            close |= has_token(h.value, b"close");
            keep |= has_token(h.value, b"keep-alive");
        }
    }
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

fn last_token_is(value: &[u8], token: &[u8]) -> bool {
    tokens(value)
        .filter(|t| !t.is_empty())
        .last()
        .is_some_and(|t| t.eq_ignore_ascii_case(token))
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

/// A streaming decoder of `Transfer-Encoding: chunked`; trailers are read and dropped.
#[derive(Debug)]
pub struct ChunkedDecoder {
    state: State,
    remaining: u64,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder {
            state: State::Size { digits: 0 },
            remaining: 0,
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
        let many: String = (0..MAX_HEADERS + 1).map(|i| format!("X-{i}: v\r\n")).collect();
        let raw = format!("HTTP/1.1 200 OK\r\n{many}\r\n");
        assert_eq!(
            parse_response_head(raw.as_bytes(), false).err(),
            Some(HeadError::TooLarge)
        );
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
}
