//! One active health probe: an HTTP/1.1 request over the backend's own transport (TCP or
//! UNIX socket), judged by its status code. Control plane; runs on the monitor's arbiter.

use std::io;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::config::{Endpoint, HealthConfig};
use crate::proto::http1;
use crate::transport::{self, Stream};

/// A probe's verdict and its reason (`status 200`, `timeout`, `connection refused`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub ok: bool,
    pub detail: String,
}

/// Probes `endpoint` once, within `config.timeout`.
pub async fn probe(endpoint: &Endpoint, config: &HealthConfig) -> Verdict {
    match tokio::time::timeout(config.timeout, exchange(endpoint, config)).await {
        Err(_) => Verdict {
            ok: false,
            detail: "timeout".to_owned(),
        },
        Ok(Err(e)) => Verdict {
            ok: false,
            detail: describe(&e),
        },
        Ok(Ok(status)) => {
            let ok = if config.expect.is_empty() {
                (200..400).contains(&status)
            } else {
                config.expect.contains(&status)
            };
            Verdict {
                ok,
                detail: format!("status {status}"),
            }
        }
    }
}

fn describe(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        io::ErrorKind::InvalidData => format!("protocol error: {e}"),
        _ => e.to_string(),
    }
}

async fn exchange(endpoint: &Endpoint, config: &HealthConfig) -> io::Result<u16> {
    let host = match (&config.host, endpoint) {
        (Some(h), _) => h.clone(),
        (None, Endpoint::Tcp { host, port }) if host.contains(':') => format!("[{host}]:{port}"),
        (None, Endpoint::Tcp { host, port }) => format!("{host}:{port}"),
        (None, Endpoint::Unix(_)) => "localhost".to_owned(),
    };
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: director-health-check\r\nConnection: close\r\n\r\n",
        config.path
    );
    match transport::connect(endpoint, config.timeout).await? {
        Stream::Tcp(mut s) => talk(&mut s, request.as_bytes()).await,
        Stream::Unix(mut s) => talk(&mut s, request.as_bytes()).await,
    }
}

async fn talk<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    s: &mut S,
    request: &[u8],
) -> io::Result<u16> {
    s.write_all(request).await?;
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        match http1::parse_response_head(&buf, false) {
            Ok(Some(head)) if (100..200).contains(&head.status) => {
                let _ = buf.split_to(head.len);
            }
            Ok(Some(head)) => return Ok(head.status),
            Ok(None) => {}
            Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
        }
        if s.read_buf(&mut buf).await? == 0 {
            let closed = "connection closed before a response";
            return Err(io::Error::new(io::ErrorKind::InvalidData, closed));
        }
    }
}
