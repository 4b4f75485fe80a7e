//! h2c with prior knowledge on a plain listener: whether a client opens with HTTP/2's
//! connection preface, found by peeking at its first bytes (`MSG_PEEK`), so that an HTTP/1
//! client's bytes stay in the socket for the connection guard and actix-http to read as usual.
//!
//! Hot path (once per connection, only on listeners with `h2c` on).

use std::future::poll_fn;
use std::io;
use std::os::fd::AsRawFd;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::Interest;
use tokio::net::{TcpStream, UnixStream};

/// What an HTTP/2 client sends first (RFC 9113 §3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A socket whose first bytes can be looked at without reading them.
pub trait Preface {
    /// Whether the bytes waiting begin with the HTTP/2 preface: `Ready(true)` once all of it is
    /// there, `Ready(false)` as soon as a byte differs (or at the end of the stream); `Pending`
    /// while what arrived so far matches a beginning of it.
    fn poll_preface(&self, cx: &mut Context<'_>) -> Poll<io::Result<bool>>;
}

macro_rules! socket_preface {
    ($($stream:ty),*) => {$(
        impl Preface for $stream {
            fn poll_preface(&self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
                loop {
                    ready!(self.poll_read_ready(cx))?;
                    // A beginning of the preface reports `WouldBlock`, which clears the
                    // readiness: the next poll waits for more bytes instead of spinning.
                    match self.try_io(Interest::READABLE, || peek_preface(self.as_raw_fd())) {
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                        seen => return Poll::Ready(seen),
                    }
                }
            }
        }
    )*};
}

socket_preface!(TcpStream, UnixStream);

/// Peeks at up to the preface's length of bytes waiting on `fd`.
fn peek_preface(fd: std::os::fd::RawFd) -> io::Result<bool> {
    let mut buf = [0u8; PREFACE.len()];
    // SAFETY: `buf` is valid for writes of its length; MSG_PEEK leaves the bytes queued.
    let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_PEEK) };
    let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
    match n {
        0 => Ok(false),
        n if buf[..n] != PREFACE[..n] => Ok(false),
        n if n == PREFACE.len() => Ok(true),
        _ => Err(io::ErrorKind::WouldBlock.into()),
    }
}

/// Whether the client of `stream` opened with the HTTP/2 preface: `Some(false)` for anything
/// else (HTTP/1, the end of the stream, a failed socket: the HTTP/1 side deals with those as
/// with any client), `None` when it sent nothing (or only a beginning of the preface) within
/// `wait` — the HTTP/1 guard's head deadline, which such a client has used up.
pub(in crate::listener) async fn sent<T: Preface>(stream: &T, wait: Duration) -> Option<bool> {
    let seen = tokio::time::timeout(wait, poll_fn(|cx| stream.poll_preface(cx))).await;
    seen.ok().map(|seen| matches!(seen, Ok(true)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (client, server)
    }

    #[tokio::test]
    async fn the_preface_is_recognised_even_in_pieces_and_left_unread() {
        let (mut client, server) = pair().await;
        client.write_all(&PREFACE[..5]).await.unwrap();
        let waiting = tokio::spawn(async move { (sent(&server, Duration::from_secs(5)).await, server) });
        tokio::task::yield_now().await;
        client.write_all(&PREFACE[5..]).await.unwrap();
        let (seen, server) = waiting.await.unwrap();
        assert_eq!(seen, Some(true));
        let mut buf = [0u8; 24];
        assert_eq!(server.peek(&mut buf).await.unwrap(), 24, "nothing was consumed");
    }

    #[tokio::test]
    async fn http1_is_told_apart_at_its_first_differing_byte() {
        let (mut client, server) = pair().await;
        client.write_all(b"PO").await.unwrap();
        assert_eq!(sent(&server, Duration::from_secs(5)).await, Some(false));
        let (mut client, server) = pair().await;
        client.shutdown().await.unwrap();
        assert_eq!(
            sent(&server, Duration::from_secs(5)).await,
            Some(false),
            "end of stream"
        );
    }

    #[tokio::test]
    async fn a_client_that_sends_nothing_or_half_a_preface_runs_out_of_time() {
        let (_client, server) = pair().await;
        assert_eq!(sent(&server, Duration::from_millis(50)).await, None);
        let (mut client, server) = pair().await;
        client.write_all(&PREFACE[..10]).await.unwrap();
        assert_eq!(sent(&server, Duration::from_millis(50)).await, None);
    }
}
