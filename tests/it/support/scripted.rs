//! A scripted HTTP/1.1 backend for fault tests: for every request it reads (head and
//! `Content-Length` body), a script decides what bytes go back and what happens to the
//! connection afterwards. It counts connections opened and closed by the peer, and records
//! every request it saw.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// One request as the backend read it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Which connection (0, 1, ...) and which request on it (0, 1, ...).
    pub conn: u64,
    pub seq: u64,
    pub method: String,
    pub path: String,
    /// Header lines as sent, names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// What the backend does with one request.
pub enum Step {
    /// Write these bytes and wait for the next request.
    Reply(Vec<u8>),
    /// Write the first bytes, wait, write the second ones (late bytes nobody asked for), then
    /// keep reading.
    ReplyThenLate(Vec<u8>, Duration, Vec<u8>),
    /// Write these bytes, then close the connection.
    ReplyThenClose(Vec<u8>),
    /// Close without answering.
    Close,
}

/// A 200 response with `body` and a `Content-Length`.
pub fn ok(body: &str) -> Vec<u8> {
    format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
}

type Script = dyn Fn(&Seen) -> Step + Send + Sync;

/// A running scripted backend; dropping it stops it.
pub struct Scripted {
    addr: SocketAddr,
    pub opened: Arc<AtomicU64>,
    pub closed_by_peer: Arc<AtomicU64>,
    /// Late bytes written so far.
    pub late_written: Arc<AtomicU64>,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: JoinHandle<()>,
}

impl Scripted {
    pub async fn start(script: impl Fn(&Seen) -> Step + Send + Sync + 'static) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = Shared {
            script: Arc::new(script),
            opened: Arc::default(),
            closed_by_peer: Arc::default(),
            late_written: Arc::default(),
            seen: Arc::default(),
        };
        let s = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let conn = s.opened.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(sock, conn, s.clone()));
            }
        });
        Scripted {
            addr,
            opened: state.opened,
            closed_by_peer: state.closed_by_peer,
            late_written: state.late_written,
            seen: state.seen,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn opened(&self) -> u64 {
        self.opened.load(Ordering::SeqCst)
    }

    pub fn closed_by_peer(&self) -> u64 {
        self.closed_by_peer.load(Ordering::SeqCst)
    }

    pub fn late_written(&self) -> u64 {
        self.late_written.load(Ordering::SeqCst)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone)]
struct Shared {
    script: Arc<Script>,
    opened: Arc<AtomicU64>,
    closed_by_peer: Arc<AtomicU64>,
    late_written: Arc<AtomicU64>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

async fn serve(mut sock: TcpStream, conn: u64, s: Shared) {
    let mut buf = Vec::new();
    let mut seq = 0;
    loop {
        let Some(seen) = read_request(&mut sock, &mut buf, conn, seq).await else {
            s.closed_by_peer.fetch_add(1, Ordering::SeqCst);
            return;
        };
        seq += 1;
        s.seen.lock().expect("lock").push(seen.clone());
        match (s.script)(&seen) {
            Step::Reply(bytes) => {
                if sock.write_all(&bytes).await.is_err() {
                    return;
                }
            }
            Step::ReplyThenLate(bytes, pause, late) => {
                if sock.write_all(&bytes).await.is_err() {
                    return;
                }
                tokio::time::sleep(pause).await;
                if sock.write_all(&late).await.is_ok() {
                    s.late_written.fetch_add(1, Ordering::SeqCst);
                }
            }
            Step::ReplyThenClose(bytes) => {
                let _ = sock.write_all(&bytes).await;
                return;
            }
            Step::Close => return,
        }
    }
}

/// Reads one request (head and `Content-Length` body); `None` when the peer closed.
async fn read_request(sock: &mut TcpStream, buf: &mut Vec<u8>, conn: u64, seq: u64) -> Option<Seen> {
    let mut chunk = [0u8; 8192];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    buf.drain(..end);
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let method = first.next().unwrap_or("").to_owned();
    let path = first.next().unwrap_or("").to_owned();
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < length {
        match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let body = buf.drain(..length).collect();
    Some(Seen {
        conn,
        seq,
        method,
        path,
        headers,
        body,
    })
}

/// A client connection that sends raw requests and reads `Content-Length` or chunked
/// responses (or, with `Connection: close` semantics, until EOF).
pub struct RawClient {
    sock: TcpStream,
    buf: Vec<u8>,
}

/// A response as [`RawClient`] read it.
#[derive(Debug)]
pub struct RawReply {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl RawReply {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.split("\r\n").skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl RawClient {
    pub async fn connect(addr: SocketAddr) -> RawClient {
        RawClient {
            sock: TcpStream::connect(addr).await.expect("connect"),
            buf: Vec::new(),
        }
    }

    pub async fn send(&mut self, raw: &[u8]) {
        self.sock.write_all(raw).await.expect("write");
    }

    /// Reads one response; `head_request` says the body is empty whatever the head says.
    pub async fn read(&mut self, head_request: bool) -> RawReply {
        let mut chunk = [0u8; 8192];
        let end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = self.sock.read(&mut chunk).await.expect("read");
            assert!(n > 0, "connection closed before a response head: {:?}", self.buf);
            self.buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        self.buf.drain(..end);
        let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let mut reply = RawReply {
            status,
            head,
            body: Vec::new(),
        };
        if head_request || matches!(status, 100..=199 | 204 | 304) {
            return reply;
        }
        if let Some(n) = reply
            .header("content-length")
            .and_then(|v| v.parse::<usize>().ok())
        {
            while self.buf.len() < n {
                let got = self.sock.read(&mut chunk).await.expect("read");
                assert!(got > 0, "connection closed mid-body");
                self.buf.extend_from_slice(&chunk[..got]);
            }
            reply.body = self.buf.drain(..n).collect();
        } else if reply
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
        {
            reply.body = self.read_chunked().await;
        } else {
            // Delimited by the end of the connection.
            while let Ok(got) = self.sock.read(&mut chunk).await {
                if got == 0 {
                    break;
                }
                self.buf.extend_from_slice(&chunk[..got]);
            }
            reply.body = std::mem::take(&mut self.buf);
        }
        reply
    }

    async fn read_chunked(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            let line_end = loop {
                if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                    break i;
                }
                let got = self.sock.read(&mut chunk).await.expect("read");
                assert!(got > 0, "connection closed mid-chunk");
                self.buf.extend_from_slice(&chunk[..got]);
            };
            let size_text = String::from_utf8_lossy(&self.buf[..line_end]).into_owned();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .expect("chunk size");
            self.buf.drain(..line_end + 2);
            while self.buf.len() < size + 2 {
                let got = self.sock.read(&mut chunk).await.expect("read");
                assert!(got > 0, "connection closed mid-chunk");
                self.buf.extend_from_slice(&chunk[..got]);
            }
            if size == 0 {
                // No trailers from director: the last chunk ends with an empty line.
                self.buf.drain(..2);
                return out;
            }
            out.extend_from_slice(&self.buf[..size]);
            self.buf.drain(..size + 2);
        }
    }

    /// Whether the peer closed the connection within `wait` (what arrives meanwhile is
    /// dropped).
    pub async fn closed_within(&mut self, wait: Duration) -> bool {
        let mut chunk = [0u8; 8192];
        let until_eof = async {
            loop {
                match self.sock.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        };
        tokio::time::timeout(wait, until_eof).await.is_ok()
    }
}

/// `Connection`-level view of sockets to `port` in CLOSE_WAIT, from `/proc/net/tcp{,6}`.
pub fn close_wait_to(port: u16) -> usize {
    sockets_to(port, &["08"])
}

/// Sockets to `port` whose descriptor this side has not closed yet: ESTABLISHED, or closed by
/// the peer only (CLOSE_WAIT).
pub fn open_to(port: u16) -> usize {
    sockets_to(port, &["01", "08"])
}

/// Sockets to `port` in one of `states` (the hex codes of `/proc/net/tcp{,6}`).
fn sockets_to(port: u16, states: &[&str]) -> usize {
    sockets_where(End::Remote, port, states)
}

/// Sockets of a server on `port` that closed its end while the client had not (FIN_WAIT1,
/// FIN_WAIT2, CLOSING): e.g. a FIN still queued behind data the client has not read.
pub fn closed_by_server_on(port: u16) -> usize {
    sockets_where(End::Local, port, &["04", "05", "0B"])
}

enum End {
    Local,
    Remote,
}

fn sockets_where(end: End, port: u16, states: &[&str]) -> usize {
    let column = match end {
        End::Local => 1,
        End::Remote => 2,
    };
    let mut n = 0;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let (Some(address), Some(state)) = (cols.get(column), cols.get(3)) else {
                continue;
            };
            let address_port = address
                .rsplit_once(':')
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
            if address_port == Some(port) && states.contains(state) {
                n += 1;
            }
        }
    }
    n
}
