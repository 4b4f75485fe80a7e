//! The body of a served file: literal pieces (multipart part headers) and file segments read in
//! large chunks with positioned reads from the already-open file.
//!
//! Hot path. Reads hit the page cache on the worker thread; there is no hop to a blocking pool.
//! The length is fixed up front, so a file that shrinks mid-response ends the body with an error
//! instead of a short body that contradicts its `Content-Length`.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::task::{Context, Poll};

use bytes::Bytes;

use super::ranges::ByteRange;

/// How much of the file one poll reads at most.
pub const CHUNK_SIZE: usize = 128 * 1024;

/// One piece of a body, in order.
#[derive(Debug)]
pub enum Segment {
    /// Bytes sent as they are.
    Literal(Bytes),
    /// `remaining` bytes of the file starting at `offset`.
    File { offset: u64, remaining: u64 },
}

impl Segment {
    /// All `size` bytes of the file.
    pub fn whole_file(size: u64) -> Self {
        Segment::File {
            offset: 0,
            remaining: size,
        }
    }

    /// The part of the file `range` spans.
    pub fn file_range(range: ByteRange) -> Self {
        Segment::File {
            offset: range.first,
            remaining: range.len(),
        }
    }

    fn len(&self) -> u64 {
        match self {
            Segment::Literal(bytes) => bytes.len() as u64,
            Segment::File { remaining, .. } => *remaining,
        }
    }
}

/// A response body that streams (parts of) an open file.
#[derive(Debug)]
pub struct FileBody {
    len: u64,
    /// `None` once the body is done, failed or was empty to begin with (closes the file early).
    content: Option<Content>,
}

#[derive(Debug)]
struct Content {
    file: File,
    segments: VecDeque<Segment>,
}

impl FileBody {
    /// A body without bytes (HEAD, 304, errors).
    pub(super) fn empty() -> Self {
        FileBody {
            len: 0,
            content: None,
        }
    }

    /// A body of `segments`, the file ones read from `file`.
    pub(super) fn new(file: File, segments: Vec<Segment>) -> Self {
        let len = segments.iter().map(Segment::len).sum();
        FileBody {
            len,
            content: Some(Content {
                file,
                segments: segments.into(),
            }),
        }
    }

    /// Exact number of body bytes that `poll_next` yields in total (0 for HEAD, 304, errors with
    /// an empty body).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the body has no bytes at all.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Next piece of the body; `None` at the end. Never `Pending`: file reads complete at once.
    pub fn poll_next(&mut self, _cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        Poll::Ready(self.next_piece())
    }

    fn next_piece(&mut self) -> Option<io::Result<Bytes>> {
        let content = self.content.as_mut()?;
        let piece = content.next_piece();
        if !matches!(piece, Some(Ok(_))) {
            self.content = None;
        }
        piece
    }
}

impl Content {
    fn next_piece(&mut self) -> Option<io::Result<Bytes>> {
        loop {
            match self.segments.front_mut()? {
                Segment::Literal(bytes) => {
                    let bytes = std::mem::take(bytes);
                    self.segments.pop_front();
                    if !bytes.is_empty() {
                        return Some(Ok(bytes));
                    }
                }
                Segment::File { remaining: 0, .. } => {
                    self.segments.pop_front();
                }
                Segment::File { offset, remaining } => {
                    let chunk = read_chunk(&self.file, *offset, *remaining);
                    if let Ok(chunk) = &chunk {
                        *offset += chunk.len() as u64;
                        *remaining -= chunk.len() as u64;
                    }
                    return Some(chunk);
                }
            }
        }
    }
}

/// Reads up to `CHUNK_SIZE` of the `remaining` bytes at `offset`; a file that ends early is an
/// error. The buffer is not zeroed first: `read_to_end` reads into its spare capacity.
fn read_chunk(mut file: &File, offset: u64, remaining: u64) -> io::Result<Bytes> {
    let want = CHUNK_SIZE.min(usize::try_from(remaining).unwrap_or(usize::MAX));
    let mut buf = Vec::with_capacity(want);
    file.seek(SeekFrom::Start(offset))?;
    file.take(want as u64).read_to_end(&mut buf)?;
    if buf.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("file shrank while being served: nothing at offset {offset}"),
        ));
    }
    Ok(Bytes::from(buf))
}
