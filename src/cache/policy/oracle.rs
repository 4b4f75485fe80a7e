//! [`storable`] against an independent reading of the same RFCs: the `http-cache-semantics`
//! crate (a shared cache, as director is), over random response heads built from the fields
//! a cache acts on.
//!
//! Where the two agree by design, they must agree exactly. Where director is stricter by
//! design, it may only be stricter, never laxer. It stores nothing the oracle forbids and
//! keeps nothing fresh longer than the oracle would. The deliberate differences:
//! - with `default_ttl: 0` director stores no response without explicit freshness, where the
//!   oracle guesses a lifetime from `Last-Modified`;
//! - director does not store what is stale at once and has no validator, nor `Vary: *`, and
//!   stores 302, 303 and 307 only with explicit freshness (the oracle also takes `public`);
//! - the answer to a request with `Authorization` is stored only for `public` or `s-maxage`,
//!   not for `must-revalidate` alone;
//! - `Set-Cookie` needs `public` or `s-maxage` here; the oracle needs `public` (and the stored
//!   object never carries the cookie, which [`storable`] does not see);
//! - director counts the age from `Date` as well as `Age` (RFC 9111 §4.2.3's
//!   `corrected_initial_age`), the oracle only `Age`;
//! - left out of the input: `proxy-revalidate` (the oracle makes it stale at once, RFC 9111
//!   only forbids serving it stale), `immutable` and a response's `Pragma`, which RFC 9111
//!   gives no meaning.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use http_cache_semantics::{CacheOptions, CachePolicy};
use proptest::prelude::*;

use super::storable;
use crate::test_util::proptest_runs;

const NOW_SECS: u64 = 1_800_000_000;

/// A response head as the generator makes it, and the request it answers.
#[derive(Debug, Clone)]
struct Case {
    status: u16,
    directives: Vec<&'static str>,
    expires: Option<i64>,
    /// `Expires: 0`, an invalid date (already expired).
    expires_invalid: bool,
    date_ago: Option<u64>,
    age: Option<u64>,
    etag: bool,
    last_modified: bool,
    set_cookie: bool,
    vary: Option<&'static str>,
    authorization: bool,
}

impl Case {
    fn fields(&self) -> Vec<(&'static str, String)> {
        let now = NOW_SECS as i64;
        let date = |secs: i64| httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs as u64));
        let mut fields = Vec::new();
        if !self.directives.is_empty() {
            fields.push(("cache-control", self.directives.join(", ")));
        }
        if self.expires_invalid {
            fields.push(("expires", "0".to_owned()));
        } else if let Some(offset) = self.expires {
            fields.push(("expires", date(now + offset)));
        }
        if let Some(ago) = self.date_ago {
            fields.push(("date", date(now - ago as i64)));
        }
        if let Some(age) = self.age {
            fields.push(("age", age.to_string()));
        }
        if self.etag {
            fields.push(("etag", "\"v1\"".to_owned()));
        }
        if self.last_modified {
            fields.push(("last-modified", date(now - 86_400)));
        }
        if self.set_cookie {
            fields.push(("set-cookie", "session=1".to_owned()));
        }
        if let Some(vary) = self.vary {
            fields.push(("vary", vary.to_owned()));
        }
        fields
    }

    fn has(&self, directive: &str) -> bool {
        self.directives
            .iter()
            .any(|d| d.split('=').next() == Some(directive))
    }

    fn explicit_freshness(&self) -> bool {
        self.has("max-age") || self.has("s-maxage") || self.expires.is_some() || self.expires_invalid
    }
}

fn case() -> impl Strategy<Value = Case> {
    let statuses = prop::sample::select(vec![
        200u16, 203, 204, 206, 300, 301, 302, 303, 307, 308, 404, 405, 410, 414, 500, 501, 503,
    ]);
    let directive = prop::sample::select(vec![
        "public",
        "private",
        "no-store",
        "no-cache",
        "must-revalidate",
        "max-age=0",
        "max-age=60",
        "max-age=3600",
        "s-maxage=0",
        "s-maxage=120",
    ]);
    (
        statuses,
        prop::collection::vec(directive, 0..4),
        prop::option::of(prop::sample::select(vec![-60i64, 0, 30, 600])),
        prop::bool::weighted(0.1),
        prop::option::of(prop::sample::select(vec![0u64, 30])),
        prop::option::of(prop::sample::select(vec![0u64, 10, 100])),
        (any::<bool>(), any::<bool>(), prop::bool::weighted(0.2)),
        prop::option::of(prop::sample::select(vec!["accept-encoding", "*"])),
        prop::bool::weighted(0.2),
    )
        .prop_map(
            |(
                status,
                mut directives,
                expires,
                expires_invalid,
                date_ago,
                age,
                flags,
                vary,
                authorization,
            )| {
                // A directive twice, with two values, is a different question (RFC 9111 §4.2.1).
                directives.sort_by_key(|d| d.split('=').next().unwrap_or(d).to_owned());
                directives.dedup_by_key(|d| d.split('=').next().unwrap_or(d).to_owned());
                let (etag, last_modified, set_cookie) = flags;
                Case {
                    status,
                    directives,
                    expires,
                    expires_invalid,
                    date_ago,
                    age,
                    etag,
                    last_modified,
                    set_cookie,
                    vary,
                    authorization,
                }
            },
        )
}

/// How long director keeps the object fresh from now: `None` if it does not store it.
fn director_ttl(case: &Case, now: SystemTime) -> Option<Duration> {
    let mut headers = HeaderMap::new();
    for (name, value) in case.fields() {
        headers.append(
            HeaderName::from_static(name),
            HeaderValue::from_str(&value).unwrap(),
        );
    }
    let freshness = storable(case.status, &headers, case.authorization, Duration::ZERO, now)?;
    Some(if freshness.always_revalidate {
        Duration::ZERO
    } else {
        freshness.lifetime.saturating_sub(freshness.initial_age)
    })
}

/// The oracle's verdict: whether it may be stored, and for how long it is fresh from now.
fn oracle(case: &Case, now: SystemTime) -> (bool, Duration) {
    let mut request = http::Request::get("http://example.test/page");
    if case.authorization {
        request = request.header("authorization", "Basic dTpw");
    }
    let request = request.body(()).unwrap();
    let mut response = http::Response::builder().status(case.status);
    for (name, value) in case.fields() {
        response = response.header(name, value);
    }
    let response = response.body(()).unwrap();
    let options = CacheOptions {
        shared: true,
        ..CacheOptions::default()
    };
    let policy = CachePolicy::new_options(&request, &response, now, options);
    (policy.is_storable(), policy.time_to_live(now))
}

proptest! {
    #![proptest_config(proptest_runs(2_000))]

    #[test]
    fn storing_is_never_laxer_than_the_oracle_and_agrees_where_freshness_is_explicit(case in case()) {
        let now = UNIX_EPOCH + Duration::from_secs(NOW_SECS);
        let ours = director_ttl(&case, now);
        let (oracle_stores, oracle_ttl) = oracle(&case, now);
        let fields = case.fields();
        if let Some(ttl) = ours {
            prop_assert!(oracle_stores, "stored against the oracle: {} {fields:?}", case.status);
            // A cookie with `s-maxage` alone: stored here, fresh for nothing by the oracle.
            if !case.set_cookie || case.has("public") {
                prop_assert!(
                    ttl <= oracle_ttl,
                    "fresh for {ttl:?}, the oracle {oracle_ttl:?}: {} {fields:?}",
                    case.status
                );
            }
        }
        // Where the response states its freshness and nothing sets the two apart, the verdicts
        // and lifetimes are the same.
        let comparable = case.explicit_freshness()
            && !case.set_cookie
            && case.vary != Some("*")
            && case.date_ago.unwrap_or(0) == 0
            && !(case.authorization && !case.has("public") && !case.has("s-maxage"));
        if comparable && oracle_stores && !oracle_ttl.is_zero() {
            prop_assert_eq!(ours, Some(oracle_ttl), "{} {:?}", case.status, fields);
        }
    }
}

#[test]
fn the_oracle_reads_http_dates_as_director_does() {
    // The property above compares lifetimes from `Expires`; it would prove little if the
    // oracle could not parse the dates director writes.
    let case = Case {
        status: 200,
        directives: vec![],
        expires: Some(600),
        expires_invalid: false,
        date_ago: Some(0),
        age: Some(10),
        etag: false,
        last_modified: false,
        set_cookie: false,
        vary: None,
        authorization: false,
    };
    let now = UNIX_EPOCH + Duration::from_secs(NOW_SECS);
    assert_eq!(oracle(&case, now), (true, Duration::from_secs(590)));
    assert_eq!(director_ttl(&case, now), Some(Duration::from_secs(590)));
}
