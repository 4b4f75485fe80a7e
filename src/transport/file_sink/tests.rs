use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::task::Waker;

use super::*;
use crate::test_util::temp_dir;

/// A file of `len` bytes of a repeating pattern, and the bytes.
fn file_of(len: usize) -> (tempfile::TempDir, Arc<File>, Vec<u8>) {
    let dir = temp_dir("file-sink");
    let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    let path = dir.path().join("blob");
    std::fs::File::create(&path).unwrap().write_all(&bytes).unwrap();
    (dir, Arc::new(File::open(&path).unwrap()), bytes)
}

/// Drives `sink` into `socket` until the span is sent, reading the other end as it goes.
fn drive_to_end(
    sink: &FileSink,
    socket: &UnixStream,
    peer: &mut UnixStream,
    expect: usize,
) -> (Vec<u8>, usize) {
    let mut cx = Context::from_waker(Waker::noop());
    let mut received = Vec::new();
    let mut pendings = 0;
    loop {
        let polled = sink.drive(&mut cx, |_, file, offset, len| {
            match send_file(socket.as_raw_fd(), file, offset, len) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Poll::Pending,
                other => Poll::Ready(other),
            }
        });
        let mut buf = vec![0u8; 256 * 1024];
        while received.len() < expect {
            match peer.read(&mut buf) {
                Ok(n) => received.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("read: {e}"),
            }
        }
        match polled {
            Poll::Ready(result) => {
                result.expect("sent");
                return (received, pendings);
            }
            Poll::Pending => pendings += 1,
        }
    }
}

#[test]
fn a_span_goes_out_whole_and_the_body_learns_it_is_done() {
    let (_dir, file, bytes) = file_of(3 * 1024 * 1024 + 17);
    assert!(
        is_resident(&file, 0, bytes.len() as u64),
        "a file just written is in the page cache"
    );
    let (socket, mut peer) = UnixStream::pair().unwrap();
    socket.set_nonblocking(true).unwrap();
    peer.set_nonblocking(true).unwrap();
    let sink = FileSink::default();
    let mut cx = Context::from_waker(Waker::noop());
    let (offset, len) = (100u64, bytes.len() as u64 - 100);

    assert!(
        sink.poll_send(&mut cx, &file, offset, len).is_pending(),
        "handed over"
    );
    assert!(
        sink.poll_send(&mut cx, &file, offset, len).is_pending(),
        "not sent yet"
    );
    let (received, pendings) = drive_to_end(&sink, &socket, &mut peer, len as usize);
    let mut rest = received;
    peer.set_nonblocking(false).unwrap();
    drop(socket);
    peer.read_to_end(&mut rest).unwrap();
    assert_eq!(rest.len(), len as usize);
    assert!(rest == bytes[100..], "byte-exact");
    assert!(pendings >= 2, "3 MiB take more than one budget: {pendings}");
    assert!(matches!(
        sink.poll_send(&mut cx, &file, offset, len),
        Poll::Ready(Ok(()))
    ));
    assert!(sink.0.borrow().is_none(), "the sink is free for the next span");
}

#[test]
fn a_file_that_shrank_fails_the_span_on_both_sides() {
    let (dir, file, _) = file_of(4096);
    let (socket, mut peer) = UnixStream::pair().unwrap();
    socket.set_nonblocking(true).unwrap();
    let sink = FileSink::default();
    let mut cx = Context::from_waker(Waker::noop());
    assert!(sink.poll_send(&mut cx, &file, 0, 8192).is_pending());
    let polled = sink.drive(&mut cx, |_, file, offset, len| {
        Poll::Ready(send_file(socket.as_raw_fd(), file, offset, len))
    });
    let Poll::Ready(Err(err)) = polled else {
        panic!("{polled:?}")
    };
    assert!(err.to_string().contains("shrank"), "{err}");
    let Poll::Ready(Err(err)) = sink.poll_send(&mut cx, &file, 0, 8192) else {
        panic!("body not told")
    };
    assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    let mut first = vec![0u8; 4096];
    peer.read_exact(&mut first).unwrap();
    drop(dir);
}

#[test]
fn nothing_handed_over_is_nothing_to_drive_and_a_cancelled_span_is_not_sent() {
    let (_dir, file, _) = file_of(1024);
    let sink = FileSink::default();
    let mut cx = Context::from_waker(Waker::noop());
    let mut calls = 0;
    assert!(matches!(
        sink.drive(&mut cx, |_, _, _, _| {
            calls += 1;
            Poll::Ready(Ok(1))
        }),
        Poll::Ready(Ok(()))
    ));
    assert!(sink.poll_send(&mut cx, &file, 0, 1024).is_pending());
    sink.cancel();
    assert!(matches!(
        sink.drive(&mut cx, |_, _, _, _| {
            calls += 1;
            Poll::Ready(Ok(1))
        }),
        Poll::Ready(Ok(()))
    ));
    assert_eq!(calls, 0);
}

#[test]
fn a_span_past_the_end_of_the_file_is_not_resident() {
    let (_dir, file, _) = file_of(1024);
    assert!(is_resident(&file, 0, 1024));
    assert!(!is_resident(&file, 0, 4096), "its last byte is past the end");
}
