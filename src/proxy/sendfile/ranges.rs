//! The `Range` request header (RFC 9110 §14.1–14.2): parsing `bytes=` range sets and resolving
//! them against a file's size into the byte ranges to send.
//!
//! Pure; the caller decides whether a `Range` applies at all (method, `If-Range`).

/// More range specs than this in one request are treated as no `Range` at all (a full 200):
/// a defence against range amplification (many tiny or overlapping ranges).
pub const MAX_RANGES: usize = 32;

/// An inclusive span of byte positions, as `Content-Range` writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub first: u64,
    pub last: u64,
}

impl ByteRange {
    /// Number of bytes in the span (never 0).
    #[allow(clippy::len_without_is_empty)] // a range holds at least one byte
    pub fn len(&self) -> u64 {
        self.last - self.first + 1
    }

    /// The `Content-Range` value for this span of a file of `size` bytes.
    pub fn content_range(&self, size: u64) -> String {
        format!("bytes {}-{}/{size}", self.first, self.last)
    }
}

/// The `Content-Range` value of a 416 response for a file of `size` bytes.
pub fn unsatisfied_content_range(size: u64) -> String {
    format!("bytes */{size}")
}

/// What a `Range` header asks for, resolved against the file's size.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeRequest {
    /// Invalid syntax, another unit or too many ranges: serve the full file.
    Ignored,
    /// Valid, but no range overlaps the file: 416.
    Unsatisfiable,
    /// The ranges to send: non-empty, ascending, overlapping and adjacent ones merged.
    Satisfiable(Vec<ByteRange>),
}

/// One `range-spec` as written; positions saturate at `u64::MAX` (still beyond any file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RangeSpec {
    /// `first-` or `first-last`.
    From { first: u64, last: Option<u64> },
    /// `-length`: the final `length` bytes.
    Suffix { length: u64 },
}

/// Resolves the `Range` header `value` against a file of `size` bytes.
pub fn resolve(value: &[u8], size: u64) -> RangeRequest {
    let Some(specs) = parse(value) else {
        return RangeRequest::Ignored;
    };
    if specs.len() > MAX_RANGES {
        return RangeRequest::Ignored;
    }
    let mut ranges: Vec<ByteRange> = specs.iter().filter_map(|spec| spec.within(size)).collect();
    if ranges.is_empty() {
        return RangeRequest::Unsatisfiable;
    }
    coalesce(&mut ranges);
    RangeRequest::Satisfiable(ranges)
}

impl RangeSpec {
    /// The part of the file this spec selects, if it selects any.
    fn within(self, size: u64) -> Option<ByteRange> {
        match self {
            RangeSpec::From { first, last } => (first < size).then(|| ByteRange {
                first,
                last: last.map_or(size - 1, |last| last.min(size - 1)),
            }),
            RangeSpec::Suffix { length } => (length > 0 && size > 0).then(|| ByteRange {
                first: size - length.min(size),
                last: size - 1,
            }),
        }
    }
}

/// `bytes=spec, spec, ...` → the specs; `None` when the header is not a valid byte range set.
fn parse(value: &[u8]) -> Option<Vec<RangeSpec>> {
    let (unit, set) = split_once(value, b'=')?;
    if !unit.trim_ascii().eq_ignore_ascii_case(b"bytes") {
        return None;
    }
    let mut specs = Vec::new();
    // Empty list elements are allowed (RFC 9110 §5.6.1); stop early past the cap.
    for element in set.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
        if element.is_empty() {
            continue;
        }
        specs.push(parse_spec(element)?);
        if specs.len() > MAX_RANGES {
            break;
        }
    }
    (!specs.is_empty()).then_some(specs)
}

fn parse_spec(spec: &[u8]) -> Option<RangeSpec> {
    let (first, last) = split_once(spec, b'-')?;
    if first.is_empty() {
        return Some(RangeSpec::Suffix {
            length: parse_position(last)?,
        });
    }
    let first = parse_position(first)?;
    let last = match last {
        [] => None,
        digits => Some(parse_position(digits)?),
    };
    // `last < first` makes the whole header invalid, not just unsatisfiable (§14.1.1).
    if last.is_some_and(|last| last < first) {
        return None;
    }
    Some(RangeSpec::From { first, last })
}

/// One or more ASCII digits, saturating on overflow.
fn parse_position(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits.iter().fold(0u64, |n, &d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

fn split_once(bytes: &[u8], separator: u8) -> Option<(&[u8], &[u8])> {
    let at = bytes.iter().position(|&b| b == separator)?;
    Some((&bytes[..at], &bytes[at + 1..]))
}

/// Sorts `ranges` and merges overlapping or adjacent ones, which RFC 9110 §14.6 permits.
fn coalesce(ranges: &mut Vec<ByteRange>) {
    ranges.sort_unstable_by_key(|range| range.first);
    let mut merged: Vec<ByteRange> = Vec::with_capacity(ranges.len());
    for range in ranges.drain(..) {
        match merged.last_mut() {
            Some(previous) if range.first <= previous.last.saturating_add(1) => {
                previous.last = previous.last.max(range.last);
            }
            _ => merged.push(range),
        }
    }
    *ranges = merged;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(first: u64, last: u64) -> ByteRange {
        ByteRange { first, last }
    }

    fn satisfiable(value: &str, size: u64) -> Vec<ByteRange> {
        match resolve(value.as_bytes(), size) {
            RangeRequest::Satisfiable(ranges) => ranges,
            other => panic!("{value:?} on {size} bytes: expected ranges, got {other:?}"),
        }
    }

    #[test]
    fn closed_open_and_suffix_ranges_resolve() {
        assert_eq!(satisfiable("bytes=0-9", 100), [span(0, 9)]);
        assert_eq!(satisfiable("bytes=90-", 100), [span(90, 99)]);
        assert_eq!(satisfiable("bytes=-10", 100), [span(90, 99)]);
        assert_eq!(satisfiable("bytes=50-50", 100), [span(50, 50)]);
    }

    #[test]
    fn ranges_are_clamped_to_the_file() {
        assert_eq!(satisfiable("bytes=90-500", 100), [span(90, 99)]);
        assert_eq!(satisfiable("bytes=-500", 100), [span(0, 99)]);
        assert_eq!(satisfiable("bytes=0-99999999999999999999999", 100), [span(0, 99)]);
    }

    #[test]
    fn unit_whitespace_and_empty_elements_are_tolerated() {
        assert_eq!(satisfiable("Bytes = 0-1 , ,4-5", 10), [span(0, 1), span(4, 5)]);
    }

    #[test]
    fn several_ranges_are_sorted_and_overlaps_merged() {
        assert_eq!(satisfiable("bytes=20-29,0-9", 100), [span(0, 9), span(20, 29)]);
        assert_eq!(satisfiable("bytes=0-9,5-14", 100), [span(0, 14)]);
        assert_eq!(satisfiable("bytes=0-9,10-19", 100), [span(0, 19)]);
        assert_eq!(
            satisfiable("bytes=0-9,-5,200-300", 100),
            [span(0, 9), span(95, 99)]
        );
    }

    #[test]
    fn ranges_beyond_the_end_are_unsatisfiable() {
        assert_eq!(resolve(b"bytes=100-", 100), RangeRequest::Unsatisfiable);
        assert_eq!(resolve(b"bytes=100-200,300-", 100), RangeRequest::Unsatisfiable);
        assert_eq!(resolve(b"bytes=-0", 100), RangeRequest::Unsatisfiable);
        assert_eq!(
            resolve(b"bytes=99999999999999999999999-", 100),
            RangeRequest::Unsatisfiable
        );
    }

    #[test]
    fn every_range_on_an_empty_file_is_unsatisfiable() {
        for value in ["bytes=0-", "bytes=0-0", "bytes=-1", "bytes=0-10,-5"] {
            assert_eq!(
                resolve(value.as_bytes(), 0),
                RangeRequest::Unsatisfiable,
                "{value}"
            );
        }
    }

    #[test]
    fn invalid_syntax_is_ignored() {
        for value in [
            "",
            "bytes",
            "bytes=",
            "bytes=,",
            "items=0-1",
            "bytes=a-b",
            "bytes=5-1",
            "bytes=-",
            "bytes=1",
            "bytes=0-1,x",
            "bytes=+1-2",
            "bytes=0x1-2",
            "bytes=--1",
            "bytes=1-2-3",
        ] {
            assert_eq!(resolve(value.as_bytes(), 100), RangeRequest::Ignored, "{value:?}");
        }
        assert_eq!(resolve(b"bytes=0-1\0", 100), RangeRequest::Ignored);
        assert_eq!(resolve(b"bytes=\xff-1", 100), RangeRequest::Ignored);
    }

    #[test]
    fn more_than_the_cap_is_ignored() {
        let at_cap: Vec<String> = (0..MAX_RANGES).map(|i| format!("{}-{}", i * 2, i * 2)).collect();
        let value = format!("bytes={}", at_cap.join(","));
        assert_eq!(satisfiable(&value, 1000).len(), MAX_RANGES);
        let over_cap = format!("{value},900-901");
        assert_eq!(resolve(over_cap.as_bytes(), 1000), RangeRequest::Ignored);
    }
}
