//! Request IDs and W3C trace context: what a request is called on its way through director.
//!
//! Hot path. Per request, [`Tracing::headers`] decides the request ID (the client's, when it
//! sent a usable one, else a new one) and the `traceparent` to forward (the client's, passed
//! on or given a span of director's own, or a new trace). The upstream writers put both on
//! the backend request (FastCGI as `HTTP_*` parameters) in place of the client's copies; the
//! handler returns the request ID to the client; the access log records it.
//!
//! New IDs come from a per-thread wyrand generator seeded once from the OS: no system call,
//! no lock and no shared cache line per request; IDs are formatted into stack buffers.

use std::cell::Cell;

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::HttpRequest;

use crate::config::{ProxyConfig, TraceparentConfig};

/// The longest client request ID accepted (longer ones are replaced).
pub const MAX_REQUEST_ID: usize = 128;

const TRACEPARENT: &str = "traceparent";

/// What a proxy does with request IDs and trace context (from `proxy.request_id` and
/// `proxy.traceparent`); fixed for the life of the process.
pub struct Tracing {
    request_id: Option<HeaderName>,
    traceparent: Option<TraceparentConfig>,
}

/// A request's ID and trace context, as sent to its backend.
pub struct TraceHeaders {
    /// The request ID header and its value.
    request_id: Option<(HeaderName, HeaderValue)>,
    /// Director manages `traceparent`: the client's is replaced by `traceparent` (or dropped).
    manages_traceparent: bool,
    traceparent: Option<HeaderValue>,
}

impl Tracing {
    /// `None` when neither request IDs nor trace context are configured.
    pub fn new(config: &ProxyConfig) -> Option<Tracing> {
        if config.request_id.is_none() && config.traceparent.is_none() {
            return None;
        }
        // Leaked once per process: a static name is cloned per request without touching a
        // reference count.
        let request_id = config.request_id.as_ref().map(|c| {
            let name: &'static str = Box::leak(c.header.to_ascii_lowercase().into_boxed_str());
            HeaderName::from_static(name)
        });
        Some(Tracing {
            request_id,
            traceparent: config.traceparent,
        })
    }

    /// The request ID and trace context of `req`.
    pub fn headers(&self, req: &HttpRequest) -> TraceHeaders {
        let request_id = self.request_id.as_ref().map(|name| {
            let value = single(req, name.as_str())
                .filter(|v| valid_request_id(v.as_bytes()))
                .cloned()
                .unwrap_or_else(new_request_id);
            (name.clone(), value)
        });
        let traceparent = self.traceparent.and_then(|config| {
            match single(req, TRACEPARENT).and_then(|v| parse_traceparent(v.as_bytes())) {
                Some(parent) if config.new_span => {
                    Some(format_traceparent(parent.trace_id, new_span_id(), parent.flags))
                }
                Some(_) => single(req, TRACEPARENT).cloned(),
                None if config.start => Some(format_traceparent(new_trace_id(), new_span_id(), b"01")),
                None => None,
            }
        });
        TraceHeaders {
            request_id,
            manages_traceparent: self.traceparent.is_some(),
            traceparent,
        }
    }
}

impl TraceHeaders {
    /// Whether the client's header `name` (lower case) is replaced by director's.
    pub fn replaces(&self, name: &str) -> bool {
        (self.manages_traceparent && name == TRACEPARENT)
            || self.request_id.as_ref().is_some_and(|(n, _)| n.as_str() == name)
    }

    /// The fields to send to the backend, as (lower-case name, value).
    pub fn fields(&self) -> impl Iterator<Item = (&str, &[u8])> {
        let id = self.request_id.as_ref().map(|(n, v)| (n.as_str(), v.as_bytes()));
        let parent = self.traceparent.as_ref().map(|v| (TRACEPARENT, v.as_bytes()));
        id.into_iter().chain(parent)
    }

    /// The request ID header and value, to return to the client.
    pub fn request_id(&self) -> Option<&(HeaderName, HeaderValue)> {
        self.request_id.as_ref()
    }

    /// The trace ID of the forwarded `traceparent` (32 hex digits).
    pub fn trace_id(&self) -> Option<&str> {
        let value = self.traceparent.as_ref()?.to_str().ok()?;
        value.get(3..35)
    }
}

/// The value of `name` when the request has exactly one.
fn single<'r>(req: &'r HttpRequest, name: &str) -> Option<&'r HeaderValue> {
    let mut values = req.headers().get_all(name);
    let first = values.next()?;
    values.next().is_none().then_some(first)
}

/// A client's request ID is kept when it is 1 to [`MAX_REQUEST_ID`] visible ASCII characters
/// (no spaces, no control or non-ASCII bytes: it goes into log lines and headers as it is).
pub fn valid_request_id(id: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID).contains(&id.len()) && id.iter().all(|b| (0x21..0x7f).contains(b))
}

/// A parsed `traceparent` (borrowing the header's bytes).
#[derive(Debug, PartialEq, Eq)]
struct Traceparent<'a> {
    trace_id: &'a [u8],
    flags: &'a [u8],
}

/// Parses `version-traceid-parentid-flags` by W3C Trace Context §3.2: lower-case hex, the IDs
/// not all zero, version `ff` invalid, version `00` exactly 55 bytes, later versions at least
/// that with a `-` after the flags.
fn parse_traceparent(v: &[u8]) -> Option<Traceparent<'_>> {
    let hex = |s: &[u8]| s.iter().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b));
    let nonzero = |s: &[u8]| s.iter().any(|&b| b != b'0');
    if v.len() < 55 || v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return None;
    }
    let (version, trace_id, parent_id, flags) = (&v[..2], &v[3..35], &v[36..52], &v[53..55]);
    let well_formed = hex(version) && hex(trace_id) && hex(parent_id) && hex(flags);
    if !well_formed || version == b"ff" || !nonzero(trace_id) || !nonzero(parent_id) {
        return None;
    }
    let length_ok = if version == b"00" {
        v.len() == 55
    } else {
        v.len() == 55 || v[55] == b'-'
    };
    length_ok.then_some(Traceparent { trace_id, flags })
}

/// `00-{trace_id}-{span_id}-{flags}`, formatted on the stack.
fn format_traceparent(trace_id: impl AsRef<[u8]>, span_id: [u8; 16], flags: &[u8]) -> HeaderValue {
    let mut out = [0u8; 55];
    out[..3].copy_from_slice(b"00-");
    out[3..35].copy_from_slice(trace_id.as_ref());
    out[35] = b'-';
    out[36..52].copy_from_slice(&span_id);
    out[52] = b'-';
    out[53..55].copy_from_slice(flags);
    HeaderValue::from_bytes(&out).expect("hex digits and dashes are a valid header value")
}

/// A new request ID: 32 lower-case hex digits (128 random bits).
fn new_request_id() -> HeaderValue {
    HeaderValue::from_bytes(&new_trace_id()).expect("hex digits are a valid header value")
}

/// 32 hex digits, not all zero.
fn new_trace_id() -> [u8; 32] {
    let mut out = [0u8; 32];
    let (high, low) = (next_u64(), next_u64() | 1);
    hex_into(&mut out[..16], high);
    hex_into(&mut out[16..], low);
    out
}

/// 16 hex digits, not all zero.
fn new_span_id() -> [u8; 16] {
    let mut out = [0u8; 16];
    hex_into(&mut out, next_u64() | 1);
    out
}

fn hex_into(out: &mut [u8], mut value: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for byte in out.iter_mut().rev() {
        *byte = DIGITS[(value & 0xf) as usize];
        value >>= 4;
    }
}

thread_local! {
    /// This thread's wyrand state, seeded once from the OS.
    static RNG: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    getrandom::u64().unwrap_or_else(|_| {
        // No OS randomness: the time and this thread's stack address still make IDs that
        // differ between threads and runs.
        let local = 0u8;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        nanos ^ (std::ptr::addr_of!(local) as u64).rotate_left(32)
    })
}

/// wyrand (Wang Yi): one multiply per 64 bits, passes BigCrush; not for secrets.
fn next_u64() -> u64 {
    RNG.with(|state| {
        let s = state.get().wrapping_add(0xa076_1d64_78bd_642f);
        state.set(s);
        let t = u128::from(s) * u128::from(s ^ 0xe703_7ed1_a0b4_28db);
        ((t >> 64) as u64) ^ (t as u64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RequestIdConfig;
    use actix_web::test::TestRequest;

    fn tracing(request_id: bool, traceparent: Option<(bool, bool)>) -> Tracing {
        let mut config = crate::config::load_str("proxy: { listen: \"127.0.0.1:0\" }")
            .expect("valid")
            .proxy;
        config.request_id = request_id.then(|| RequestIdConfig {
            header: "x-request-id".into(),
        });
        config.traceparent = traceparent.map(|(start, new_span)| TraceparentConfig { start, new_span });
        Tracing::new(&config).expect("on")
    }

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_usable_client_id_is_kept_else_replaced() {
        let t = tracing(true, None);
        let req = TestRequest::default()
            .insert_header(("x-request-id", "abc-123"))
            .to_http_request();
        let h = t.headers(&req);
        assert_eq!(h.request_id().expect("id").1, "abc-123");
        assert!(h.replaces("x-request-id") && !h.replaces("traceparent"));
        for bad in ["has space", &"x".repeat(129), "caf\u{e9}"] {
            let req = TestRequest::default()
                .insert_header(("x-request-id", bad))
                .to_http_request();
            let id = t.headers(&req).request_id().expect("id").1.clone();
            assert_ne!(id, bad);
            assert_eq!(id.len(), 32);
        }
        let two = TestRequest::default()
            .append_header(("x-request-id", "a"))
            .append_header(("x-request-id", "b"))
            .to_http_request();
        assert_eq!(
            t.headers(&two).request_id().expect("id").1.len(),
            32,
            "ambiguous: replaced"
        );
    }

    #[test]
    fn generated_ids_are_hex_and_differ() {
        let t = tracing(true, None);
        let req = TestRequest::default().to_http_request();
        let ids: std::collections::HashSet<_> = (0..1000)
            .map(|_| t.headers(&req).request_id().expect("id").1.clone())
            .collect();
        assert_eq!(ids.len(), 1000);
        assert!(ids
            .iter()
            .all(|id| id.len() == 32 && id.as_bytes().iter().all(u8::is_ascii_hexdigit)));
    }

    #[test]
    fn traceparent_passes_starts_or_adds_a_span() {
        let with = TestRequest::default()
            .insert_header(("traceparent", PARENT))
            .to_http_request();
        let without = TestRequest::default().to_http_request();
        let pass = tracing(false, Some((true, false)));
        assert_eq!(pass.headers(&with).traceparent.expect("kept"), PARENT);
        assert_eq!(
            pass.headers(&with).trace_id(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        let started = pass.headers(&without).traceparent.expect("started");
        let parsed = parse_traceparent(started.as_bytes()).expect("valid");
        assert_eq!(parsed.flags, b"01");
        let hop = tracing(false, Some((true, true)))
            .headers(&with)
            .traceparent
            .expect("hop");
        let hop = hop.to_str().expect("ascii");
        assert_eq!(&hop[..36], &PARENT[..36], "same trace");
        assert_ne!(&hop[36..52], &PARENT[36..52], "a span of director's own");
        assert_eq!(&hop[52..], "-01");
        let no_start = tracing(false, Some((false, false)));
        assert!(no_start.headers(&without).traceparent.is_none());
        assert!(
            no_start.headers(&without).replaces("traceparent"),
            "a bad one is dropped"
        );
    }

    #[test]
    fn traceparent_parsing_follows_the_spec() {
        assert!(parse_traceparent(PARENT.as_bytes()).is_some());
        let bad = [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ];
        for b in bad {
            assert!(parse_traceparent(b.as_bytes()).is_none(), "{b}");
        }
        let future = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more";
        assert!(parse_traceparent(future.as_bytes()).is_some());
    }
}
