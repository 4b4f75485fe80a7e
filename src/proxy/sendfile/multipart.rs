//! `multipart/byteranges` bodies (RFC 9110 §14.6): part headers interleaved with file segments,
//! and the boundary that separates them.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use super::body::Segment;
use super::ranges::ByteRange;

/// A fresh boundary: 128 bits from randomly keyed SipHash, so a file can't be crafted to contain
/// it.
pub fn new_boundary() -> String {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let mut halves = [0u64; 2];
    for half in &mut halves {
        // Every `RandomState::new()` has new keys; the sequence number varies the input as well.
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(SEQUENCE.fetch_add(1, Ordering::Relaxed));
        *half = hasher.finish();
    }
    format!("director-{:016x}{:016x}", halves[0], halves[1])
}

/// The `Content-Type` of a multipart response with `boundary`.
pub fn content_type(boundary: &str) -> String {
    format!("multipart/byteranges; boundary={boundary}")
}

/// The body segments: for each range a delimiter with `Content-Type` and `Content-Range`, then
/// its bytes; finally the closing delimiter.
pub fn segments(ranges: &[ByteRange], size: u64, part_type: &str, boundary: &str) -> Vec<Segment> {
    let mut segments = Vec::with_capacity(ranges.len() * 2 + 1);
    for (index, range) in ranges.iter().enumerate() {
        // The CRLF before a delimiter belongs to the delimiter (RFC 2046 §5.1.1).
        let lead = if index == 0 { "" } else { "\r\n" };
        let part_head = format!(
            "{lead}--{boundary}\r\nContent-Type: {part_type}\r\nContent-Range: {}\r\n\r\n",
            range.content_range(size)
        );
        segments.push(Segment::Literal(Bytes::from(part_head)));
        segments.push(Segment::file_range(*range));
    }
    segments.push(Segment::Literal(Bytes::from(format!("\r\n--{boundary}--\r\n"))));
    segments
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_differ_and_are_header_safe() {
        let (a, b) = (new_boundary(), new_boundary());
        assert_ne!(a, b);
        assert!(a.len() <= 70, "RFC 2046 caps boundaries at 70 characters");
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-'));
    }
}
