//! A stored response: status, end-to-end headers and body (copied, owning its memory), when it
//! was stored and how long it stays fresh, the request header values it varies on and its
//! purge tags.
//!
//! Pure apart from the clock passed in.

use std::time::{Duration, Instant};

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use bytes::Bytes;

use super::policy::Freshness;
use crate::proto::header_lines::{HeaderLines, LinesBuilder};

/// Header fields a cache never stores: hop-by-hop ones, director's own, `Set-Cookie` (it
/// belonged to the first client), `Age` (computed on every answer) and `Via` (added then).
const NOT_STORED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-authenticate",
    "content-length",
    "set-cookie",
    "set-cookie2",
    "age",
    "via",
    "x-sendfile",
    "x-accel-redirect",
];

/// Bytes counted for every object on top of its keys, headers, lines and body: the struct,
/// the store's entry, the header map and allocator slack. Measured with
/// `bench/cache_memory.py`: 1 KiB objects grow the process by ~2,210 B each (with their
/// rendered lines); they are counted ~2,200 B.
pub const OBJECT_OVERHEAD: usize = 640;
/// Bytes counted per header field on top of its name and value.
const FIELD_OVERHEAD: usize = 48;
/// Bytes counted for the rendered lines on top of their length: their allocation's slack and
/// the shared header `Bytes` adds on the first hit that clones them.
const LINES_OVERHEAD: usize = 48;

/// Stored fields every answer from the object replaces (`proxy::cached::respond`), left out of
/// its rendered [`Object::lines`].
const NOT_IN_LINES: &[&str] = &["content-range", "cache-status"];

/// A field `Vary` names and the request's value of it (`None`: absent).
type VaryField = (HeaderName, Option<Box<[u8]>>);

/// What a stale object would be served for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaleUse {
    /// At once, while one request refreshes it (`update: shadowed`).
    WhileRevalidate,
    /// In place of a failure or an error status.
    IfError,
}

/// One variant of a key.
#[derive(Debug)]
pub struct Object {
    pub status: u16,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// `headers` rendered as HTTP/1 lines once, for the common hit (a full answer).
    lines: HeaderLines,
    pub body: Bytes,
    stored_at: Instant,
    pub freshness: Freshness,
    /// The header names `Vary` lists (lower case) and the request's values for them.
    vary: Box<[VaryField]>,
    /// `Surrogate-Key` and `Cache-Tag` values.
    pub tags: Box<[Box<str>]>,
    size: usize,
}

impl Object {
    /// Builds an object from a response's status and headers, the body received, and the
    /// request it answered (for `Vary`).
    pub fn new(
        status: u16,
        response: &HeaderMap,
        body: Bytes,
        request: &HeaderMap,
        freshness: Freshness,
        now: Instant,
    ) -> Object {
        let headers: Vec<(HeaderName, HeaderValue)> = response
            .iter()
            .filter(|(n, _)| !NOT_STORED.contains(&n.as_str()))
            .map(|(n, v)| (n.clone(), owned(v)))
            .collect();
        let vary = vary_of(response, request);
        let tags = tags_of(response);
        Object {
            status,
            headers,
            lines: HeaderLines::default(),
            body,
            stored_at: now,
            freshness,
            vary,
            tags,
            size: 0,
        }
        .measured()
    }

    /// A marker for a key whose last answer could not be stored: for `lifetime`, requests for
    /// it go to the backend without waiting on one another.
    pub fn pass_marker(lifetime: Duration) -> Object {
        let freshness = Freshness {
            lifetime,
            initial_age: Duration::ZERO,
            always_revalidate: false,
            no_stale: true,
            stale_while_revalidate: None,
            stale_if_error: None,
        };
        Object {
            status: 0,
            headers: Vec::new(),
            lines: HeaderLines::default(),
            body: Bytes::new(),
            stored_at: Instant::now(),
            freshness,
            vary: Box::new([]),
            tags: Box::new([]),
            size: 0,
        }
        .measured()
    }

    /// Whether this is a [`Object::pass_marker`].
    pub fn is_pass_marker(&self) -> bool {
        self.status == 0
    }

    /// The object with its lines rendered and its size counted.
    fn measured(mut self) -> Object {
        let fields = self
            .headers
            .iter()
            .filter(|(n, _)| !NOT_IN_LINES.contains(&n.as_str()));
        let length = fields.clone().map(|(n, v)| n.as_str().len() + v.len() + 4).sum();
        let mut lines = LinesBuilder::with_capacity(length);
        for (name, value) in fields {
            lines.push(name.as_str().as_bytes(), value.as_bytes());
        }
        self.lines = lines.finish();
        self.size = self.measure();
        self
    }

    /// Its stored fields as HTTP/1 lines, without those every answer replaces
    /// (`Content-Range`, `Cache-Status`).
    pub fn lines(&self) -> &HeaderLines {
        &self.lines
    }

    fn measure(&self) -> usize {
        let fields: usize = self
            .headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + FIELD_OVERHEAD)
            .sum();
        let vary: usize = self
            .vary
            .iter()
            .map(|(n, v)| n.as_str().len() + v.as_ref().map_or(0, |v| v.len()) + FIELD_OVERHEAD)
            .sum();
        let tags: usize = self.tags.iter().map(|t| t.len() + 16).sum();
        OBJECT_OVERHEAD + self.body.len() + fields + self.lines.bytes.len() + LINES_OVERHEAD + vary + tags
    }

    /// Bytes the object is counted for.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Its current age (RFC 9111 §4.2.3).
    pub fn age(&self, now: Instant) -> Duration {
        self.freshness.initial_age + now.saturating_duration_since(self.stored_at)
    }

    /// Whether it may answer a request without revalidation.
    pub fn is_fresh(&self, now: Instant) -> bool {
        !self.freshness.always_revalidate && self.age(now) < self.freshness.lifetime
    }

    /// Seconds of freshness left; negative once stale (the `ttl` of `Cache-Status`).
    pub fn ttl_secs(&self, now: Instant) -> i64 {
        let (age, lifetime) = (
            self.age(now).as_secs() as i64,
            self.freshness.lifetime.as_secs() as i64,
        );
        lifetime.saturating_sub(age)
    }

    /// Whether it may still be served stale for `purpose`: within the response's own RFC 5861
    /// window where it gave one, else within `configured` (the cluster's setting), past its
    /// freshness.
    pub fn usable_stale(&self, now: Instant, purpose: StaleUse, configured: Duration) -> bool {
        let own = match purpose {
            StaleUse::WhileRevalidate => self.freshness.stale_while_revalidate,
            StaleUse::IfError => self.freshness.stale_if_error,
        };
        let window = own.unwrap_or(configured);
        !self.freshness.no_stale && self.age(now) < self.freshness.lifetime.saturating_add(window)
    }

    /// Whether it was stored for a request with the same values of the `Vary` fields as
    /// `request` (RFC 9111 §4.1).
    pub fn matches(&self, request: &HeaderMap) -> bool {
        self.vary.iter().all(|(name, stored)| {
            let now = joined(request, name);
            now.as_deref() == stored.as_deref()
        })
    }

    /// Whether `other` varies on the same fields with the same values (it replaces this one).
    pub fn same_variant(&self, other: &Object) -> bool {
        self.vary == other.vary
    }

    /// Whether it varies on the same header names as `other`.
    pub fn same_vary_names(&self, other: &Object) -> bool {
        self.vary.len() == other.vary.len()
            && self.vary.iter().zip(other.vary.iter()).all(|(a, b)| a.0 == b.0)
    }

    pub fn header(&self, name: &str) -> Option<&HeaderValue> {
        self.headers
            .iter()
            .find(|(n, _)| n.as_str() == name)
            .map(|(_, v)| v)
    }

    /// The object after a 304 from the backend: the 304's headers replace the stored ones of
    /// the same name (RFC 9111 §4.3.4), the body stays, the clock restarts.
    pub fn refreshed(&self, not_modified: &HeaderMap, freshness: Freshness, now: Instant) -> Object {
        let mut headers: Vec<(HeaderName, HeaderValue)> = self
            .headers
            .iter()
            .filter(|(n, _)| !not_modified.contains_key(n) || n.as_str() == "content-length")
            .cloned()
            .collect();
        for (n, v) in not_modified {
            if !NOT_STORED.contains(&n.as_str()) && n.as_str() != "content-length" {
                headers.push((n.clone(), owned(v)));
            }
        }
        Object {
            status: self.status,
            headers,
            lines: HeaderLines::default(),
            body: self.body.clone(),
            stored_at: now,
            freshness,
            vary: self.vary.clone(),
            tags: self.tags.clone(),
            size: 0,
        }
        .measured()
    }
}

/// A copy of `value` in memory of its own: a relayed response's values are slices of the
/// connection's read buffer, which a stored object must not keep alive.
fn owned(value: &HeaderValue) -> HeaderValue {
    let mut copy = HeaderValue::from_bytes(value.as_bytes()).unwrap_or_else(|_| value.clone());
    copy.set_sensitive(value.is_sensitive());
    copy
}

/// The `Vary` names of `response` with `request`'s values, sorted by name.
fn vary_of(response: &HeaderMap, request: &HeaderMap) -> Box<[VaryField]> {
    let mut names: Vec<HeaderName> = response
        .get_all("vary")
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .filter_map(|n| HeaderName::from_bytes(n.trim_ascii()).ok())
        .collect();
    names.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
    names.dedup();
    names
        .into_iter()
        .map(|name| {
            let value = joined(request, &name);
            (name, value)
        })
        .collect()
}

/// All values of `name` in `headers`, joined by `, `, whitespace around them trimmed.
fn joined(headers: &HeaderMap, name: &HeaderName) -> Option<Box<[u8]>> {
    let mut values = headers.get_all(name).map(|v| v.as_bytes().trim_ascii());
    let first = values.next()?;
    let mut out = first.to_vec();
    for v in values {
        out.extend_from_slice(b", ");
        out.extend_from_slice(v);
    }
    Some(out.into_boxed_slice())
}

/// Purge tags: space- or comma-separated `Surrogate-Key` and `Cache-Tag` values.
fn tags_of(response: &HeaderMap) -> Box<[Box<str>]> {
    let mut tags: Vec<Box<str>> = ["surrogate-key", "cache-tag"]
        .iter()
        .flat_map(|name| response.get_all(*name))
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split([' ', ',']))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(Into::into)
        .collect();
    tags.sort_unstable();
    tags.dedup();
    tags.into_boxed_slice()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn fresh_for(secs: u64) -> Freshness {
        Freshness {
            lifetime: Duration::from_secs(secs),
            initial_age: Duration::ZERO,
            always_revalidate: false,
            no_stale: false,
            stale_while_revalidate: None,
            stale_if_error: None,
        }
    }

    #[test]
    fn keeps_end_to_end_fields_vary_values_and_tags() {
        let response = headers(&[
            ("content-type", "text/plain"),
            ("set-cookie", "s=1"),
            ("connection", "close"),
            ("vary", "Accept-Encoding, accept-language"),
            ("surrogate-key", "a b"),
            ("cache-tag", "b,c"),
        ]);
        let request = headers(&[("accept-encoding", "gzip"), ("accept-encoding", " br ")]);
        let now = Instant::now();
        let o = Object::new(
            200,
            &response,
            Bytes::from_static(b"hi"),
            &request,
            fresh_for(10),
            now,
        );
        let names: Vec<&str> = o.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert!(!names.contains(&"set-cookie") && !names.contains(&"connection"));
        assert!(names.contains(&"content-type") && names.contains(&"vary"));
        assert_eq!(&*o.tags, &["a".into(), "b".into(), "c".into()] as &[Box<str>]);
        assert!(o.matches(&headers(&[("accept-encoding", "gzip, br")])));
        assert!(!o.matches(&headers(&[("accept-encoding", "gzip")])));
        assert!(!o.matches(&headers(&[
            ("accept-encoding", "gzip, br"),
            ("accept-language", "de")
        ])));
        assert!(o.size() > OBJECT_OVERHEAD + 2);
    }

    #[test]
    fn stored_values_never_point_into_the_connection_buffer() {
        let buffer = Bytes::from(vec![b'a'; 16 * 1024]);
        let mut response = HeaderMap::new();
        let value = HeaderValue::from_maybe_shared(buffer.slice(0..10)).unwrap();
        response.insert(HeaderName::from_static("x-a"), value);
        let o = Object::new(
            200,
            &response,
            Bytes::new(),
            &HeaderMap::new(),
            fresh_for(1),
            Instant::now(),
        );
        let stored = o.header("x-a").unwrap().as_bytes().as_ptr() as usize;
        let range = buffer.as_ptr() as usize..buffer.as_ptr() as usize + buffer.len();
        assert!(
            !range.contains(&stored),
            "a stored header would pin the whole read buffer"
        );
    }

    #[test]
    fn age_freshness_and_stale_windows() {
        let now = Instant::now();
        let mut f = fresh_for(10);
        f.initial_age = Duration::from_secs(4);
        let o = Object::new(200, &HeaderMap::new(), Bytes::new(), &HeaderMap::new(), f, now);
        assert!(o.is_fresh(now));
        assert_eq!(o.ttl_secs(now), 6);
        let later = now + Duration::from_secs(7);
        assert!(!o.is_fresh(later));
        assert_eq!(o.ttl_secs(later), -1);
        let (swr, sie) = (StaleUse::WhileRevalidate, StaleUse::IfError);
        assert!(o.usable_stale(later, swr, Duration::from_secs(2)));
        assert!(!o.usable_stale(later, sie, Duration::from_secs(1)));
    }

    #[test]
    fn a_response_s_own_stale_windows_replace_the_configured_ones() {
        let now = Instant::now();
        let mut f = fresh_for(10);
        f.stale_while_revalidate = Some(Duration::from_secs(60));
        f.stale_if_error = Some(Duration::ZERO);
        let o = Object::new(200, &HeaderMap::new(), Bytes::new(), &HeaderMap::new(), f, now);
        let later = now + Duration::from_secs(30);
        assert!(o.usable_stale(later, StaleUse::WhileRevalidate, Duration::ZERO));
        assert!(!o.usable_stale(later, StaleUse::IfError, Duration::from_secs(3600)));
        f.no_stale = true;
        let must_revalidate = Object::new(200, &HeaderMap::new(), Bytes::new(), &HeaderMap::new(), f, now);
        assert!(!must_revalidate.usable_stale(later, StaleUse::WhileRevalidate, Duration::ZERO));
    }

    #[test]
    fn a_304_refreshes_headers_and_clock_but_not_the_body() {
        let now = Instant::now();
        let response = headers(&[("etag", "\"v1\""), ("content-length", "2"), ("x-a", "old")]);
        let o = Object::new(
            200,
            &response,
            Bytes::from_static(b"hi"),
            &HeaderMap::new(),
            fresh_for(1),
            now,
        );
        let later = now + Duration::from_secs(5);
        let r = o.refreshed(
            &headers(&[("x-a", "new"), ("content-length", "0")]),
            fresh_for(30),
            later,
        );
        assert_eq!(r.header("x-a").unwrap(), "new");
        assert_eq!(
            r.header("content-length"),
            None,
            "derived from the body, never stored"
        );
        assert_eq!(&r.body[..], b"hi");
        assert!(r.is_fresh(later + Duration::from_secs(29)));
    }
}
