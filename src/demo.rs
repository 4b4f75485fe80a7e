//! `--demo`: built-in sample backends for the shipped `config.yaml`, so a newcomer can see
//! director balance real traffic without setting anything up.
//!
//! Not part of the proxy: small hyper servers on their own thread, with varied latency.

use std::convert::Infallible;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, UnixListener};

/// The TCP sample backends: name and address.
pub const TCP_BACKENDS: [(&str, &str); 2] = [("app01", "127.0.0.1:9101"), ("app02", "127.0.0.1:9102")];

/// The UNIX-socket sample backend.
pub const UNIX_BACKEND: (&str, &str) = ("app03", "/tmp/director-demo/app03.sock");

/// Starts the sample backends on a background thread; returns once they listen.
pub fn start() -> std::io::Result<()> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("demo-backends".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            runtime.block_on(async move {
                match bind_all().await {
                    Ok(servers) => {
                        let _ = tx.send(Ok(()));
                        futures_util::future::join_all(servers).await;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            });
        })?;
    rx.recv()
        .map_err(|_| std::io::Error::other("demo backends did not start"))?
}

async fn bind_all() -> std::io::Result<Vec<tokio::task::JoinHandle<()>>> {
    let mut servers = Vec::new();
    for (i, (name, addr)) in TCP_BACKENDS.iter().enumerate() {
        let listener = TcpListener::bind(addr).await?;
        let sample = Sample::new(name, 5 + 10 * i as u64);
        servers.push(tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                sample.clone().serve(TokioIo::new(stream));
            }
        }));
    }
    let path = Path::new(UNIX_BACKEND.1);
    prepare_socket_path(path)?;
    let listener = UnixListener::bind(path)?;
    let sample = Sample::new(UNIX_BACKEND.0, 20);
    servers.push(tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            sample.clone().serve(TokioIo::new(stream));
        }
    }));
    log::info!("demo backends: {TCP_BACKENDS:?} and {UNIX_BACKEND:?}");
    Ok(servers)
}

fn prepare_socket_path(path: &Path) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// One sample backend: answers every request with its name after a varied delay.
#[derive(Clone)]
struct Sample {
    name: Arc<str>,
    base_ms: u64,
    served: Arc<AtomicU64>,
}

impl Sample {
    fn new(name: &str, base_ms: u64) -> Sample {
        Sample {
            name: name.into(),
            base_ms,
            served: Arc::default(),
        }
    }

    fn serve<IO>(self, io: IO)
    where
        IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        tokio::spawn(async move {
            let service = service_fn(move |req| self.clone().answer(req));
            let _ = http1::Builder::new().serve_connection(io, service).await;
        });
    }

    async fn answer(
        self,
        req: hyper::Request<hyper::body::Incoming>,
    ) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
        let n = self.served.fetch_add(1, Ordering::Relaxed) + 1;
        // A cheap spread of latencies: base plus 0..=30 ms.
        let jitter = n.wrapping_mul(2_654_435_761) % 31;
        tokio::time::sleep(Duration::from_millis(self.base_ms + jitter)).await;
        let body = format!(
            "{} answered {} {} (request #{n})\n",
            self.name,
            req.method(),
            req.uri()
        );
        let response = hyper::Response::builder()
            .header("content-type", "text/plain; charset=utf-8")
            .header("x-backend", &*self.name)
            .body(Full::new(Bytes::from(body)));
        Ok(response.unwrap_or_else(|_| hyper::Response::new(Full::new(Bytes::new()))))
    }
}
