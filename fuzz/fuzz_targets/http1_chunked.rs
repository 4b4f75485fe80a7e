//! Fuzzes the chunked body decoder: whatever the backend sends and however the socket reads
//! split it, the decoder may not panic, and it must produce the same data and the same end
//! (done, error or wanting more) as when it gets the whole input at once.
//!
//! Run with `cargo +nightly fuzz run http1_chunked` from the repository root.

#![no_main]

use bytes::BytesMut;
use director::proto::http1::{Chunk, ChunkError, ChunkedDecoder};
use libfuzzer_sys::fuzz_target;

/// How one decoding ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    Done,
    NeedMore,
    Failed(ChunkError),
}

/// Feeds `input` in pieces of `split` bytes; returns the data and how it ended.
fn decode(input: &[u8], split: usize) -> (Vec<u8>, End) {
    let mut decoder = ChunkedDecoder::default();
    let (mut buf, mut out) = (BytesMut::new(), Vec::new());
    for piece in input.chunks(split) {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Chunk::Data(data)) => {
                    assert!(!data.is_empty(), "empty data chunk");
                    out.extend_from_slice(&data);
                }
                Ok(Chunk::NeedMore) => {
                    assert!(buf.is_empty(), "NeedMore with bytes left");
                    break;
                }
                Ok(Chunk::Done) => return (out, End::Done),
                Err(e) => return (out, End::Failed(e)),
            }
        }
    }
    (out, End::NeedMore)
}

fuzz_target!(|data: &[u8]| {
    // The first byte chooses the size of each socket read (1 to 256 bytes).
    let (split, input) = match data {
        [s, rest @ ..] => (usize::from(*s) + 1, rest),
        [] => return,
    };
    let (out, end) = decode(input, split);
    assert!(out.len() <= input.len());
    let whole = decode(input, input.len().max(1));
    assert_eq!((out, end), whole, "split {split}");
});
