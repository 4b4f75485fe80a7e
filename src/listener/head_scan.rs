//! Finding where a request head ends in the bytes a client sends, and whether its request line
//! and header section stay within the configured sizes — without parsing it (sans-io, pure).
//!
//! The connection guard feeds every chunk it reads while a head is expected; actix-http parses
//! the same bytes afterwards. The scanner only counts: the request line is the first line that
//! is not empty (empty lines before it are skipped, as RFC 9112 allows), its length excludes the
//! line ending; the header section is every following field line with its line ending, up to
//! the empty line that ends the head. A bare LF ends a line like CRLF does.

/// The limits the scanner checks, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadLimits {
    pub max_request_line: usize,
    pub max_header_size: usize,
}

/// What the bytes seen so far say about the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The head is not complete yet.
    More,
    /// The head ended; the `usize` is how many bytes of the last chunk belong to it (the rest
    /// is body or the next request).
    Complete(usize),
    /// The request line is longer than allowed (`414`).
    LineTooLong,
    /// The header section is larger than allowed (`431`).
    HeadersTooLarge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// Skipping empty lines before the request line.
    Start,
    RequestLine,
    Headers,
    Done,
}

/// The scanner of one request head.
#[derive(Debug, Clone)]
pub struct HeadScan {
    part: Part,
    /// Bytes of the current line so far, line ending not included (a trailing CR may be).
    line: usize,
    /// Whether the last byte fed was a CR.
    last_cr: bool,
    /// Bytes of the complete field lines so far, with their line endings.
    headers: usize,
    /// Bytes fed since the scan began.
    seen: usize,
}

impl HeadScan {
    /// A scanner at the start of a request head.
    pub fn new() -> HeadScan {
        HeadScan {
            part: Part::Start,
            line: 0,
            last_cr: false,
            headers: 0,
            seen: 0,
        }
    }

    /// A scanner that joins a head somewhere in its middle (bytes before were not scanned):
    /// it cannot tell the request line apart, so it only looks for the head's end and counts
    /// every line it sees against the header section's limit.
    pub fn resync() -> HeadScan {
        HeadScan {
            part: Part::Headers,
            ..HeadScan::new()
        }
    }

    /// Whether any byte of this head was seen.
    pub fn started(&self) -> bool {
        self.seen > 0
    }

    /// Whether the end of the head was found.
    pub fn is_done(&self) -> bool {
        self.part == Part::Done
    }

    /// Scans the next chunk of the head.
    pub fn feed(&mut self, bytes: &[u8], limits: HeadLimits) -> Verdict {
        self.seen += bytes.len();
        let mut at = 0;
        while at < bytes.len() {
            match self.part {
                Part::Done => return Verdict::Complete(at),
                Part::Start => match bytes[at] {
                    b'\r' | b'\n' => at += 1,
                    _ => self.part = Part::RequestLine,
                },
                Part::RequestLine | Part::Headers => {
                    let rest = &bytes[at..];
                    let Some(end) = memchr::memchr(b'\n', rest) else {
                        self.line += rest.len();
                        self.last_cr = rest.last() == Some(&b'\r');
                        return self.check_partial(limits);
                    };
                    let cr = if end == 0 {
                        self.last_cr
                    } else {
                        rest[end - 1] == b'\r'
                    };
                    let length = self.line + end - usize::from(cr);
                    let ending = 1 + usize::from(cr);
                    at += end + 1;
                    (self.line, self.last_cr) = (0, false);
                    if let Some(verdict) = self.line_ended(length, ending, limits) {
                        return verdict;
                    }
                }
            }
        }
        match self.part {
            Part::Done => Verdict::Complete(at),
            _ => Verdict::More,
        }
    }

    /// A line of `length` bytes (without its `ending`) is complete.
    fn line_ended(&mut self, length: usize, ending: usize, limits: HeadLimits) -> Option<Verdict> {
        match self.part {
            Part::RequestLine if length > limits.max_request_line => Some(Verdict::LineTooLong),
            Part::RequestLine => {
                self.part = Part::Headers;
                None
            }
            Part::Headers if length == 0 => {
                self.part = Part::Done;
                None
            }
            Part::Headers => {
                self.headers += length + ending;
                (self.headers > limits.max_header_size).then_some(Verdict::HeadersTooLarge)
            }
            Part::Start | Part::Done => None,
        }
    }

    /// Refuses a line that is already too long before its end arrives, so that no more than
    /// about the limit is ever buffered.
    fn check_partial(&self, limits: HeadLimits) -> Verdict {
        // A trailing CR may be the start of the line ending.
        let length = self.line - usize::from(self.last_cr);
        match self.part {
            Part::RequestLine if length > limits.max_request_line => Verdict::LineTooLong,
            Part::Headers if self.headers + length > limits.max_header_size => Verdict::HeadersTooLarge,
            _ => Verdict::More,
        }
    }
}

impl Default for HeadScan {
    fn default() -> Self {
        HeadScan::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: HeadLimits = HeadLimits {
        max_request_line: 20,
        max_header_size: 30,
    };

    /// Feeds `chunks` one after the other; the verdict of the last one.
    fn scan(chunks: &[&[u8]]) -> Verdict {
        let mut scan = HeadScan::new();
        let mut verdict = Verdict::More;
        for chunk in chunks {
            verdict = scan.feed(chunk, LIMITS);
        }
        verdict
    }

    #[test]
    fn finds_the_end_of_a_head_in_any_split() {
        let head = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nBODY";
        for split in 0..head.len() {
            let (a, b) = head.split_at(split);
            let mut s = HeadScan::new();
            let first = s.feed(a, LIMITS);
            if split >= 28 {
                assert_eq!(first, Verdict::Complete(28), "split {split}");
                continue;
            }
            assert_eq!(first, Verdict::More, "split {split}");
            assert_eq!(s.feed(b, LIMITS), Verdict::Complete(28 - split), "split {split}");
            assert!(s.is_done());
        }
        assert_eq!(scan(&[b"GET / HTTP/1.0\n\n"]), Verdict::Complete(16), "bare LF");
        assert_eq!(
            scan(&[b"\r\n\r\nGET / HTTP/1.1\r\n\r\n"]),
            Verdict::Complete(22),
            "leading empty lines"
        );
        let byte_by_byte: Vec<&[u8]> = head[..28].chunks(1).collect();
        assert_eq!(scan(&byte_by_byte), Verdict::Complete(1));
    }

    #[test]
    fn request_line_limit_excludes_the_line_ending() {
        let line = |n: usize| format!("GET /{} HTTP/1.1", "a".repeat(n - 14));
        let at_limit = format!("{}\r\n\r\n", line(20));
        assert!(matches!(scan(&[at_limit.as_bytes()]), Verdict::Complete(_)));
        let over = format!("{}\r\n\r\n", line(21));
        assert_eq!(scan(&[over.as_bytes()]), Verdict::LineTooLong);
        // Refused before its end arrives, and a CR at a chunk's end is not counted yet.
        assert_eq!(scan(&[line(21).as_bytes()]), Verdict::LineTooLong);
        let with_cr = format!("{}\r", line(20));
        assert_eq!(scan(&[with_cr.as_bytes()]), Verdict::More);
        assert!(matches!(
            scan(&[with_cr.as_bytes(), b"\n\r\n"]),
            Verdict::Complete(3)
        ));
    }

    #[test]
    fn header_section_limit_counts_field_lines_with_their_endings() {
        // 2 lines of 13 + 2 bytes = 30: at the limit.
        let fits = b"GET / HTTP/1.1\r\nA: 0123456789\r\nB: 0123456789\r\n\r\n";
        assert!(matches!(scan(&[fits]), Verdict::Complete(_)));
        let over = b"GET / HTTP/1.1\r\nA: 0123456789\r\nB: 01234567890\r\n\r\n";
        assert_eq!(scan(&[over]), Verdict::HeadersTooLarge);
        // A partial field line over the limit is refused at once.
        let endless = format!("GET / HTTP/1.1\r\nA: {}", "x".repeat(40));
        assert_eq!(scan(&[endless.as_bytes()]), Verdict::HeadersTooLarge);
    }

    #[test]
    fn resync_counts_every_line_as_a_header() {
        let mut s = HeadScan::resync();
        assert!(!s.started());
        assert_eq!(s.feed(b"x: 1\r\n", LIMITS), Verdict::More);
        assert!(s.started());
        assert_eq!(s.feed(b"\r\nnext", LIMITS), Verdict::Complete(2));
        let mut s = HeadScan::resync();
        assert_eq!(s.feed(&[b'a'; 40], LIMITS), Verdict::HeadersTooLarge);
    }
}
