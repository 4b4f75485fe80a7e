//! Header fields rendered once as HTTP/1 lines (`name: value\r\n` each), for a response head
//! that is written as it is instead of through a header map (the vendored actix-http's
//! `ResponseHead::set_raw_headers`): a relayed backend head, a cached object's fields.

use bytes::{BufMut, Bytes, BytesMut};

/// Rendered header lines, and whether they hold a `Date` (the encoder then adds none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderLines {
    pub bytes: Bytes,
    pub has_date: bool,
}

/// Builds [`HeaderLines`] one field at a time.
pub struct LinesBuilder {
    buf: BytesMut,
    has_date: bool,
}

impl LinesBuilder {
    /// A builder with room for `capacity` bytes of lines.
    pub fn with_capacity(capacity: usize) -> LinesBuilder {
        LinesBuilder {
            buf: BytesMut::with_capacity(capacity),
            has_date: false,
        }
    }

    /// Adds `name: value`. Both must be what a header field may hold (a token; no line
    /// break or other control in the value): the caller's parser or header map saw to that.
    pub fn push(&mut self, name: &[u8], value: &[u8]) {
        debug_assert!(!name.is_empty() && name.iter().all(|&b| b > b' ' && b != b':' && b != 0x7f));
        debug_assert!(value.iter().all(|&b| b == b'\t' || (b >= b' ' && b != 0x7f)));
        self.has_date |= name.eq_ignore_ascii_case(b"date");
        self.start(name);
        self.buf.put_slice(value);
        self.end();
    }

    /// Adds lines rendered before.
    pub fn push_lines(&mut self, lines: &HeaderLines) {
        self.has_date |= lines.has_date;
        self.buf.put_slice(&lines.bytes);
    }

    /// Starts a field whose value the caller writes into [`value_mut`](Self::value_mut);
    /// [`end`](Self::end) closes it.
    pub fn start(&mut self, name: &[u8]) {
        self.buf.put_slice(name);
        self.buf.put_slice(b": ");
    }

    /// Where the value of the field [`start`](Self::start) began goes.
    pub fn value_mut(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// Ends the current field.
    pub fn end(&mut self) {
        self.buf.put_slice(b"\r\n");
    }

    pub fn finish(self) -> HeaderLines {
        HeaderLines {
            bytes: self.buf.freeze(),
            has_date: self.has_date,
        }
    }
}

/// Whether `lines` hold a field `name` (in any letter case).
pub fn has_field(lines: &[u8], name: &[u8]) -> bool {
    lines.split(|&b| b == b'\n').any(|line| is_field(line, name))
}

/// `lines` without the fields named `name` (in any letter case).
pub fn without_field(lines: &[u8], name: &[u8]) -> HeaderLines {
    let mut kept = LinesBuilder::with_capacity(lines.len());
    for line in lines.split_inclusive(|&b| b == b'\n') {
        if !is_field(line, name) {
            kept.has_date |= is_field(line, b"date");
            kept.buf.put_slice(line);
        }
    }
    kept.finish()
}

/// Whether `line` is a field `name`.
fn is_field(line: &[u8], name: &[u8]) -> bool {
    line.len() > name.len() && line[name.len()] == b':' && line[..name.len()].eq_ignore_ascii_case(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_become_lines_and_a_date_is_noticed() {
        let mut b = LinesBuilder::with_capacity(8);
        b.push(b"X-App", b"1");
        b.start(b"via");
        b.value_mut().put_slice(b"1.1 a, 1.1 b");
        b.end();
        let lines = b.finish();
        assert_eq!(&lines.bytes[..], b"X-App: 1\r\nvia: 1.1 a, 1.1 b\r\n");
        assert!(!lines.has_date);
        let mut b = LinesBuilder::with_capacity(0);
        b.push(b"DATE", b"then");
        assert!(b.finish().has_date);
    }

    #[test]
    fn fields_are_found_and_dropped_by_name() {
        let lines = b"Date: x\r\nstrict-transport-security: max-age=1\r\nX-Hsts: y\r\nx-hsts: z\r\n";
        assert!(has_field(lines, b"date"));
        assert!(has_field(lines, b"Strict-Transport-Security"));
        assert!(!has_field(lines, b"x-hst"));
        assert!(!has_field(lines, b"hsts"));
        assert!(!has_field(b"", b"date"));
        let kept = without_field(lines, b"X-HSTS");
        assert_eq!(
            &kept.bytes[..],
            b"Date: x\r\nstrict-transport-security: max-age=1\r\n"
        );
        assert!(kept.has_date);
        assert!(!without_field(lines, b"date").has_date);
    }
}
