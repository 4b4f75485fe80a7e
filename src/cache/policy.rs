//! RFC 9111 decisions for a shared cache: which requests may be answered from the cache,
//! which responses may be stored and for how long.
//!
//! Pure: works on header values and clocks passed in.
//!
//! - Requests: GET and HEAD only; `Cache-Control: no-store` bypasses the cache;
//!   `no-cache`, `max-age=0` and `Pragma: no-cache` force a revalidation unless the cache
//!   ignores them (origin protection); a request with `Authorization` is always forwarded.
//! - Responses: `no-store`, `private` and `Vary: *` are never stored; a response to a request
//!   with `Authorization`, or one with `Set-Cookie`, only when it says `public` or
//!   `s-maxage` (and `Set-Cookie` itself is then never stored: it went to the first client
//!   only). Freshness: `s-maxage`, else `max-age`, else `Expires` - `Date`, else the cache's
//!   `default_ttl` for statuses cacheable by default; `no-cache` stores for revalidation only
//!   (and, without explicit freshness, only for a status cacheable by default).
//!   `must-revalidate`, `proxy-revalidate` and `s-maxage` forbid serving the object stale.

use std::time::{Duration, SystemTime};

use actix_web::http::header::{self, HeaderMap, HeaderValue};

/// The `Cache-Control` directives a shared cache acts on.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CacheControl {
    pub no_store: bool,
    pub no_cache: bool,
    pub private: bool,
    pub public: bool,
    pub must_revalidate: bool,
    pub proxy_revalidate: bool,
    pub max_age: Option<u64>,
    pub s_maxage: Option<u64>,
    /// RFC 5861: how long past its freshness the response may be served while it is
    /// revalidated in the background, and in place of an error.
    pub stale_while_revalidate: Option<u64>,
    pub stale_if_error: Option<u64>,
}

impl CacheControl {
    /// Parses every `Cache-Control` value given; unknown directives are ignored, a malformed
    /// delta-seconds makes its directive count as 0 (the safe reading: stale at once).
    pub fn parse<'a>(values: impl Iterator<Item = &'a [u8]>) -> CacheControl {
        let mut cc = CacheControl::default();
        for value in values {
            cc.add(value);
        }
        cc
    }

    /// Adds the directives of one `Cache-Control` value.
    fn add(&mut self, value: &[u8]) {
        for directive in value.split(|&b| b == b',') {
            let directive = directive.trim_ascii();
            let (name, arg) = match directive.iter().position(|&b| b == b'=') {
                Some(i) => (&directive[..i], Some(&directive[i + 1..])),
                None => (directive, None),
            };
            let seconds = || arg.map_or(0, delta_seconds);
            match name.to_ascii_lowercase().as_slice() {
                b"no-store" => self.no_store = true,
                // `no-cache="field"` and `private="field"` name fields; treating them as
                // the unqualified directive is the conservative reading.
                b"no-cache" => self.no_cache = true,
                b"private" => self.private = true,
                b"public" => self.public = true,
                b"must-revalidate" => self.must_revalidate = true,
                b"proxy-revalidate" => self.proxy_revalidate = true,
                b"max-age" => self.max_age = Some(seconds()),
                b"s-maxage" => self.s_maxage = Some(seconds()),
                b"stale-while-revalidate" => self.stale_while_revalidate = Some(seconds()),
                b"stale-if-error" => self.stale_if_error = Some(seconds()),
                _ => {}
            }
        }
    }

    fn of(headers: &HeaderMap) -> CacheControl {
        CacheControl::parse(headers.get_all(header::CACHE_CONTROL).map(HeaderValue::as_bytes))
    }
}

/// Delta-seconds (RFC 9111 §1.2.2), quotes tolerated; too large saturates.
fn delta_seconds(arg: &[u8]) -> u64 {
    let arg = arg.trim_ascii();
    let arg = arg
        .strip_prefix(b"\"")
        .and_then(|a| a.strip_suffix(b"\""))
        .unwrap_or(arg);
    if arg.is_empty() || !arg.iter().all(u8::is_ascii_digit) {
        return 0;
    }
    arg.iter()
        .try_fold(0u64, |n, &d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
        .unwrap_or(u64::MAX)
}

/// How a request may use the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestUse {
    /// Not through the cache at all (method, `no-store`, `Authorization`).
    Bypass,
    /// Look up; a fresh object answers it.
    Lookup,
    /// Look up, but revalidate even a fresh object with the backend (client `no-cache`).
    Revalidate,
}

/// Whether the cache may answer a request of this method at all: GET, and HEAD from GET.
pub fn cacheable_method(method: &actix_web::http::Method) -> bool {
    use actix_web::http::Method;
    *method == Method::GET || *method == Method::HEAD
}

/// What the request allows, given whether the cache ignores client `no-cache`.
pub fn request_use(
    method: &actix_web::http::Method,
    headers: &HeaderMap,
    ignore_no_cache: bool,
) -> RequestUse {
    if !cacheable_method(method) {
        return RequestUse::Bypass;
    }
    // One pass over the request's fields rather than a lookup per name: requests carry few.
    let mut cc = CacheControl::default();
    let (mut has_cache_control, mut pragma_no_cache) = (false, false);
    for (name, value) in headers.iter() {
        if *name == header::AUTHORIZATION {
            return RequestUse::Bypass;
        } else if *name == header::CACHE_CONTROL {
            has_cache_control = true;
            cc.add(value.as_bytes());
        } else if *name == header::PRAGMA {
            pragma_no_cache |= value
                .as_bytes()
                .split(|&b| b == b',')
                .any(|d| d.trim_ascii().eq_ignore_ascii_case(b"no-cache"));
        }
    }
    if cc.no_store {
        return RequestUse::Bypass;
    }
    if !ignore_no_cache && (cc.no_cache || cc.max_age == Some(0) || (!has_cache_control && pragma_no_cache)) {
        return RequestUse::Revalidate;
    }
    RequestUse::Lookup
}

/// How long a stored response stays fresh, and what may be done with it once stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    /// Freshness lifetime (RFC 9111 §4.2.1).
    pub lifetime: Duration,
    /// The response's age when it arrived (RFC 9111 §4.2.3, `corrected_initial_age`).
    pub initial_age: Duration,
    /// Must be revalidated before every use (`no-cache`).
    pub always_revalidate: bool,
    /// Never served stale (`must-revalidate`, `proxy-revalidate`, `s-maxage`).
    pub no_stale: bool,
    /// The response's own `stale-while-revalidate` and `stale-if-error` (RFC 5861), which
    /// take the place of the cluster's settings for this object, as in nginx.
    pub stale_while_revalidate: Option<Duration>,
    pub stale_if_error: Option<Duration>,
}

/// Statuses a cache may store without explicit freshness (RFC 9110 §15.1).
fn heuristically_cacheable(status: u16) -> bool {
    matches!(
        status,
        200 | 203 | 204 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// Statuses stored at all (with explicit freshness for the ones not cacheable by default).
/// Partial content (206) and 304 are never stored as objects.
fn storable_status(status: u16) -> bool {
    heuristically_cacheable(status) || matches!(status, 302 | 303 | 307)
}

/// Whether a response can't be stored whatever else its head says: its status, or a
/// `Cache-Control` (every value given) with `no-store` or `private`. Read from a head's raw
/// fields, before any header map of them exists; [`storable`] decides the rest.
pub fn never_storable<'a>(status: u16, cache_control: impl Iterator<Item = &'a [u8]>) -> bool {
    if !storable_status(status) {
        return true;
    }
    let cc = CacheControl::parse(cache_control);
    cc.no_store || cc.private
}

/// Whether and how a response may be stored: `None` = not stored.
/// `request_authorized`: the request carried `Authorization`.
pub fn storable(
    status: u16,
    headers: &HeaderMap,
    request_authorized: bool,
    default_ttl: Duration,
    now: SystemTime,
) -> Option<Freshness> {
    if !storable_status(status) {
        return None;
    }
    let cc = CacheControl::of(headers);
    if cc.no_store || cc.private {
        return None;
    }
    let explicitly_shared = cc.public || cc.s_maxage.is_some();
    if (request_authorized || headers.contains_key("set-cookie")) && !explicitly_shared {
        return None;
    }
    if headers
        .get_all("vary")
        .any(|v| v.as_bytes().split(|&b| b == b',').any(|f| f.trim_ascii() == b"*"))
    {
        return None;
    }
    let date = http_date(headers, "date");
    let explicit = cc.s_maxage.or(cc.max_age).map(Duration::from_secs).or_else(|| {
        let expires = headers.get("expires")?;
        // An invalid Expires (e.g. "0") means already expired (RFC 9111 §5.3).
        let Some(expires) = parse_date(expires) else {
            return Some(Duration::ZERO);
        };
        Some(
            expires
                .duration_since(date.unwrap_or(now))
                .unwrap_or(Duration::ZERO),
        )
    });
    let lifetime = match explicit {
        Some(lifetime) => lifetime,
        None if heuristically_cacheable(status) && !default_ttl.is_zero() => default_ttl,
        // Kept for revalidation only, and without explicit freshness only a status cacheable
        // by default (302, 303 and 307 need explicit freshness, as for any other answer).
        None if cc.no_cache && heuristically_cacheable(status) => Duration::ZERO,
        None => return None,
    };
    let has_validator = headers.contains_key("etag") || headers.contains_key("last-modified");
    if (cc.no_cache || lifetime.is_zero()) && !has_validator {
        // Stale at once and nothing to revalidate with: storing it would help nobody.
        return None;
    }
    let age_value = headers.get("age").map_or(0, |v| delta_seconds(v.as_bytes()));
    let apparent_age = date.map_or(Duration::ZERO, |d| {
        now.duration_since(d).unwrap_or(Duration::ZERO)
    });
    Some(Freshness {
        lifetime,
        initial_age: apparent_age.max(Duration::from_secs(age_value)),
        always_revalidate: cc.no_cache,
        no_stale: cc.must_revalidate || cc.proxy_revalidate || cc.s_maxage.is_some(),
        stale_while_revalidate: cc.stale_while_revalidate.map(Duration::from_secs),
        stale_if_error: cc.stale_if_error.map(Duration::from_secs),
    })
}

fn http_date(headers: &HeaderMap, name: &str) -> Option<SystemTime> {
    parse_date(headers.get(name)?)
}

fn parse_date(value: &HeaderValue) -> Option<SystemTime> {
    httpdate::parse_http_date(value.to_str().ok()?.trim()).ok()
}

#[cfg(test)]
mod oracle;

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use actix_web::http::header::HeaderName;
    use actix_web::http::Method;

    use super::*;

    #[test]
    fn never_storable_agrees_with_storable_on_what_it_rules_out() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let cases: [(u16, &[&str], bool); 6] = [
            (200, &["max-age=60"], false),
            (200, &["max-age=60", "No-Store"], true),
            (200, &["private, max-age=60"], true),
            (206, &["max-age=60"], true),
            (500, &["max-age=60"], true),
            (404, &[], false),
        ];
        for (status, values, expected) in cases {
            let never = never_storable(status, values.iter().map(|v| v.as_bytes()));
            assert_eq!(never, expected, "{status} {values:?}");
            let pairs: Vec<_> = values.iter().map(|v| ("cache-control", *v)).collect();
            let stored = storable(status, &headers(&pairs), false, Duration::from_secs(10), now);
            assert!(!never || stored.is_none(), "{status} {values:?}");
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    const NOW: Duration = Duration::from_secs(1_800_000_000);

    fn store(status: u16, pairs: &[(&str, &str)]) -> Option<Freshness> {
        storable(status, &headers(pairs), false, Duration::ZERO, UNIX_EPOCH + NOW)
    }

    #[test]
    fn no_cache_alone_stores_only_what_may_be_stored_without_freshness() {
        // Found by the oracle (policy/oracle.rs): a 302 is not cacheable by default, and
        // `no-cache` gives it no freshness (RFC 9111 §3).
        let etag = ("etag", "\"v1\"");
        assert_eq!(store(302, &[("cache-control", "no-cache"), etag]), None);
        assert_eq!(store(307, &[("cache-control", "no-cache, public"), etag]), None);
        let explicit = store(302, &[("cache-control", "no-cache, max-age=60"), etag]);
        assert!(explicit.is_some_and(|f| f.always_revalidate));
        let ok = store(200, &[("cache-control", "no-cache"), etag]);
        assert!(ok.is_some_and(|f| f.always_revalidate && f.lifetime.is_zero()));
    }

    #[test]
    fn directives_parse_across_fields_and_case() {
        let cc = CacheControl::parse(
            [
                &b"Public, MAX-AGE=60"[..],
                b"s-maxage=\"30\", no-cache=\"set-cookie\", x=1",
            ]
            .into_iter(),
        );
        assert!(cc.public && cc.no_cache && !cc.no_store);
        assert_eq!((cc.max_age, cc.s_maxage), (Some(60), Some(30)));
        let bad = CacheControl::parse([&b"max-age=-5, s-maxage=1e3"[..]].into_iter());
        assert_eq!(
            (bad.max_age, bad.s_maxage),
            (Some(0), Some(0)),
            "malformed means stale"
        );
        let huge = CacheControl::parse([&b"max-age=99999999999999999999999"[..]].into_iter());
        assert_eq!(huge.max_age, Some(u64::MAX));
    }

    #[test]
    fn request_use_follows_method_and_client_directives() {
        let get = Method::GET;
        assert_eq!(request_use(&get, &headers(&[]), false), RequestUse::Lookup);
        assert_eq!(
            request_use(&Method::HEAD, &headers(&[]), false),
            RequestUse::Lookup
        );
        assert_eq!(
            request_use(&Method::POST, &headers(&[]), false),
            RequestUse::Bypass
        );
        let auth = headers(&[("authorization", "Bearer x")]);
        assert_eq!(request_use(&get, &auth, false), RequestUse::Bypass);
        let no_store = headers(&[("cache-control", "no-store")]);
        assert_eq!(request_use(&get, &no_store, true), RequestUse::Bypass);
        for h in [
            headers(&[("cache-control", "no-cache")]),
            headers(&[("cache-control", "max-age=0")]),
            headers(&[("pragma", "no-cache")]),
        ] {
            assert_eq!(request_use(&get, &h, false), RequestUse::Revalidate);
            assert_eq!(
                request_use(&get, &h, true),
                RequestUse::Lookup,
                "ignored for origin protection"
            );
        }
        let both = headers(&[("pragma", "no-cache"), ("cache-control", "max-age=60")]);
        assert_eq!(
            request_use(&get, &both, false),
            RequestUse::Lookup,
            "Cache-Control wins over Pragma"
        );
        let two_fields = headers(&[("cache-control", "max-age=60"), ("cache-control", "no-store")]);
        assert_eq!(
            request_use(&get, &two_fields, false),
            RequestUse::Bypass,
            "every Cache-Control field counts"
        );
    }

    #[test]
    fn freshness_from_s_maxage_max_age_expires_and_default() {
        let s = store(200, &[("cache-control", "max-age=60, s-maxage=10")]).unwrap();
        assert_eq!(s.lifetime, Duration::from_secs(10));
        assert!(s.no_stale, "s-maxage implies proxy-revalidate");
        let m = store(200, &[("cache-control", "max-age=60")]).unwrap();
        assert_eq!((m.lifetime, m.no_stale), (Duration::from_secs(60), false));
        assert_eq!((m.stale_while_revalidate, m.stale_if_error), (None, None));
        let rfc5861 = "max-age=60, stale-while-revalidate=30, Stale-If-Error=86400";
        let w = store(200, &[("cache-control", rfc5861)]).unwrap();
        assert_eq!(
            (w.stale_while_revalidate, w.stale_if_error),
            (Some(Duration::from_secs(30)), Some(Duration::from_secs(86400)))
        );
        let date = httpdate::fmt_http_date(UNIX_EPOCH + NOW - Duration::from_secs(5));
        let expires = httpdate::fmt_http_date(UNIX_EPOCH + NOW + Duration::from_secs(95));
        let e = store(200, &[("date", &date), ("expires", &expires)]).unwrap();
        assert_eq!(e.lifetime, Duration::from_secs(100));
        assert_eq!(e.initial_age, Duration::from_secs(5), "apparent age from Date");
        let aged = store(200, &[("cache-control", "max-age=60"), ("age", "20")]).unwrap();
        assert_eq!(aged.initial_age, Duration::from_secs(20));
        assert_eq!(store(200, &[]), None, "no freshness and no default_ttl");
        let d = storable(
            200,
            &headers(&[]),
            false,
            Duration::from_secs(7),
            UNIX_EPOCH + NOW,
        )
        .unwrap();
        assert_eq!(d.lifetime, Duration::from_secs(7));
        let not_default = storable(
            302,
            &headers(&[]),
            false,
            Duration::from_secs(7),
            UNIX_EPOCH + NOW,
        );
        assert_eq!(not_default, None, "302 only with explicit freshness");
        assert!(store(302, &[("cache-control", "max-age=5")]).is_some());
        assert_eq!(store(500, &[("cache-control", "max-age=5")]), None);
        assert_eq!(store(206, &[("cache-control", "max-age=5")]), None);
        let invalid_expires = store(200, &[("expires", "0"), ("etag", "\"a\"")]).unwrap();
        assert_eq!(invalid_expires.lifetime, Duration::ZERO);
    }

    #[test]
    fn private_no_store_cookies_authorization_and_vary_star() {
        assert_eq!(store(200, &[("cache-control", "max-age=60, private")]), None);
        assert_eq!(store(200, &[("cache-control", "no-store, max-age=60")]), None);
        assert_eq!(
            store(200, &[("cache-control", "max-age=60"), ("set-cookie", "s=1")]),
            None
        );
        assert!(store(
            200,
            &[("cache-control", "public, max-age=60"), ("set-cookie", "s=1")]
        )
        .is_some());
        assert_eq!(
            store(200, &[("cache-control", "max-age=60"), ("vary", "accept, *")]),
            None
        );
        let h = headers(&[("cache-control", "max-age=60")]);
        assert_eq!(storable(200, &h, true, Duration::ZERO, UNIX_EPOCH + NOW), None);
        let public = headers(&[("cache-control", "public, max-age=60")]);
        assert!(storable(200, &public, true, Duration::ZERO, UNIX_EPOCH + NOW).is_some());
    }

    #[test]
    fn no_cache_stores_only_with_a_validator() {
        assert_eq!(store(200, &[("cache-control", "no-cache")]), None);
        let r = store(200, &[("cache-control", "no-cache"), ("etag", "\"v1\"")]).unwrap();
        assert!(r.always_revalidate);
        let mr = store(200, &[("cache-control", "max-age=5, must-revalidate")]).unwrap();
        assert!(mr.no_stale);
    }
}
