//! One active health probe: an HTTP/1.1 GET through awc (`transport::http_client`), or a
//! FastCGI Responder request on the FastCGI codec for FastCGI backends, over the backend's own
//! transport (TCP, TLS over TCP for `https://` backends, or UNIX socket), judged by its status
//! code. Control plane; runs on the
//! monitor's arbiter.

use std::io;

use awc::error::{ConnectError, SendRequestError};
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::backend::Backend;
use crate::config::{Endpoint, HealthConfig, Protocol};
use crate::proto::cgi;
use crate::proto::fastcgi::{self, RecordDecoder, RecordType};
use crate::transport::http_client::EndpointClient;
use crate::transport::{self, Stream};

/// The probe's `User-Agent`, for HTTP and FastCGI probes alike.
const USER_AGENT: &str = "director-health-check";

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
            Protocol::Http => http_exchange(backend, config).await,
            Protocol::FastCgi => fastcgi_exchange(backend, config).await.map_err(|e| describe(&e)),
        }
    };
    match tokio::time::timeout(config.timeout, exchange).await {
        Err(_) => Verdict {
            ok: false,
            detail: "timeout".to_owned(),
        },
        Ok(Err(detail)) => Verdict { ok: false, detail },
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
    if transport::tls::is_handshake_error(e) {
        return e.to_string();
    }
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

/// What an HTTP probe's failure is called: `timeout`, `protocol error: ...` (the backend
/// answered, or hung up, without a valid response head), or the connection's own error.
fn describe_http(e: &SendRequestError) -> String {
    match e {
        SendRequestError::Timeout | SendRequestError::Connect(ConnectError::Timeout) => "timeout".to_owned(),
        SendRequestError::Connect(ConnectError::Io(e)) | SendRequestError::Send(e) => describe(e),
        // No `Expect` is sent, so this is the backend closing before a response head.
        SendRequestError::Connect(ConnectError::Disconnected) => {
            "protocol error: connection closed before a response".to_owned()
        }
        SendRequestError::Response(e) => format!("protocol error: {e}"),
        other => other.to_string(),
    }
}

/// `GET path` on a fresh connection; the response's status. awc takes an interim 1xx answer
/// (none is asked for: no `Expect` is sent) for the response, so it fails the probe unless `expect`
/// lists it.
async fn http_exchange(backend: &Backend, config: &HealthConfig) -> Result<u16, String> {
    let endpoint = &backend.url.endpoint;
    let host = probe_host(endpoint, config);
    let client = EndpointClient::new(endpoint, backend.tls.as_ref(), config.timeout);
    match client.get(&config.path, &host, USER_AGENT).send().await {
        Ok(response) => Ok(response.status().as_u16()),
        Err(e) => Err(describe_http(&e)),
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
        ("HTTP_USER_AGENT", USER_AGENT),
    ];
    let mut out = BytesMut::with_capacity(512);
    fastcgi::begin_request(&mut out, 1, false);
    fastcgi::params(&mut out, 1, params).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    fastcgi::end_stdin(&mut out, 1);
    // FastCGI backends have no `tls` (there is no FastCGI-over-TLS URL).
    match transport::connect(&backend.url.endpoint, None, config.timeout).await? {
        Stream::Tcp(mut s) => fastcgi_talk(&mut s, &out, &backend.name).await,
        Stream::Unix(mut s) => fastcgi_talk(&mut s, &out, &backend.name).await,
        Stream::Tls(mut s) => fastcgi_talk(&mut s, &out, &backend.name).await,
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
