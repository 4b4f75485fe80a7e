//! The CGI/1.1 parameters of a FastCGI request, built from the client's request and the
//! backend's script mapping, written straight into the outgoing record buffer.
//!
//! Hot path: no intermediate map; numbers and addresses are formatted on the stack.

use std::io::Write as _;
use std::os::unix::ffi::OsStrExt;

use actix_web::http::{header as ax, Version};
use actix_web::HttpRequest;
use bytes::BytesMut;

use super::trace::TraceHeaders;
use super::upstream::rewrite::Rewrite;
use crate::config::FastCgiConfig;
use crate::proto::cgi;
use crate::proto::fastcgi::{FcgiError, RecordType, StreamWriter};

/// `SERVER_SOFTWARE`.
const SERVER_SOFTWARE: &str = concat!("director/", env!("CARGO_PKG_VERSION"));

/// Request headers not passed as `HTTP_*`: the body's own (sent as `CONTENT_*`), hop-by-hop
/// ones, and `Proxy` (httpoxy: `HTTP_PROXY` would be read as a proxy setting by CGI code).
fn is_withheld(name: &str) -> bool {
    matches!(
        name,
        "content-type"
            | "content-length"
            | "connection"
            | "keep-alive"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "proxy"
            | "proxy-connection"
    )
}

/// Why a request can't be turned into CGI parameters.
#[derive(Debug, thiserror::Error)]
pub enum ParamsError {
    #[error("request path can't be mapped to a script")]
    BadPath,
    #[error("{0}")]
    Encoding(#[from] FcgiError),
}

/// Appends the PARAMS stream of request `id` (ended by the empty PARAMS record) to `out`.
pub fn write_params(
    out: &mut BytesMut,
    id: u16,
    req: &HttpRequest,
    mapping: &FastCgiConfig,
    content_length: Option<u64>,
    rewrite: Option<&Rewrite>,
    trace: Option<&TraceHeaders>,
) -> Result<(), ParamsError> {
    let document_uri = cgi::normalize_path(req.path()).ok_or(ParamsError::BadPath)?;
    let root = mapping.document_root.as_os_str().as_bytes();
    let front = mapping.script.as_deref().map(front_controller_name);
    let script = cgi::map_script(&document_uri, front.as_deref());

    let start = out.len();
    let mut w = StreamWriter::new(out, RecordType::Params, id);
    let mut put = |name: &[u8], value: &[u8]| w.write_pair(name, value);
    put(b"GATEWAY_INTERFACE", b"CGI/1.1")?;
    put(b"SERVER_SOFTWARE", SERVER_SOFTWARE.as_bytes())?;
    put(b"SERVER_PROTOCOL", protocol(req.version()))?;
    put(
        b"REQUEST_METHOD",
        Rewrite::method(rewrite, req.method().as_str()).as_bytes(),
    )?;
    put(
        b"REQUEST_URI",
        req.uri()
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .as_bytes(),
    )?;
    put(b"DOCUMENT_URI", document_uri.as_bytes())?;
    put(b"QUERY_STRING", req.query_string().as_bytes())?;
    put(b"DOCUMENT_ROOT", root)?;
    put(b"SCRIPT_NAME", script.script_name.as_bytes())?;
    put(b"PATH_INFO", script.path_info.as_bytes())?;
    let mut path = Vec::with_capacity(root.len() + document_uri.len());
    if !script.path_info.is_empty() {
        joined(&mut path, root, script.path_info.as_bytes());
        put(b"PATH_TRANSLATED", &path)?;
    }
    match &mapping.script {
        Some(file) => put(b"SCRIPT_FILENAME", file.as_os_str().as_bytes())?,
        None => {
            joined(&mut path, root, script.script_name.as_bytes());
            put(b"SCRIPT_FILENAME", &path)?;
        }
    }
    put(b"REDIRECT_STATUS", b"200")?;
    let mut num = [0u8; 48];
    let local = req.app_config().local_addr();
    match server_name(req) {
        Some(name) => put(b"SERVER_NAME", name.as_bytes())?,
        None => put(b"SERVER_NAME", display(&mut num, local.ip()))?,
    }
    put(b"SERVER_ADDR", display(&mut num, local.ip()))?;
    put(b"SERVER_PORT", display(&mut num, local.port()))?;
    if let Some(peer) = req.peer_addr() {
        put(b"REMOTE_ADDR", display(&mut num, peer.ip()))?;
        put(b"REMOTE_PORT", display(&mut num, peer.port()))?;
    }
    if req.app_config().secure() {
        put(b"HTTPS", b"on")?;
        put(b"REQUEST_SCHEME", b"https")?;
    } else {
        put(b"REQUEST_SCHEME", b"http")?;
    }
    let headers = req.headers();
    if let Some(t) = headers.get(ax::CONTENT_TYPE) {
        put(b"CONTENT_TYPE", t.as_bytes())?;
    }
    if let Some(n) = content_length {
        put(b"CONTENT_LENGTH", display(&mut num, n))?;
    }
    let mut name = Vec::with_capacity(64);
    let mut joined_values = Vec::new();
    for key in headers.keys() {
        if is_withheld(key.as_str())
            || (rewrite.is_some() && Rewrite::replaces(key.as_str()))
            || trace.is_some_and(|t| t.replaces(key.as_str()))
        {
            continue;
        }
        if !cgi::http_param_name(key.as_str(), &mut name) {
            continue;
        }
        let mut values = headers.get_all(key);
        let first = values.next().map_or(&b""[..], |v| v.as_bytes());
        let Some(second) = values.next() else {
            put(&name, first)?;
            continue;
        };
        // Repeated fields are folded into one value, cookies with "; " (RFC 6265 §5.4).
        let separator: &[u8] = if key == ax::COOKIE { b"; " } else { b", " };
        joined_values.clear();
        joined_values.extend_from_slice(first);
        for v in std::iter::once(second).chain(values) {
            joined_values.extend_from_slice(separator);
            joined_values.extend_from_slice(v.as_bytes());
        }
        put(&name, &joined_values)?;
    }
    for (key, value) in rewrite.iter().flat_map(|r| r.validators()) {
        if cgi::http_param_name(key, &mut name) {
            put(&name, value)?;
        }
    }
    for (key, value) in trace.iter().flat_map(|t| t.fields()) {
        if cgi::http_param_name(key, &mut name) {
            put(&name, value)?;
        }
    }
    w.finish();
    crate::proto::fastcgi::end_stream(out, RecordType::Params, id);
    debug_assert!(out.len() > start);
    Ok(())
}

/// `SERVER_NAME`: the host the request was routed by (an absolute-form target's authority,
/// else its `Host`), without the port; `None` when the request names none. Never a client's
/// `Forwarded` or `X-Forwarded-Host`: any client can send those, and applications build
/// absolute URLs (password-reset links) from `SERVER_NAME`.
fn server_name(req: &HttpRequest) -> Option<&str> {
    if let Some(host) = req.uri().host().filter(|h| !h.is_empty()) {
        return Some(host);
    }
    let value = req.headers().get(ax::HOST)?;
    let host = value.to_str().ok()?;
    let name = host.rsplit_once(':').map_or(host, |(name, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) {
            name
        } else {
            host
        }
    });
    (!name.is_empty()).then_some(name)
}

/// The URL path a front controller answers as (`SCRIPT_NAME`): its file name under `/`.
fn front_controller_name(script: &std::path::Path) -> String {
    let name = script
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    format!("/{name}")
}

/// `root` + `path` into `out` (cleared first), with exactly one `/` between them.
fn joined(out: &mut Vec<u8>, root: &[u8], path: &[u8]) {
    out.clear();
    out.extend_from_slice(root.strip_suffix(b"/").unwrap_or(root));
    out.extend_from_slice(path);
}

fn protocol(version: Version) -> &'static [u8] {
    match version {
        Version::HTTP_10 => b"HTTP/1.0",
        Version::HTTP_2 => b"HTTP/2.0",
        _ => b"HTTP/1.1",
    }
}

/// Formats `value` into `buf` without allocating.
fn display(buf: &mut [u8; 48], value: impl std::fmt::Display) -> &[u8] {
    let mut cursor = std::io::Cursor::new(&mut buf[..]);
    let _ = write!(cursor, "{value}");
    let n = cursor.position() as usize;
    &buf[..n]
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn server_name_is_the_routing_host_never_a_forwarded_one() {
        let req = TestRequest::default()
            .insert_header(("host", "shop.example:8080"))
            .insert_header(("x-forwarded-host", "evil.example"))
            .insert_header(("forwarded", "host=evil.example"))
            .to_http_request();
        assert_eq!(server_name(&req), Some("shop.example"));
        let req = TestRequest::default()
            .insert_header(("x-forwarded-host", "evil.example"))
            .to_http_request();
        assert_eq!(
            server_name(&req),
            None,
            "no Host: the caller falls back to SERVER_ADDR"
        );
        let req = TestRequest::default()
            .uri("http://h2.example:8443/x")
            .to_http_request();
        assert_eq!(server_name(&req), Some("h2.example"));
        let req = TestRequest::default()
            .insert_header(("host", "[::1]:8080"))
            .to_http_request();
        assert_eq!(server_name(&req), Some("[::1]"));
    }
}
