//! Fuzzes the FastCGI record decoder and the name-value pair decoder with arbitrary backend
//! bytes: neither may panic, whatever the input and wherever the socket reads split it.
//!
//! Run with `cargo +nightly fuzz run fastcgi_decoder` from the repository root.

#![no_main]

use bytes::BytesMut;
use director::proto::fastcgi::{self, RecordDecoder, RecordType};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first two bytes choose the split point of the rest (one socket read, then another).
    let (split, input) = match data {
        [a, b, rest @ ..] => (u16::from_le_bytes([*a, *b]) as usize % (rest.len() + 1), rest),
        _ => (0, data),
    };
    for mut decoder in [RecordDecoder::new(1), RecordDecoder::unrestricted()] {
        let mut buf = BytesMut::new();
        for chunk in [&input[..split], &input[split..]] {
            buf.extend_from_slice(chunk);
            loop {
                match decoder.decode(&mut buf) {
                    Ok(Some(record)) => {
                        assert!(record.content.len() <= fastcgi::MAX_CONTENT_LEN);
                        match record.kind {
                            RecordType::EndRequest => {
                                fastcgi::parse_end_request(&record.content)
                                    .expect("the decoder checked the END_REQUEST length");
                            }
                            RecordType::BeginRequest => {
                                fastcgi::parse_begin_request(&record.content)
                                    .expect("the decoder checked the BEGIN_REQUEST length");
                            }
                            _ => {
                                let _ = fastcgi::parse_pairs(&record.content);
                            }
                        }
                    }
                    Ok(None) => break,
                    Err(_) => {
                        // Sticky: the stream is unusable from here on.
                        assert!(decoder.decode(&mut buf).is_err());
                        assert!(decoder.finish().is_err());
                        break;
                    }
                }
            }
        }
        let _ = decoder.finish();
    }
    // The iterator stops after the first error, so `flatten` sees every pair it yields.
    for (name, value) in fastcgi::pairs(input).flatten() {
        assert!(name.len() + value.len() <= input.len());
    }
});
