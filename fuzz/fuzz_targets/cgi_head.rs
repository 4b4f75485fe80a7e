//! Fuzzes the CGI response header parser (what a FastCGI application writes before its body):
//! it may not panic, and what it accepts must be consistent (a final status in 200..=599,
//! field ranges inside the block, no `Status` field passed on, the same result from the block
//! alone as from the block plus the body after it).
//!
//! Run with `cargo +nightly fuzz run cgi_head` from the repository root.

#![no_main]

use director::proto::cgi::parse_head;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(Some(head)) = parse_head(data) else {
        return;
    };
    assert!(head.len <= data.len());
    assert!((200..=599).contains(&head.status), "{}", head.status);
    for (name, value) in &head.fields {
        assert!(name.end <= head.len && value.end <= head.len);
        assert!(!data[name.clone()].eq_ignore_ascii_case(b"status"));
    }
    assert_eq!(parse_head(&data[..head.len]), Ok(Some(head)));
});
