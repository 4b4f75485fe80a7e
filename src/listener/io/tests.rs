//! Tests of the connection guard's IO wrapper over in-memory streams, on tokio's paused clock
//! (timers fire exactly when due; nothing sleeps for real). The integration tests in
//! `tests/it/slow_clients.rs` run the same rules through actix-http and real sockets.

use std::time::Duration;

use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::time::{timeout, Instant};

use super::super::conn::{RequestInFlight, HEADERS_TOO_LARGE, REQUEST_LINE_TOO_LONG};
use super::*;

const SETTINGS: GuardSettings = GuardSettings {
    client_timeout: Duration::from_secs(10),
    keep_alive: Duration::from_secs(15),
    send_timeout: Duration::from_secs(60),
    max_request_line: 256,
    max_header_size: 1024,
};

impl FileTarget for DuplexStream {
    fn poll_send_file(&self, _: &mut Context<'_>, _: &File, _: u64, _: usize) -> Poll<io::Result<usize>> {
        Poll::Ready(Err(io::ErrorKind::Unsupported.into()))
    }
}

/// A guarded server side and the client side of one connection; `buffer` bytes fit in
/// each direction.
fn connection(buffer: usize) -> (GuardedIo<DuplexStream>, DuplexStream) {
    let (server, client) = duplex(buffer);
    (GuardedIo::new(server, SETTINGS), client)
}

/// Reads what the guard lets through, as actix-http would.
async fn read(io: &mut GuardedIo<DuplexStream>) -> io::Result<Vec<u8>> {
    let mut buf = [0u8; 4096];
    let n = io.read(&mut buf).await?;
    Ok(buf[..n].to_vec())
}

/// Everything the client receives until the server side is shut down.
async fn received(client: &mut DuplexStream) -> String {
    let mut all = Vec::new();
    client.read_to_end(&mut all).await.expect("read");
    String::from_utf8_lossy(&all).into_owned()
}

/// Serves one whole request on `io`: reads its head, then starts and ends it.
async fn serve_one(io: &mut GuardedIo<DuplexStream>, client: &mut DuplexStream) {
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("send");
    assert_eq!(read(io).await.expect("head").len(), 27);
    drop(RequestInFlight::start(&io.handle().0));
}

#[tokio::test(start_paused = true)]
async fn every_request_head_has_the_deadline() {
    let (mut io, mut client) = connection(64 * 1024);
    serve_one(&mut io, &mut client).await;
    // The next request starts, then stalls.
    client.write_all(b"G").await.expect("send");
    let started = Instant::now();
    assert_eq!(read(&mut io).await.expect("first byte"), b"G");
    let err = read(&mut io).await.expect_err("the head deadline");
    // 408 at the deadline, then the lingering close waits for the client to go.
    assert_eq!(started.elapsed(), SETTINGS.client_timeout + LINGER_TIME);
    assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
    assert!(received(&mut client)
        .await
        .starts_with("HTTP/1.1 408 Request Timeout\r\n"));
}

#[tokio::test(start_paused = true)]
async fn a_connection_that_sends_nothing_closes_silently_at_the_head_deadline() {
    let (mut io, mut client) = connection(1024);
    let started = Instant::now();
    let err = read(&mut io).await.expect_err("the head deadline");
    assert_eq!(
        (started.elapsed(), err.kind()),
        (SETTINGS.client_timeout, io::ErrorKind::TimedOut)
    );
    drop(io);
    assert_eq!(received(&mut client).await, "");
}

#[tokio::test(start_paused = true)]
async fn no_deadline_while_a_request_is_served() {
    let (mut io, mut client) = connection(64 * 1024);
    client
        .write_all(b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\n")
        .await
        .expect("send");
    read(&mut io).await.expect("head");
    let request = RequestInFlight::start(&io.handle().0);
    // A body byte a minute: far beyond every deadline, and not scanned as a head.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_secs(60)).await;
        client.write_all(b"\n").await.expect("send");
        assert_eq!(read(&mut io).await.expect("body"), b"\n");
    }
    drop(request);
    let idle = Instant::now();
    let err = read(&mut io).await.expect_err("idle");
    assert_eq!(
        (idle.elapsed(), err.kind()),
        (SETTINGS.keep_alive, io::ErrorKind::TimedOut)
    );
}

/// Polls one read of `io` once, as actix-http does before it calls the service.
async fn read_would_block(io: &mut GuardedIo<DuplexStream>) -> bool {
    std::future::poll_fn(|cx| {
        let mut buf = [0u8; 64];
        let mut buf = ReadBuf::new(&mut buf);
        Poll::Ready(Pin::new(&mut *io).poll_read(cx, &mut buf).is_pending())
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn a_request_that_ends_during_a_read_arms_the_idle_deadline() {
    // keep_alive longer than client_timeout: the head deadline's timer wakes the reader
    // first; shorter: the end of the request wakes it.
    for keep_alive in [Duration::from_secs(15), Duration::from_secs(5)] {
        let (server, mut client) = duplex(1024);
        let mut io = GuardedIo::new(
            server,
            GuardSettings {
                keep_alive,
                ..SETTINGS
            },
        );
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.expect("send");
        read(&mut io).await.expect("head");
        assert!(read_would_block(&mut io).await);
        let request = RequestInFlight::start(&io.handle().0);
        let ended = async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            drop(request);
            Instant::now()
        };
        let (result, ended) = tokio::join!(timeout(Duration::from_secs(60), read(&mut io)), ended);
        let err = result.expect("the idle deadline passed").expect_err("idle");
        assert_eq!(
            (ended.elapsed(), err.kind()),
            (keep_alive, io::ErrorKind::TimedOut)
        );
    }
}

#[tokio::test(start_paused = true)]
async fn writing_counts_as_activity_while_idle() {
    let (mut io, mut client) = connection(1024);
    serve_one(&mut io, &mut client).await;
    // The end of the response is still being written after the request ended: each write
    // that makes progress restarts the idle time.
    for _ in 0..3 {
        tokio::time::sleep(SETTINGS.keep_alive - Duration::from_secs(1)).await;
        io.write_all(&[b'r'; 100]).await.expect("write");
        let mut got = [0u8; 100];
        client.read_exact(&mut got).await.expect("client reads");
    }
    let last_write = Instant::now();
    let err = read(&mut io).await.expect_err("idle");
    assert_eq!(
        (last_write.elapsed(), err.kind()),
        (SETTINGS.keep_alive, io::ErrorKind::TimedOut)
    );
}

#[tokio::test(start_paused = true)]
async fn empty_lines_between_requests_do_not_keep_a_connection_open() {
    let (mut io, mut client) = connection(1024);
    serve_one(&mut io, &mut client).await;
    let idle = Instant::now();
    let err = loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if client.write_all(b"\r\n").await.is_err() {
            panic!("the server side went away without an error");
        }
        if let Err(err) = read(&mut io).await {
            break err;
        }
    };
    assert_eq!(
        (idle.elapsed(), err.kind()),
        (SETTINGS.keep_alive, io::ErrorKind::TimedOut)
    );
}

#[tokio::test(start_paused = true)]
async fn a_stalled_write_fails_after_send_timeout_not_keep_alive() {
    let (mut io, mut client) = connection(1024);
    serve_one(&mut io, &mut client).await;
    // The client stops reading: the buffer fills, and the write fails after send_timeout.
    let started = Instant::now();
    let err = io.write_all(&[b'r'; 4096]).await.expect_err("send timeout");
    assert_eq!(
        (started.elapsed(), err.kind()),
        (SETTINGS.send_timeout, io::ErrorKind::TimedOut)
    );
}

#[tokio::test(start_paused = true)]
async fn oversized_heads_are_answered_by_the_guard() {
    for (head, status, text) in [
        (
            format!("GET /{} HTTP/1.1\r\n", "a".repeat(300)),
            "414 URI Too Long",
            REQUEST_LINE_TOO_LONG,
        ),
        (
            format!("GET / HTTP/1.1\r\nX-Big: {}\r\n", "b".repeat(1100)),
            "431 Request Header Fields Too Large",
            HEADERS_TOO_LARGE,
        ),
    ] {
        let (mut io, mut client) = connection(64 * 1024);
        client.write_all(head.as_bytes()).await.expect("send");
        // actix-http sees none of it; the client gets the answer, then the end.
        let err = io.read(&mut [0u8; 4096]).await.expect_err("refused");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        let answer = received(&mut client).await;
        assert!(answer.starts_with(&format!("HTTP/1.1 {status}\r\n")), "{answer}");
        assert!(
            answer.ends_with(&format!("Connection: close\r\n\r\n{text}")),
            "{answer}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_head_that_joins_unscanned_bytes_is_checked_against_the_header_limit_only() {
    let (mut io, mut client) = connection(64 * 1024);
    client
        .write_all(b"GET / HTTP/1.1\r\n\r\nGET /next")
        .await
        .expect("send");
    read(&mut io).await.expect("both");
    drop(RequestInFlight::start(&io.handle().0));
    // The rest of the pipelined request line: longer than max_request_line on its own, but
    // the guard cannot tell it is a request line.
    let rest = format!("{} HTTP/1.1\r\n\r\n", "c".repeat(300));
    client.write_all(rest.as_bytes()).await.expect("send");
    assert_eq!(read(&mut io).await.expect("passed on").len(), rest.len());
}

#[test]
fn own_answers_are_well_framed() {
    for (answer, body) in [
        (URI_TOO_LONG, REQUEST_LINE_TOO_LONG),
        (FIELDS_TOO_LARGE, HEADERS_TOO_LARGE),
        (REQUEST_TIMEOUT, "request head not received in time\n"),
    ] {
        let mut headers = [httparse::EMPTY_HEADER; 8];
        let mut res = httparse::Response::new(&mut headers);
        let head = match res.parse(answer) {
            Ok(httparse::Status::Complete(n)) => n,
            other => panic!("not a complete head: {other:?}"),
        };
        let length = res
            .headers
            .iter()
            .find(|h| h.name == "Content-Length")
            .map(|h| h.value);
        assert_eq!(length, Some(body.len().to_string().as_bytes()));
        assert_eq!(&answer[head..], body.as_bytes());
    }
}
