//! The body of a served file: literal pieces (multipart part headers) and file segments, sent
//! by the client connection itself with `sendfile(2)` when it can, else read in large chunks
//! with positioned reads from the already-open file.
//!
//! Hot path, but no read waits on the disk on the worker thread. A span whose pages are in
//! the page cache goes to the connection's [`FileSink`] (zero-copy, no read at all); any other
//! chunk is read on the runtime's blocking pool, so a cold disk stalls a pool thread instead of
//! every connection of the worker. Without a sink, while a chunk is being sent the next one of
//! its segment is already being read, so a response holds at most two chunks. The length is
//! fixed up front, so a file that shrinks mid-response ends the body with an error instead of a
//! short body that contradicts its `Content-Length`.

use std::collections::VecDeque;
use std::fs::File;
use std::future::Future;
use std::io::{self, Read, Seek, SeekFrom};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use tokio::task::JoinHandle;

use super::ranges::ByteRange;
use crate::transport::file_sink::{is_resident, FileSink, SPAN};

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

/// What a body produced: bytes to write, or bytes the connection already sent itself.
#[derive(Debug)]
pub enum FilePiece {
    Bytes(Bytes),
    /// A span of the file went out with `sendfile(2)` ([`FileBody::send_through`]).
    Sent(u64),
}

#[derive(Debug)]
struct Content {
    segments: VecDeque<Segment>,
    file: Arc<File>,
    /// The read in flight: the next bytes of the front file segment (already counted off it).
    read: Option<JoinHandle<io::Result<Bytes>>>,
    /// The client connection's zero-copy sender, when it has one.
    sink: Option<FileSink>,
    /// The span of the front file segment handed to `sink` (not yet counted off it).
    sending: Option<u64>,
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
                segments: segments.into(),
                file: Arc::new(file),
                read: None,
                sink: None,
                sending: None,
            }),
        }
    }

    /// Lets the client connection send the file's cached spans itself, with `sendfile(2)`:
    /// those come back as [`FilePiece::Sent`] instead of bytes.
    pub fn send_through(&mut self, sink: FileSink) {
        if let Some(content) = self.content.as_mut() {
            content.sink = Some(sink);
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

    /// Next piece of the body; `None` at the end. `Pending` while a chunk is read off the
    /// worker thread or a span is being sent by the connection (`cx` is woken when done).
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<FilePiece>>> {
        let Some(content) = self.content.as_mut() else {
            return Poll::Ready(None);
        };
        let piece = ready!(content.poll_piece(cx));
        if !matches!(piece, Some(Ok(_))) {
            self.content = None;
        }
        Poll::Ready(piece)
    }
}

impl Drop for Content {
    fn drop(&mut self) {
        if let (Some(sink), Some(_)) = (&self.sink, self.sending) {
            sink.cancel();
        }
    }
}

impl Content {
    fn poll_piece(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<FilePiece>>> {
        loop {
            if let Some(read) = self.read.as_mut() {
                let done = ready!(Pin::new(read).poll(cx));
                self.read = None;
                let chunk = match done {
                    Ok(chunk) => chunk,
                    Err(lost) => return Poll::Ready(Some(Err(io::Error::other(lost)))),
                };
                if chunk.is_ok() && self.sink.is_none() {
                    // Read ahead while this chunk is sent (with a sink, the next span may be
                    // cached by now and go out zero-copy instead).
                    if let Err(err) = self.start_read() {
                        return Poll::Ready(Some(Err(err)));
                    }
                }
                return Poll::Ready(Some(chunk.map(FilePiece::Bytes)));
            }
            if let Some(sent) = ready!(self.poll_sending(cx)) {
                return Poll::Ready(Some(sent.map(FilePiece::Sent)));
            }
            match self.segments.front_mut() {
                None => return Poll::Ready(None),
                Some(Segment::Literal(bytes)) => {
                    let bytes = std::mem::take(bytes);
                    self.segments.pop_front();
                    if !bytes.is_empty() {
                        return Poll::Ready(Some(Ok(FilePiece::Bytes(bytes))));
                    }
                }
                Some(Segment::File { remaining: 0, .. }) => {
                    self.segments.pop_front();
                }
                Some(&mut Segment::File { offset, remaining }) => {
                    let span = remaining.min(SPAN);
                    if self.sink.is_some() && is_resident(&self.file, offset, span) {
                        self.sending = Some(span);
                    } else if let Err(err) = self.start_read() {
                        return Poll::Ready(Some(Err(err)));
                    }
                }
            }
        }
    }

    /// The span handed to the connection: `Ready(None)` if there is none, `Pending` until it
    /// is sent, then how many bytes went out (counted off the front segment).
    fn poll_sending(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<u64>>> {
        let (Some(span), Some(sink)) = (self.sending, self.sink.as_ref()) else {
            return Poll::Ready(None);
        };
        let Some(Segment::File { offset, remaining }) = self.segments.front_mut() else {
            return Poll::Ready(None);
        };
        let sent = ready!(sink.poll_send(cx, &self.file, *offset, span));
        self.sending = None;
        if sent.is_ok() {
            *offset += span;
            *remaining -= span;
        }
        Poll::Ready(Some(sent.map(|()| span)))
    }

    /// Starts reading the next chunk of the front segment on the blocking pool, if that is a
    /// file segment with bytes left and no read is in flight.
    fn start_read(&mut self) -> io::Result<()> {
        let Some(Segment::File { offset, remaining }) = self.segments.front_mut() else {
            return Ok(());
        };
        if *remaining == 0 || self.read.is_some() || self.sending.is_some() {
            return Ok(());
        }
        let (at, want) = (
            *offset,
            CHUNK_SIZE.min(usize::try_from(*remaining).unwrap_or(usize::MAX)),
        );
        *offset += want as u64;
        *remaining -= want as u64;
        let file = self.file.clone();
        self.read = Some(blocking(move || read_chunk(&file, at, want))?);
        Ok(())
    }
}

/// Runs `work` on the current runtime's blocking pool, where a thread may wait on the disk.
pub(super) fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> io::Result<JoinHandle<T>> {
    let runtime = tokio::runtime::Handle::try_current().map_err(io::Error::other)?;
    Ok(runtime.spawn_blocking(work))
}

/// Reads the `want` bytes at `offset`; a file that ends before them is an error. The buffer is
/// not zeroed first: `read_to_end` reads into its spare capacity.
fn read_chunk(mut file: &File, offset: u64, want: usize) -> io::Result<Bytes> {
    let mut buf = Vec::with_capacity(want);
    file.seek(SeekFrom::Start(offset))?;
    file.take(want as u64).read_to_end(&mut buf)?;
    if buf.len() < want {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "file shrank while being served: {} of {want} bytes at offset {offset}",
                buf.len()
            ),
        ));
    }
    Ok(Bytes::from(buf))
}
