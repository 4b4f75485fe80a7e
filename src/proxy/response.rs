//! Turning a backend's response head into the client's: end-to-end headers copied, hop-by-hop
//! ones and director's own instructions (`X-Sendfile`, `X-Accel-Redirect`) dropped, `Via`
//! appended, body framing chosen (never chunked to an HTTP/1.0 client), the body streamed by a
//! [`RelayBody`] — or, for `X-Sendfile` / `X-Accel-Redirect` when the cluster allows it, the
//! named file served instead of the backend's body; or, for a backend that switched protocols,
//! the `101` and the tunnel behind it (`tunnel`).
//!
//! Hot path.

use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;

use actix_web::body::BodySize;
use actix_web::http::{header as ax, ConnectionType, StatusCode, Version};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder};
use bytes::Bytes;

use super::access_log::AccessRecord;
use super::relay_body::{record_status, RelayBody, Timing};
use super::sendfile::{self, FileResponse};
use super::tunnel::Tunnel;
use super::upstream::{Exchange, Response};
use crate::cluster::{Backend, ClusterHandle, Grant};
use crate::proto::header_lines::{HeaderLines, LinesBuilder};
use crate::proto::http_headers as rules;
use crate::transport::file_sink::FileSink;

/// The client's response, or for `X-Sendfile` the file's answer once the file is open.
// The large variant is the common one: boxing it would cost every response an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Relayed {
    Ready(HttpResponse<RelayBody>),
    /// Boxed, so that a request's future holds only a pointer for the rare file answer
    /// rather than its opening state.
    File(Pin<Box<dyn Future<Output = HttpResponse<RelayBody>>>>),
}

/// Builds the client's response around the backend's. With `ready_made_head` (the caller
/// reads and changes nothing of the head but by inserting fields of its own), an HTTP/1
/// client's head gets the backend's fields as ready-made lines instead of a header map.
pub fn relay(
    req: &HttpRequest,
    upstream: Response,
    grant: Grant,
    cluster: &Arc<ClusterHandle>,
    timing: Timing,
    mut log: Option<Box<AccessRecord>>,
    ready_made_head: bool,
) -> Relayed {
    let is_head = req.method() == actix_web::http::Method::HEAD;
    // A guard, not a clone: no shared reference count is touched per request.
    let settings = cluster.settings.load();
    let roots = settings.x_sendfile_roots.as_deref();
    let sendfile_target = roots.and_then(|_| {
        let (_, target) = upstream.pairs().find(|(n, _)| rules::is_internal_response(n))?;
        Some(target.to_vec())
    });
    // A 101's `Upgrade` field goes to the client with it.
    let upgrade = upstream
        .exchange
        .is_tunnel()
        .then(|| upstream.values(b"upgrade").next());
    let upgrade = upgrade
        .flatten()
        .and_then(|v| ax::HeaderValue::from_maybe_shared(upstream.head_bytes.slice_ref(v)).ok());
    let Response {
        status,
        head_bytes,
        fields,
        content_length,
        exchange,
        ..
    } = upstream;
    let mut builder = HttpResponse::build(status_code(status));
    let lines = (ready_made_head
        && req.version() < Version::HTTP_2
        && sendfile_target.is_none()
        && !exchange.is_tunnel())
    .then(|| header_lines(&settings.via, &head_bytes, &fields, status == 304));
    if lines.is_none() {
        copy_ranged(&mut builder, &settings.via, &head_bytes, &fields);
    }
    let backend = grant.backend().clone();
    if exchange.is_tunnel() {
        // Before X-Sendfile: a 101's bytes are the other protocol's, never a file.
        return Relayed::Ready(relay_tunnel(
            builder, upgrade, exchange, grant, cluster, timing, log,
        ));
    }
    if let (Some(target), Some(roots)) = (sendfile_target, roots) {
        // The future borrows nothing: no settings guard is held while the file opens.
        let file = sendfile::serve(&target, roots, req.method(), req.headers());
        let sink = req.conn_data::<FileSink>().cloned();
        let cluster = cluster.clone();
        // Boxed: only X-Sendfile answers should carry the file-opening future's size.
        return Relayed::File(Box::pin(async move {
            let file = file.await;
            serve_file(builder, file, sink, exchange, grant, timing, &cluster, log)
        }));
    }
    let no_body = rules::response_has_no_body(is_head, status);
    let size = match content_length {
        // HEAD keeps the length the backend announced; actix writes no body for HEAD.
        Some(n) if is_head || !no_body => BodySize::Sized(n),
        _ if no_body => BodySize::None,
        _ => BodySize::Stream,
    };
    record_status(cluster, Some(&backend), status);
    if let Some(l) = log.as_mut() {
        l.set_backend(&backend.name);
        l.set_status(status);
    }
    let body = RelayBody::upstream(exchange, size, no_body, grant, timing, cluster.clone(), log);
    let mut response = finish(builder, body);
    if let Some(lines) = lines {
        response.head_mut().set_raw_headers(lines.bytes, lines.has_date);
    }
    if size == BodySize::Stream && req.version() < Version::HTTP_11 {
        // An HTTP/1.0 client can't read chunked: the body ends where the connection does.
        response.head_mut().no_chunking(true);
        response.head_mut().set_connection_type(ConnectionType::Close);
    }
    Relayed::Ready(response)
}

/// The client's `101` for a backend that switched protocols (with its `Upgrade` field), and
/// the tunnel as its body: the other protocol's bytes as they come, neither chunked nor
/// counted, on a connection that ends with the tunnel.
fn relay_tunnel(
    mut builder: HttpResponseBuilder,
    upgrade: Option<ax::HeaderValue>,
    exchange: Exchange,
    mut grant: Grant,
    cluster: &Arc<ClusterHandle>,
    timing: Timing,
    mut log: Option<Box<AccessRecord>>,
) -> HttpResponse<RelayBody> {
    let backend = grant.backend().clone();
    record_status(cluster, Some(&backend), 101);
    if let Some(l) = log.as_mut() {
        l.set_backend(&backend.name);
        l.set_status(101);
    }
    if let Some(upgrade) = upgrade {
        builder.insert_header((ax::UPGRADE, upgrade));
    }
    let tunnel = Tunnel::open(&cluster.settings.load().upgrades, cluster, &mut grant);
    let body = RelayBody::upstream(
        exchange,
        BodySize::Stream,
        false,
        grant,
        timing,
        cluster.clone(),
        log,
    )
    .into_tunnel(tunnel);
    let mut response = finish(builder, body);
    response.head_mut().set_connection_type(ConnectionType::Upgrade);
    response.head_mut().no_chunking(true);
    response
}

/// Copies the end-to-end header fields given as ranges of `bytes` (a parsed head) into
/// `builder` — zero-copy: values are slices of the head's buffer — and appends our `Via` entry
/// `via_entry`.
fn copy_ranged(
    builder: &mut HttpResponseBuilder,
    via_entry: &[u8],
    bytes: &Bytes,
    ranges: &[(Range<usize>, Range<usize>)],
) {
    let via = end_to_end_fields(bytes, ranges, |name, value| {
        // Standard names are recognised without allocating and come out in lower case.
        let Ok(name) = ax::HeaderName::from_bytes(name) else {
            return;
        };
        if let Ok(value) = ax::HeaderValue::from_maybe_shared(bytes.slice_ref(value)) {
            builder.append_header((name, value));
        }
    });
    if let Ok(v) = ax::HeaderValue::from_bytes(&rules::via_as(via, via_entry)) {
        builder.insert_header((ax::VIA, v));
    }
}

/// The end-to-end header fields given as ranges of `bytes` as HTTP/1 header lines, our `Via`
/// entry `via_entry` appended, for actix-http to write as they are
/// (`ResponseHead::set_raw_headers`, vendored): no header map is built. `Content-Length` is
/// left to actix-http's encoder, as it is for a map, except on a `304`, where it describes the
/// stored representation (`keep_length`).
fn header_lines(
    via_entry: &[u8],
    bytes: &[u8],
    ranges: &[(Range<usize>, Range<usize>)],
    keep_length: bool,
) -> HeaderLines {
    let mut lines = LinesBuilder::with_capacity(bytes.len() + via_entry.len() + 8);
    // Names and values come from httparse (the backend's head or a FastCGI header block),
    // which takes only tokens for names and HTAB, SP, visible characters and obs-text for
    // values: no line break or other control can reach the client's head.
    let via = end_to_end_fields(bytes, ranges, |name, value| {
        if keep_length || !name.eq_ignore_ascii_case(b"content-length") {
            lines.push(name, value);
        }
    });
    lines.start(b"via");
    rules::put_list(lines.value_mut(), via, via_entry);
    lines.end();
    lines.finish()
}

/// Shows each end-to-end field of a parsed head (`ranges` into `bytes`) to `keep`: hop-by-hop
/// fields, those the `Connection` field names, director's own instructions (`X-Sendfile`,
/// `X-Accel-Redirect`) and `Via` are left out. Returns the backend's `Via`, for the caller to
/// extend with director's entry.
fn end_to_end_fields<'a>(
    bytes: &'a [u8],
    ranges: &[(Range<usize>, Range<usize>)],
    mut keep: impl FnMut(&'a [u8], &'a [u8]),
) -> Option<&'a [u8]> {
    let fields = || ranges.iter().map(|(n, v)| (&bytes[n.clone()], &bytes[v.clone()]));
    let connection = || {
        fields()
            .filter(|(n, _)| n.eq_ignore_ascii_case(b"connection"))
            .map(|(_, v)| v)
    };
    let has_connection = rules::connection_names_fields(connection());
    let mut via = None;
    for (name, value) in fields() {
        if name.eq_ignore_ascii_case(b"via") {
            via = Some(value);
        } else if !(rules::is_hop_by_hop(name)
            || rules::is_internal_response(name)
            || (has_connection && rules::listed_in_connection(name, connection())))
        {
            keep(name, value);
        }
    }
    via
}

/// The end-to-end header fields of a backend's response head as a map (for the cache, off
/// the hot path).
pub fn header_map(upstream: &Response) -> ax::HeaderMap {
    let bytes = &upstream.head_bytes;
    upstream
        .fields
        .iter()
        .filter_map(|(n, v)| {
            let name = ax::HeaderName::from_bytes(&bytes[n.clone()]).ok()?;
            let value = ax::HeaderValue::from_bytes(&bytes[v.clone()]).ok()?;
            (!rules::is_hop_by_hop(name.as_str().as_bytes())).then_some((name, value))
        })
        .collect()
}

/// Builds the response or, if the head is unusable, a 502.
fn finish(mut builder: HttpResponseBuilder, body: RelayBody) -> HttpResponse<RelayBody> {
    builder.message_body(body).unwrap_or_else(|_| {
        HttpResponse::with_body(
            StatusCode::BAD_GATEWAY,
            RelayBody::fixed("bad response head\n", None),
        )
    })
}

/// Backend headers that describe the backend's body (or ask for the file) and so make no sense
/// on the file's response.
const REPLACED_BY_FILE: &[&str] = &[
    "x-sendfile",
    "x-accel-redirect",
    "content-type",
    "content-length",
    "content-encoding",
    "content-range",
    "accept-ranges",
    "etag",
    "last-modified",
];

/// The response for an X-Sendfile target: the backend's other headers, the file's status,
/// headers and body. The backend's body is read to its end and dropped first, so its
/// connection is reused and the capacity held until the backend is done. With the client
/// connection's `sink`, the file's cached spans go out zero-copy: actix-http then only
/// writes the head and the bytes director generates, so the body's length is announced here
/// instead of being counted by actix-http's encoder.
#[allow(clippy::too_many_arguments)]
fn serve_file(
    builder: HttpResponseBuilder,
    mut file: FileResponse,
    sink: Option<FileSink>,
    exchange: Exchange,
    grant: Grant,
    timing: Timing,
    cluster: &Arc<ClusterHandle>,
    mut log: Option<Box<AccessRecord>>,
) -> HttpResponse<RelayBody> {
    let backend = grant.backend().clone();
    let status = file.status.as_u16();
    record_status(cluster, Some(&backend), status);
    if let Some(l) = log.as_mut() {
        l.set_backend(&backend.name);
        l.set_status(status);
    }
    let direct_length = match (sink, file.head_content_length) {
        (Some(sink), None) if !file.body.is_empty() => {
            file.body.send_through(sink);
            Some(file.body.len())
        }
        _ => None,
    };
    let size = match (direct_length, file.head_content_length) {
        (Some(_), _) => BodySize::Stream,
        (None, Some(n)) => BodySize::Sized(n),
        (None, None) => BodySize::Sized(file.body.len()),
    };
    let body =
        RelayBody::upstream(exchange, size, true, grant, timing, cluster.clone(), log).then_file(file.body);
    let mut response = finish(builder, body);
    *response.status_mut() = file.status;
    let headers = response.headers_mut();
    for name in REPLACED_BY_FILE {
        headers.remove(*name);
    }
    for (name, value) in file.headers {
        headers.append(name, value);
    }
    if let Some(length) = direct_length {
        headers.insert(
            actix_web::http::header::CONTENT_LENGTH,
            ax::HeaderValue::from(length),
        );
        // Written as it comes, neither chunked nor counted (see above).
        response.head_mut().no_chunking(true);
    }
    response
}

/// Adds `X-Director-Bucket` and `X-Director-Backend` when the cluster asks for them.
pub fn with_debug_headers(
    mut response: HttpResponse<RelayBody>,
    bucket: Option<&str>,
    backend: &Backend,
) -> HttpResponse<RelayBody> {
    if let Some(bucket) = bucket {
        let headers = response.headers_mut();
        if let Ok(v) = ax::HeaderValue::from_str(bucket) {
            headers.insert(ax::HeaderName::from_static("x-director-bucket"), v);
        }
        if let Ok(v) = ax::HeaderValue::from_str(&backend.name) {
            headers.insert(ax::HeaderName::from_static("x-director-backend"), v);
        }
    }
    response
}

fn status_code(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY)
}
