//! One active health probe: an HTTP/1.1 request, or a FastCGI Responder request for FastCGI
//! backends, over the backend's own transport (TCP or UNIX socket), judged by its status code.
//! Control plane; runs on the monitor's arbiter.

use std::io;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::backend::Backend;
use crate::config::{Endpoint, HealthConfig, Protocol};
use crate::proto::fastcgi::{self, RecordDecoder, RecordType};
use crate::proto::{cgi, http1};
use crate::transport::{self, Stream};

/// A probe's verdict and its reason (`status 200`, `timeout`, `connection refused`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub ok: bool,
    pub detail: String,
}

/// Probes `backend` once, within `config.timeout`.
pub async fn probe(backend: &Backend, config: &HealthConfig) -> Verdict {
    let exchange = async {
        match backend.url.protocol {
            Protocol::Http => http_exchange(&backend.url.endpoint, config).await,
            Protocol::FastCgi => fastcgi_exchange(backend, config).await,
        }
    };
    match tokio::time::timeout(config.timeout, exchange).await {
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

/// The probe's `Host`.
fn probe_host(endpoint: &Endpoint, config: &HealthConfig) -> String {
    match (&config.host, endpoint) {
        (Some(h), _) => h.clone(),
        (None, Endpoint::Tcp { host, port }) if host.contains(':') => format!("[{host}]:{port}"),
        (None, Endpoint::Tcp { host, port }) => format!("{host}:{port}"),
        (None, Endpoint::Unix(_)) => "localhost".to_owned(),
    }
}

async fn http_exchange(endpoint: &Endpoint, config: &HealthConfig) -> io::Result<u16> {
    let host = probe_host(endpoint, config);
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

/// A FastCGI probe: `GET path` as a Responder request whose `SCRIPT_FILENAME` is
/// `fcgi_script_filename`, or the backend's mapping of the path. php-fpm often sends no
/// `Status:`, which means 200.
async fn fastcgi_exchange(backend: &Backend, config: &HealthConfig) -> io::Result<u16> {
    let (path, query) = config.path.split_once('?').unwrap_or((&config.path, ""));
    let script_filename = match (&config.fcgi_script_filename, &backend.fastcgi) {
        (Some(file), _) => file.to_string_lossy().into_owned(),
        (None, Some(mapping)) => match &mapping.script {
            Some(front) => front.to_string_lossy().into_owned(),
            None => format!(
                "{}{path}",
                mapping.document_root.to_string_lossy().trim_end_matches('/')
            ),
        },
        (None, None) => String::new(),
    };
    let root = backend
        .fastcgi
        .as_ref()
        .map(|m| m.document_root.to_string_lossy().into_owned());
    let host = probe_host(&backend.url.endpoint, config);
    let params = [
        ("GATEWAY_INTERFACE", "CGI/1.1"),
        ("SERVER_SOFTWARE", concat!("director/", env!("CARGO_PKG_VERSION"))),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("REQUEST_METHOD", "GET"),
        ("REQUEST_URI", config.path.as_str()),
        ("SCRIPT_NAME", path),
        ("QUERY_STRING", query),
        ("SCRIPT_FILENAME", &script_filename),
        ("DOCUMENT_ROOT", root.as_deref().unwrap_or("")),
        ("HTTP_HOST", &host),
        ("HTTP_USER_AGENT", "director-health-check"),
    ];
    let mut out = BytesMut::with_capacity(512);
    fastcgi::begin_request(&mut out, 1, false);
    fastcgi::params(&mut out, 1, params).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    fastcgi::end_stdin(&mut out, 1);
    match transport::connect(&backend.url.endpoint, config.timeout).await? {
        Stream::Tcp(mut s) => fastcgi_talk(&mut s, &out, &backend.name).await,
        Stream::Unix(mut s) => fastcgi_talk(&mut s, &out, &backend.name).await,
    }
}

async fn fastcgi_talk<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    s: &mut S,
    request: &[u8],
    backend: &str,
) -> io::Result<u16> {
    let invalid = |e: String| io::Error::new(io::ErrorKind::InvalidData, e);
    s.write_all(request).await?;
    let (mut buf, mut stdout) = (BytesMut::with_capacity(1024), BytesMut::new());
    let mut decoder = RecordDecoder::new(1);
    loop {
        while let Some(record) = decoder.decode(&mut buf).map_err(|e| invalid(e.to_string()))? {
            match record.kind {
                RecordType::Stdout => {
                    stdout.extend_from_slice(&record.content);
                    if let Some(head) = cgi::parse_head(&stdout).map_err(|e| invalid(e.to_string()))? {
                        return Ok(head.status);
                    }
                }
                RecordType::Stderr => {
                    let text = String::from_utf8_lossy(&record.content);
                    log::warn!("backend '{backend}' health probe stderr: {}", text.trim_end());
                }
                RecordType::EndRequest => {
                    let end =
                        fastcgi::parse_end_request(&record.content).map_err(|e| invalid(e.to_string()))?;
                    return Err(invalid(format!(
                        "request ended ({:?}) without a CGI header block",
                        end.protocol_status
                    )));
                }
                _ => {}
            }
        }
        if s.read_buf(&mut buf).await? == 0 {
            return Err(invalid("connection closed before a response".to_owned()));
        }
    }
}
