//! Fuzzes the lean HTTP/1 client's response head parser with arbitrary backend bytes: it may
//! not panic, and what it accepts must be consistent (ranges inside the head, a status in
//! 100..=599, framing that agrees with the announced length, the same result from the head
//! alone as from the head plus whatever follows it).
//!
//! Run with `cargo +nightly fuzz run http1_response_head` from the repository root.

#![no_main]

use director::proto::http1::{parse_response_head, Framing, MAX_HEAD};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte says whether the request was HEAD.
    let (head_request, input) = match data {
        [flag, rest @ ..] => (flag & 1 == 1, rest),
        [] => return,
    };
    let Ok(Some(head)) = parse_response_head(input, head_request) else {
        return;
    };
    assert!(head.len <= input.len() && head.len <= MAX_HEAD);
    assert!((100..=599).contains(&head.status), "{}", head.status);
    for (name, value) in &head.headers {
        assert!(name.end <= head.len && value.end <= head.len);
        assert!(!input[name.clone()].is_empty());
    }
    match head.framing {
        Framing::Length(n) => assert_eq!(head.content_length, Some(n)),
        Framing::None => {
            assert!(head_request || (100..200).contains(&head.status) || matches!(head.status, 204 | 304))
        }
        Framing::UntilClose => assert!(!head.keep_alive),
        Framing::Chunked => {}
    }
    // Bytes after the head (the body) never change how the head reads.
    assert_eq!(
        parse_response_head(&input[..head.len], head_request),
        Ok(Some(head))
    );
});
