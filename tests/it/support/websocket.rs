//! WebSocket fixtures: an echo backend over TCP or a UNIX socket (tokio-tungstenite) that
//! records its handshakes and sees its connections end, and a client through director.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UnixListener};
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::Director;

/// A WebSocket echo backend: echoes text and binary messages; on the text `drop-me` it drops
/// the connection without a closing handshake (a backend that goes away); on `flood` it sends
/// binary messages until it can't.
pub struct EchoBackend {
    pub url: String,
    /// Handshakes accepted.
    pub accepted: Arc<AtomicU64>,
    /// Connections whose WebSocket ended (close, EOF or error), as the backend saw it.
    pub ended: Arc<AtomicU64>,
    /// The last handshake's request header fields.
    pub headers: Arc<Mutex<Vec<(String, String)>>>,
    task: tokio::task::JoinHandle<()>,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for EchoBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl EchoBackend {
    pub async fn tcp() -> EchoBackend {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let listener = Arc::new(listener);
        EchoBackend::spawn(url, None, move || {
            let listener = listener.clone();
            async move { listener.accept().await.map(|(s, _)| s) }
        })
    }

    pub async fn unix() -> EchoBackend {
        let dir = super::temp_dir("ws-unix");
        let path = dir.path().join("echo.sock");
        let listener = UnixListener::bind(&path).expect("bind");
        let url = format!("http+unix://{}", path.display());
        let listener = Arc::new(listener);
        EchoBackend::spawn(url, Some(dir), move || {
            let listener = listener.clone();
            async move { listener.accept().await.map(|(s, _)| s) }
        })
    }

    fn spawn<S, F, Fut>(url: String, dir: Option<tempfile::TempDir>, accept: F) -> EchoBackend
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        F: Fn() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = std::io::Result<S>> + Send,
    {
        let (accepted, ended) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let headers = Arc::new(Mutex::new(Vec::new()));
        let state = (accepted.clone(), ended.clone(), headers.clone());
        let task = tokio::spawn(async move {
            while let Ok(stream) = accept().await {
                tokio::spawn(echo(stream, state.clone()));
            }
        });
        EchoBackend {
            url,
            accepted,
            ended,
            headers,
            task,
            _dir: dir,
        }
    }

    pub fn header(&self, name: &str) -> Option<String> {
        let headers = self.headers.lock().expect("headers");
        headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
    }
}

type EchoState = (Arc<AtomicU64>, Arc<AtomicU64>, Arc<Mutex<Vec<(String, String)>>>);

#[allow(clippy::result_large_err)] // tungstenite's handshake callback type
async fn echo<S: AsyncRead + AsyncWrite + Unpin>(stream: S, (accepted, ended, headers): EchoState) {
    let record = |req: &Request, res: Response| {
        let fields = req
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        *headers.lock().expect("headers") = fields;
        Ok(res)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, record).await else {
        return;
    };
    accepted.fetch_add(1, SeqCst);
    while let Some(Ok(msg)) = ws.next().await {
        if matches!(&msg, Message::Text(t) if t.as_str() == "drop-me") {
            break;
        }
        if matches!(&msg, Message::Text(t) if t.as_str() == "flood") {
            // Until the way to the client is closed.
            while ws.send(Message::binary(vec![0u8; 65_536])).await.is_ok() {}
            break;
        }
        if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
            break;
        }
    }
    ended.fetch_add(1, SeqCst);
}

pub type Client = WebSocketStream<TcpStream>;

/// A WebSocket client through director.
pub async fn ws_connect(d: &Director, path: &str) -> Client {
    let stream = TcpStream::connect(d.addr()).await.expect("connect");
    let url = format!("ws://{}{path}", d.addr());
    let (ws, res) = tokio_tungstenite::client_async(url, stream)
        .await
        .expect("WebSocket handshake through director");
    assert_eq!(res.status(), 101);
    ws
}

/// Sends `msg` and expects it back.
pub async fn round_trip(ws: &mut Client, msg: Message) {
    ws.send(msg.clone()).await.expect("send");
    let back = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("echo in time")
        .expect("a message")
        .expect("no error");
    assert_eq!(back, msg);
}

/// Waits until the client's side of the tunnel ends (a close, the end of the stream or an
/// error); returns how long that took.
pub async fn closed(ws: &mut Client) -> Duration {
    let began = Instant::now();
    match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
        Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => began.elapsed(),
        Ok(Some(Ok(other))) => panic!("unexpected message {other:?}"),
        Err(_) => panic!("the tunnel was not closed"),
    }
}
