use super::*;

/// Decodes every complete record in `bytes` with `decoder`.
fn decode_all(decoder: &mut RecordDecoder, buf: &mut BytesMut) -> Result<Vec<Record>, FcgiError> {
    let mut out = Vec::new();
    while let Some(record) = decoder.decode(buf)? {
        out.push(record);
    }
    Ok(out)
}

fn unrestricted(bytes: &[u8]) -> Vec<Record> {
    let mut decoder = RecordDecoder::unrestricted();
    let mut buf = BytesMut::from(bytes);
    let records = decode_all(&mut decoder, &mut buf).expect("valid stream");
    decoder.finish().expect("complete stream");
    assert!(decoder.is_idle());
    records
}

fn record(kind: RecordType, request_id: u16, content: &[u8]) -> Record {
    Record {
        kind,
        request_id,
        content: Bytes::copy_from_slice(content),
    }
}

/// Joins the content of a stream's records up to its empty terminator.
fn join_stream(records: &[Record], kind: RecordType) -> Vec<u8> {
    let mut out = Vec::new();
    let mut ended = false;
    for r in records.iter().filter(|r| r.kind == kind) {
        assert!(!ended, "{kind} record after the end of the stream");
        ended = r.content.is_empty();
        out.extend_from_slice(&r.content);
    }
    assert!(ended, "{kind} stream not terminated");
    out
}

/// Checks that every record in a well-formed encoder output is 8-byte aligned.
fn assert_aligned(bytes: &[u8]) {
    let mut rest = bytes;
    while !rest.is_empty() {
        let len = u16::from_be_bytes([rest[4], rest[5]]) as usize;
        let total = HEADER_LEN + len + rest[6] as usize;
        assert_eq!(total % 8, 0, "record of {len} content bytes not aligned");
        assert!(rest[6] < 8, "more padding than alignment needs");
        rest = &rest[total..];
    }
}

/// A small deterministic generator for garbage input.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// What a backend sends for one request: STDOUT (several records, padded), STDERR, a
/// management answer, the STDOUT terminator and END_REQUEST.
fn backend_stream() -> (BytesMut, Vec<Record>) {
    let body: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    let mut buf = BytesMut::new();
    stream(
        &mut buf,
        RecordType::Stdout,
        1,
        b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n",
    );
    stream(&mut buf, RecordType::Stderr, 1, b"PHP Notice: x");
    get_values_result(&mut buf, [(VAR_MAX_CONNS, b"10")]).unwrap();
    stream(&mut buf, RecordType::Stdout, 1, &body);
    end_stream(&mut buf, RecordType::Stdout, 1);
    end_request(&mut buf, 1, 0, ProtocolStatus::RequestComplete);
    let mut pairs = BytesMut::new();
    encode_pair(&mut pairs, VAR_MAX_CONNS, b"10").unwrap();
    let expected = vec![
        record(
            RecordType::Stdout,
            1,
            b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n",
        ),
        record(RecordType::Stderr, 1, b"PHP Notice: x"),
        record(RecordType::GetValuesResult, 0, &pairs),
        record(RecordType::Stdout, 1, &body[..MAX_CONTENT_LEN]),
        record(RecordType::Stdout, 1, &body[MAX_CONTENT_LEN..]),
        record(RecordType::Stdout, 1, b""),
        record(RecordType::EndRequest, 1, &[0, 0, 0, 0, 0, 0, 0, 0]),
    ];
    (buf, expected)
}

#[test]
fn begin_request_wire_format_and_round_trip() {
    let mut buf = BytesMut::new();
    begin_request(&mut buf, 1, true);
    assert_eq!(&buf[..], &[1, 1, 0, 1, 0, 8, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0]);
    begin_request(&mut buf, 0x1234, false);
    let records = unrestricted(&buf);
    assert_eq!(records.len(), 2);
    assert_eq!(
        (records[1].kind, records[1].request_id),
        (RecordType::BeginRequest, 0x1234)
    );
    let expect = |role, keep_conn| BeginRequest { role, keep_conn };
    assert_eq!(
        parse_begin_request(&records[0].content),
        Ok(expect(Role::Responder, true))
    );
    assert_eq!(
        parse_begin_request(&records[1].content),
        Ok(expect(Role::Responder, false))
    );
    assert_eq!(
        parse_begin_request(&[0, 3, 0, 0, 0, 0, 0, 0]).map(|b| b.role),
        Ok(Role::Filter)
    );
    assert!(matches!(
        parse_begin_request(&[0; 7]),
        Err(FcgiError::BadBodyLength { len: 7, .. })
    ));
}

#[test]
fn abort_and_end_of_stream_records_are_empty() {
    let mut buf = BytesMut::new();
    abort_request(&mut buf, 7);
    end_stdin(&mut buf, 7);
    end_stream(&mut buf, RecordType::Data, 7);
    assert_eq!(&buf[..8], &[1, 2, 0, 7, 0, 0, 0, 0]);
    assert_eq!(
        unrestricted(&buf),
        [
            record(RecordType::AbortRequest, 7, b""),
            record(RecordType::Stdin, 7, b""),
            record(RecordType::Data, 7, b""),
        ]
    );
}

#[test]
fn end_request_round_trips_every_protocol_status() {
    let statuses = [
        ProtocolStatus::RequestComplete,
        ProtocolStatus::CantMpxConn,
        ProtocolStatus::Overloaded,
        ProtocolStatus::UnknownRole,
        ProtocolStatus::Other(9),
    ];
    for (i, status) in statuses.into_iter().enumerate() {
        let mut buf = BytesMut::new();
        let app_status = 0xdead_0000 + i as u32;
        end_request(&mut buf, 1, app_status, status);
        assert_eq!(buf.len(), 16);
        assert_eq!(buf[12], status.as_u8());
        let mut decoder = RecordDecoder::new(1);
        let r = decoder.decode(&mut buf).unwrap().unwrap();
        assert_eq!(
            (r.kind, decoder.is_ended(), decoder.is_idle()),
            (RecordType::EndRequest, true, true)
        );
        assert_eq!(
            parse_end_request(&r.content),
            Ok(EndRequest {
                app_status,
                protocol_status: status
            })
        );
        assert_eq!(ProtocolStatus::from_u8(status.as_u8()), status);
    }
    assert_eq!(
        parse_end_request(&[0; 9]),
        Err(FcgiError::BadBodyLength {
            kind: RecordType::EndRequest,
            len: 9,
            expected: 8
        })
    );
}

#[test]
fn output_streams_round_trip_split_and_padded() {
    for kind in [
        RecordType::Stdin,
        RecordType::Stdout,
        RecordType::Stderr,
        RecordType::Data,
    ] {
        for len in [0usize, 1, 7, 8, 9, 65_534, 65_535, 65_536, 200_000] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 % 256) as u8).collect();
            let mut buf = BytesMut::new();
            if kind == RecordType::Stdin {
                stdin(&mut buf, 3, &data);
                end_stdin(&mut buf, 3);
            } else {
                stream(&mut buf, kind, 3, &data);
                end_stream(&mut buf, kind, 3);
            }
            assert_aligned(&buf);
            let records = unrestricted(&buf);
            assert_eq!(records.len(), len.div_ceil(MAX_CONTENT_LEN) + 1, "{kind} {len}");
            assert!(records.iter().all(|r| r.kind == kind && r.request_id == 3));
            assert!(records.iter().all(|r| r.content.len() <= MAX_CONTENT_LEN));
            assert_eq!(join_stream(&records, kind), data);
        }
    }
    let mut buf = BytesMut::new();
    stdin(&mut buf, 1, b"");
    assert!(buf.is_empty(), "an empty chunk must not end the stream");
}

#[test]
fn management_records_round_trip() {
    let mut buf = BytesMut::new();
    get_values(&mut buf, [VAR_MAX_CONNS, VAR_MAX_REQS, VAR_MPXS_CONNS]).unwrap();
    get_values_result(&mut buf, [(VAR_MAX_CONNS, &b"16"[..]), (VAR_MPXS_CONNS, b"0")]).unwrap();
    unknown_type(&mut buf, 42);
    assert_aligned(&buf);
    let records = unrestricted(&buf);
    assert!(records
        .iter()
        .all(|r| r.request_id == NULL_REQUEST_ID && r.kind.is_management()));
    assert_eq!(records[0].kind, RecordType::GetValues);
    let empty: &[u8] = b"";
    assert_eq!(
        parse_pairs(&records[0].content),
        Ok(vec![
            (VAR_MAX_CONNS, empty),
            (VAR_MAX_REQS, empty),
            (VAR_MPXS_CONNS, empty)
        ])
    );
    assert_eq!(records[1].kind, RecordType::GetValuesResult);
    assert_eq!(
        parse_pairs(&records[1].content),
        Ok(vec![(VAR_MAX_CONNS, &b"16"[..]), (VAR_MPXS_CONNS, &b"0"[..])])
    );
    assert_eq!(records[2].kind, RecordType::UnknownType);
    assert_eq!(parse_unknown_type(&records[2].content), Ok(42));

    // The backend-side decoder accepts the answers with request id 0.
    let mut answers = BytesMut::from(&buf[records_len(&buf, 1)..]);
    let kinds: Vec<RecordType> = decode_all(&mut RecordDecoder::new(1), &mut answers)
        .unwrap()
        .iter()
        .map(|r| r.kind)
        .collect();
    assert_eq!(kinds, [RecordType::GetValuesResult, RecordType::UnknownType]);
}

/// Byte length of the first `n` records of a well-formed stream.
fn records_len(bytes: &[u8], n: usize) -> usize {
    let mut at = 0;
    for _ in 0..n {
        at +=
            HEADER_LEN + u16::from_be_bytes([bytes[at + 4], bytes[at + 5]]) as usize + bytes[at + 6] as usize;
    }
    at
}

#[test]
fn management_record_that_does_not_fit_one_record_is_refused() {
    let mut buf = BytesMut::from(&b"keep"[..]);
    let name = vec![b'N'; 40_000];
    let err = get_values(&mut buf, [&name, &name]).unwrap_err();
    assert!(matches!(
        err,
        FcgiError::RecordTooLarge {
            kind: RecordType::GetValues,
            ..
        }
    ));
    assert_eq!(&buf[..], b"keep", "buffer rolled back");
    get_values(&mut buf, [&name]).unwrap();
    assert_eq!(unrestricted(&buf[4..]).len(), 1);
}

#[test]
fn pair_lengths_use_one_or_four_bytes() {
    let mut buf = BytesMut::new();
    encode_pair(&mut buf, b"A", &[b'x'; 127]).unwrap();
    assert_eq!(&buf[..2], &[1, 127]);
    buf.clear();
    encode_pair(&mut buf, &[b'n'; 128], &[b'v'; 200]).unwrap();
    assert_eq!(&buf[..8], &[0x80, 0, 0, 128, 0x80, 0, 0, 200]);
    assert_eq!(buf.len(), 8 + 128 + 200);
    let parsed = parse_pairs(&buf).unwrap();
    assert_eq!(parsed, vec![(&[b'n'; 128][..], &[b'v'; 200][..])]);

    assert_eq!(encode_len(0), Ok(([0, 0, 0, 0], 1)));
    assert_eq!(encode_len(MAX_PAIR_PART_LEN), Ok(([0xff, 0xff, 0xff, 0xff], 4)));
    assert_eq!(
        encode_len(MAX_PAIR_PART_LEN + 1),
        Err(FcgiError::PairTooLong(MAX_PAIR_PART_LEN + 1))
    );
}

#[test]
fn params_round_trip_with_pairs_spanning_records() {
    let big = vec![b'z'; 70_000];
    let medium = vec![b'm'; 200];
    let params_in: Vec<(&[u8], &[u8])> = vec![
        (b"REQUEST_METHOD", b"GET"),
        (b"HTTP_X_MEDIUM", &medium),
        (b"HTTP_X_BIG", &big),
        (b"EMPTY", b""),
        (b"SCRIPT_FILENAME", b"/var/www/index.php"),
    ];
    let mut buf = BytesMut::new();
    begin_request(&mut buf, 1, true);
    params(&mut buf, 1, params_in.iter().copied()).unwrap();
    end_stdin(&mut buf, 1);
    assert_aligned(&buf);
    let records = unrestricted(&buf);
    let params_records: Vec<&Record> = records.iter().filter(|r| r.kind == RecordType::Params).collect();
    assert_eq!(params_records.len(), 3, "two data records and the terminator");
    assert_eq!(
        params_records[0].content.len(),
        MAX_CONTENT_LEN,
        "the big pair spans records"
    );
    let joined = join_stream(&records, RecordType::Params);
    assert_eq!(parse_pairs(&joined), Ok(params_in));

    let mut buf = BytesMut::new();
    params(&mut buf, 9, Vec::<(&[u8], &[u8])>::new()).unwrap();
    assert_eq!(unrestricted(&buf), [record(RecordType::Params, 9, b"")]);
}

#[test]
fn pair_lengths_that_overrun_are_rejected() {
    // Value length 5 with only 1 byte behind it.
    assert_eq!(
        parse_pairs(&[1, 5, b'a', b'b']),
        Err(FcgiError::PairOverrun { need: 6, have: 2 })
    );
    // A 4-byte length cut short, and a missing value length.
    assert_eq!(
        parse_pairs(&[0x80, 0, 1]),
        Err(FcgiError::PairOverrun { need: 4, have: 3 })
    );
    assert_eq!(
        parse_pairs(&[3]),
        Err(FcgiError::PairOverrun { need: 1, have: 0 })
    );
    // The largest lengths the format can express.
    let huge = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, b'x'];
    assert_eq!(
        parse_pairs(&huge),
        Err(FcgiError::PairOverrun {
            need: 2 * MAX_PAIR_PART_LEN as u64,
            have: 1
        })
    );
    // A good pair before the bad one is yielded, then the error, then nothing.
    let mut it = pairs(&[1, 1, b'a', b'b', 9, 9]);
    assert_eq!(it.next(), Some(Ok((&b"a"[..], &b"b"[..]))));
    assert!(matches!(it.next(), Some(Err(FcgiError::PairOverrun { .. }))));
    assert_eq!(it.next(), None);
    assert_eq!(parse_pairs(&[]), Ok(vec![]));
}

#[test]
fn decodes_a_stream_split_at_every_byte_boundary() {
    let (bytes, expected) = backend_stream();
    assert_eq!(unrestricted(&bytes), expected);
    for split in 0..=bytes.len() {
        let mut decoder = RecordDecoder::new(1);
        let mut buf = BytesMut::from(&bytes[..split]);
        let mut records = decode_all(&mut decoder, &mut buf).unwrap();
        assert_eq!(
            decoder.finish().is_ok(),
            records_boundary(&bytes, expected.len(), split),
            "split at {split}"
        );
        buf.extend_from_slice(&bytes[split..]);
        records.extend(decode_all(&mut decoder, &mut buf).unwrap());
        assert!(decoder.finish().is_ok() && decoder.is_idle() && decoder.is_ended());
        assert_eq!(records, expected, "split at {split}");
    }
}

/// Whether `at` is a record boundary of the well-formed stream `bytes`.
fn records_boundary(bytes: &[u8], records: usize, at: usize) -> bool {
    (0..=records).any(|n| records_len(bytes, n) == at)
}

#[test]
fn decodes_a_stream_fed_byte_by_byte() {
    let (bytes, expected) = backend_stream();
    let mut decoder = RecordDecoder::new(1);
    let mut buf = BytesMut::new();
    let mut records = Vec::new();
    for &b in bytes.iter() {
        buf.put_u8(b);
        records.extend(decode_all(&mut decoder, &mut buf).unwrap());
    }
    assert_eq!(records, expected);
    assert!(buf.is_empty() && decoder.is_idle());
}

#[test]
fn content_is_split_out_of_the_input_buffer() {
    let mut buf = BytesMut::new();
    stream(&mut buf, RecordType::Stdout, 1, b"zero-copy body");
    let base = buf.as_ptr() as usize;
    let r = RecordDecoder::new(1).decode(&mut buf).unwrap().unwrap();
    assert_eq!(
        r.content.as_ptr() as usize,
        base + HEADER_LEN,
        "content not copied"
    );
}

#[test]
fn truncated_stream_is_pending_then_reported_by_finish() {
    let (bytes, _) = backend_stream();
    for cut in [1, 7, 8, 9, 50, HEADER_LEN + 43] {
        let mut decoder = RecordDecoder::new(1);
        let mut buf = BytesMut::from(&bytes[..cut]);
        assert_eq!(decoder.decode(&mut buf), Ok(None), "cut at {cut}");
        assert!(!decoder.is_idle());
        assert!(
            matches!(decoder.finish(), Err(FcgiError::Truncated { .. })),
            "cut at {cut}"
        );
    }
    // Content complete, padding missing: the record is delivered, the stream still truncated.
    let mut buf = BytesMut::new();
    stream(&mut buf, RecordType::Stdout, 1, b"abc");
    buf.truncate(HEADER_LEN + 3 + 2);
    let mut decoder = RecordDecoder::new(1);
    assert_eq!(decoder.decode(&mut buf).unwrap().unwrap().content, &b"abc"[..]);
    assert_eq!(decoder.finish(), Err(FcgiError::Truncated { have: 0, need: 3 }));
    let mut partial = BytesMut::from(&[1, 6, 0, 1, 0, 10, 6, 0, b'x'][..]);
    let mut decoder = RecordDecoder::new(1);
    assert_eq!(decoder.decode(&mut partial), Ok(None));
    assert_eq!(decoder.finish(), Err(FcgiError::Truncated { have: 9, need: 24 }));
    // An empty stream is a clean end.
    assert_eq!(RecordDecoder::new(1).finish(), Ok(()));
}

#[test]
fn wrong_version_is_rejected_and_sticky() {
    let mut buf = BytesMut::from(&[2, 6, 0, 1, 0, 0, 0, 0][..]);
    let mut decoder = RecordDecoder::new(1);
    assert_eq!(decoder.decode(&mut buf), Err(FcgiError::BadVersion(2)));
    assert_eq!(buf.len(), 8, "a rejected header stays in the buffer");
    let mut good = BytesMut::new();
    end_stream(&mut good, RecordType::Stdout, 1);
    assert_eq!(decoder.decode(&mut good), Err(FcgiError::BadVersion(2)), "sticky");
    assert_eq!(decoder.finish(), Err(FcgiError::BadVersion(2)));
    assert!(!decoder.is_idle());
    // Also in the unrestricted decoder: an HTTP answer is not FastCGI.
    let mut http = BytesMut::from(&b"HTTP/1.1 200 OK\r\n"[..]);
    assert_eq!(
        RecordDecoder::unrestricted().decode(&mut http),
        Err(FcgiError::BadVersion(b'H'))
    );
}

#[test]
fn records_for_another_request_are_rejected() {
    for (kind, id, expected) in [
        (RecordType::Stdout, 2, 1),
        (RecordType::Stderr, 0, 1),
        (RecordType::EndRequest, 3, 1),
        (RecordType::GetValuesResult, 1, 0),
        (RecordType::UnknownType, 1, 0),
    ] {
        let len = kind.fixed_content_len().unwrap_or(0) as u8;
        let mut buf = BytesMut::from(&[1, kind.as_u8(), 0, id as u8, 0, len, 0, 0][..]);
        buf.put_bytes(0, len as usize);
        assert_eq!(
            RecordDecoder::new(1).decode(&mut buf),
            Err(FcgiError::WrongRequestId {
                kind,
                expected,
                got: id
            }),
        );
    }
}

#[test]
fn request_side_and_unknown_types_from_a_backend_are_protocol_errors() {
    let mut request = BytesMut::new();
    begin_request(&mut request, 1, true);
    params(&mut request, 1, [("A", "b")]).unwrap();
    stdin(&mut request, 1, b"x");
    abort_request(&mut request, 1);
    get_values(&mut request, [VAR_MAX_REQS]).unwrap();
    stream(&mut request, RecordType::Data, 1, b"d");
    let mut at = 0;
    while at < request.len() {
        let kind = RecordType::from_u8(request[at + 1]);
        let request_id = u16::from_be_bytes([request[at + 2], request[at + 3]]);
        let mut buf = BytesMut::from(&request[at..]);
        assert_eq!(
            RecordDecoder::new(1).decode(&mut buf),
            Err(FcgiError::UnexpectedRecord { kind, request_id }),
        );
        at += records_len(&request[at..], 1);
    }
    for code in [0, 12, 255] {
        let raw = [1, code, 0, 1, 0, 1, 7, 0, b'?', 0, 0, 0, 0, 0, 0, 0];
        let err = RecordDecoder::new(1).decode(&mut BytesMut::from(&raw[..]));
        assert_eq!(err, Err(FcgiError::UnknownRecordType(code)));
        let r = RecordDecoder::unrestricted().decode(&mut BytesMut::from(&raw[..]));
        assert_eq!(r, Ok(Some(record(RecordType::Other(code), 1, b"?"))));
    }
}

#[test]
fn fixed_bodies_and_content_limits_are_enforced_at_the_header() {
    let bad_end = [1, 3, 0, 1, 0, 4, 4, 0];
    assert_eq!(
        RecordDecoder::new(1).decode(&mut BytesMut::from(&bad_end[..])),
        Err(FcgiError::BadBodyLength {
            kind: RecordType::EndRequest,
            len: 4,
            expected: 8
        })
    );
    let bad_begin = [1, 1, 0, 1, 0xff, 0xff, 0, 0];
    assert!(matches!(
        RecordDecoder::unrestricted().decode(&mut BytesMut::from(&bad_begin[..])),
        Err(FcgiError::BadBodyLength {
            kind: RecordType::BeginRequest,
            len: 65_535,
            ..
        })
    ));
    // A limit below the format's own: rejected before the content is waited for.
    let mut decoder = RecordDecoder::new(1).with_max_content_len(1024);
    let mut ok = BytesMut::new();
    stream(&mut ok, RecordType::Stdout, 1, &[b'a'; 1024]);
    assert!(decoder.decode(&mut ok).unwrap().is_some());
    let mut big = BytesMut::from(&[1, 6, 0, 1, 0x04, 0x01, 0, 0][..]);
    assert_eq!(
        decoder.decode(&mut big),
        Err(FcgiError::ContentTooLong {
            kind: RecordType::Stdout,
            len: 1025,
            max: 1024
        })
    );
}

#[test]
fn nothing_for_the_request_after_its_end_request() {
    let mut buf = BytesMut::new();
    end_request(&mut buf, 1, 0, ProtocolStatus::RequestComplete);
    stream(&mut buf, RecordType::Stdout, 1, b"late");
    let mut decoder = RecordDecoder::new(1);
    assert_eq!(
        decoder.decode(&mut buf).unwrap().unwrap().kind,
        RecordType::EndRequest
    );
    assert!(
        !decoder.is_idle(),
        "bytes left over: the connection can't be reused"
    );
    assert_eq!(
        decoder.decode(&mut buf),
        Err(FcgiError::RecordAfterEnd {
            kind: RecordType::Stdout,
            request_id: 1
        })
    );

    // Kept-alive connection: the next request on the same decoder.
    let mut buf = BytesMut::new();
    end_request(&mut buf, 1, 0, ProtocolStatus::RequestComplete);
    let mut decoder = RecordDecoder::new(1);
    decoder.decode(&mut buf).unwrap().unwrap();
    assert!(decoder.is_idle() && decoder.is_ended());
    decoder.next_request(2);
    stream(&mut buf, RecordType::Stdout, 2, b"next");
    assert_eq!(decoder.decode(&mut buf).unwrap().unwrap().request_id, 2);
    assert_eq!(decoder.request_id(), Some(2));
    assert!(!decoder.is_ended());
}

#[test]
fn garbage_never_panics() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for round in 0..2_000 {
        let len = (rng.next() % 300) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if round % 2 == 0 && len >= 8 {
            // Mostly well-formed headers, so the checks after the version byte get exercised.
            bytes[0] = VERSION;
            bytes[1] = (rng.next() % 13) as u8;
            bytes[2] = 0;
            bytes[3] = (rng.next() % 3) as u8;
            bytes[4] = 0;
        }
        for mut decoder in [RecordDecoder::new(1), RecordDecoder::unrestricted()] {
            let mut buf = BytesMut::new();
            let mut rest = &bytes[..];
            while !rest.is_empty() {
                let n = ((rng.next() % 17) as usize + 1).min(rest.len());
                buf.extend_from_slice(&rest[..n]);
                rest = &rest[n..];
                match decode_all(&mut decoder, &mut buf) {
                    Ok(records) => {
                        for r in records {
                            let _ = parse_pairs(&r.content);
                            let _ = parse_end_request(&r.content);
                        }
                    }
                    Err(_) => break,
                }
            }
            let _ = decoder.finish();
        }
        let _ = parse_pairs(&bytes);
    }
}

#[test]
fn errors_say_what_went_wrong() {
    let msg = FcgiError::WrongRequestId {
        kind: RecordType::Stdout,
        expected: 1,
        got: 2,
    }
    .to_string();
    assert_eq!(msg, "FastCGI STDOUT record for request id 2, expected 1");
    assert_eq!(
        FcgiError::UnexpectedRecord {
            kind: RecordType::Other(99),
            request_id: 1
        }
        .to_string(),
        "unexpected FastCGI type-99 record from the application (request id 1)"
    );
    assert!(FcgiError::Truncated { have: 3, need: 8 }
        .to_string()
        .contains("3 of 8 bytes"));
}

#[test]
fn record_type_codes_round_trip() {
    for code in 0..=255u8 {
        assert_eq!(RecordType::from_u8(code).as_u8(), code);
    }
    assert!(RecordType::GetValues.is_management() && !RecordType::Stdout.is_management());
}
