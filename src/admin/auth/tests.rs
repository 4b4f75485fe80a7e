//! Tests of the admin access rules: the Host table, credentials, cross-site detection.

use std::time::Duration;

use actix_web::cookie::Cookie;
use actix_web::test::TestRequest;

use super::*;
use crate::config::{DEFAULT_MAX_EVENT_STREAMS, DEFAULT_SESSION_TTL};

const TOKEN: &str = "0123456789abcdef";

fn settings(listen: &str, token: Option<&str>) -> AdminConfig {
    AdminConfig {
        listen: match listen.strip_prefix("unix:") {
            Some(path) => ListenAddr::Unix(path.into()),
            None => ListenAddr::Tcp(listen.parse().expect("socket address")),
        },
        token: token.map(str::to_owned),
        session_ttl: DEFAULT_SESSION_TTL,
        max_event_streams: DEFAULT_MAX_EVENT_STREAMS,
        max_connections: 64,
        tls: None,
    }
}

#[test]
fn constant_time_comparison() {
    assert!(constant_time_eq(b"secret-token-123", b"secret-token-123"));
    assert!(!constant_time_eq(b"secret-token-123", b"secret-token-124"));
    assert!(!constant_time_eq(b"short", b"longer"));
}

#[test]
fn credentials() {
    let open = settings("127.0.0.1:8081", None);
    let locked = settings("127.0.0.1:8081", Some(TOKEN));
    let req = TestRequest::default().to_srv_request();
    assert_eq!(credential(&req, None), Some(Credential::Open));
    assert_eq!(credential(&req, Some(&open)), Some(Credential::Open));
    assert_eq!(credential(&req, Some(&locked)), None);
    let bearer = |value: &str| {
        TestRequest::default()
            .insert_header((header::AUTHORIZATION, format!("Bearer {value}")))
            .to_srv_request()
    };
    assert_eq!(
        credential(&bearer(TOKEN), Some(&locked)),
        Some(Credential::Bearer)
    );
    assert_eq!(credential(&bearer("0123456789abcdeX"), Some(&locked)), None);

    let with_cookie = |value: String| {
        TestRequest::default()
            .cookie(Cookie::new(SESSION_COOKIE, value))
            .to_srv_request()
    };
    let session = session::new_session(TOKEN, DEFAULT_SESSION_TTL).expect("random bytes");
    assert_eq!(
        credential(&with_cookie(session), Some(&locked)),
        Some(Credential::Cookie)
    );
    assert_eq!(
        credential(&with_cookie(TOKEN.to_owned()), Some(&locked)),
        None,
        "the raw token is no session"
    );
    let other = session::new_session("another-token-0123456", DEFAULT_SESSION_TTL).expect("random bytes");
    assert_eq!(credential(&with_cookie(other), Some(&locked)), None);
    let expired = session::issue(
        &session::SessionKey::for_token(TOKEN),
        1_000_000,
        Duration::from_secs(60),
        &[0; 16],
    );
    assert_eq!(credential(&with_cookie(expired), Some(&locked)), None);
}

#[test]
fn hosts_dns_cannot_repoint_are_accepted() {
    for host in [
        "127.0.0.1",
        "127.0.0.1:8081",
        "10.1.2.3:80",
        "0.0.0.0:8081",
        "[::1]",
        "[::1]:8081",
        "[fe80::1]:65535",
        "localhost",
        "localhost:8081",
        "LocalHost:8081",
        "dashboard.localhost",
        "a.b-c.localhost:9000",
    ] {
        assert!(is_rebinding_safe_host(host), "{host} should be accepted");
    }
    for host in [
        "",
        "evil.example",
        "evil.example:8081",
        "127.0.0.1.evil.example",
        "localhost.evil.example",
        "evillocalhost",
        ".localhost",
        "a..localhost",
        "under_score.localhost",
        "localhost.",
        "127.0.0.1:",
        "127.0.0.1:65536",
        "127.0.0.1:123456",
        "127.0.0.1:+80",
        "127.1",
        "0x7f.0.0.1",
        "::1",
        "[::1",
        "[::1]8081",
        "[evil.example]:80",
        "[::1]:",
        "localhost:80:80",
        "user@127.0.0.1",
    ] {
        assert!(!is_rebinding_safe_host(host), "{host} should be refused");
    }
}

#[test]
fn host_check_names_the_problem() {
    let req = TestRequest::get()
        .insert_header((header::HOST, "127.0.0.1:8081"))
        .to_srv_request();
    assert_eq!(check_host(&req), Ok(()));

    let req = TestRequest::get()
        .insert_header((header::HOST, "evil.example"))
        .to_srv_request();
    let e = check_host(&req).expect_err("refused");
    assert_eq!((e.status, e.error), (StatusCode::FORBIDDEN, "host_not_allowed"));
    let detail = e.detail.as_str().unwrap_or_default();
    assert!(
        detail.contains("evil.example") && detail.contains("DNS rebinding"),
        "{detail}"
    );

    let e = check_host(&TestRequest::get().to_srv_request()).expect_err("no Host");
    assert_eq!((e.status, e.error), (StatusCode::BAD_REQUEST, "missing_host"));

    // An absolute request target names the host too.
    let req = TestRequest::get()
        .uri("http://evil.example/api/v1/status")
        .insert_header((header::HOST, "127.0.0.1"))
        .to_srv_request();
    assert_eq!(check_host(&req).expect_err("refused").error, "host_not_allowed");
}

#[test]
fn only_a_tcp_listener_without_a_token_checks_the_host() {
    assert!(needs_host_check(None));
    assert!(needs_host_check(Some(&settings("127.0.0.1:8081", None))));
    assert!(!needs_host_check(Some(&settings("127.0.0.1:8081", Some(TOKEN)))));
    assert!(!needs_host_check(Some(&settings(
        "unix:/run/director-admin.sock",
        None
    ))));
}

#[test]
fn only_dashboard_pages_redirect_to_the_login_form() {
    let get = |path: &str| TestRequest::get().uri(path).to_srv_request();
    assert!(is_dashboard_page(&get("/")));
    assert!(is_dashboard_page(&get("/live")));
    assert!(is_dashboard_page(&get("/live?window=1h")));
    assert!(!is_dashboard_page(&get("/api/v1/status")));
    assert!(!is_dashboard_page(&get("/metrics")));
    assert!(!is_dashboard_page(&TestRequest::post().uri("/").to_srv_request()));
}

#[test]
fn cross_site_detection() {
    let same = TestRequest::post()
        .insert_header((header::HOST, "127.0.0.1:8081"))
        .insert_header((header::ORIGIN, "http://127.0.0.1:8081"))
        .to_srv_request();
    assert!(!is_cross_site(&same));
    let other = TestRequest::post()
        .insert_header((header::HOST, "127.0.0.1:8081"))
        .insert_header((header::ORIGIN, "http://evil.example"))
        .to_srv_request();
    assert!(is_cross_site(&other));
    let fetch = TestRequest::post()
        .insert_header(("sec-fetch-site", "cross-site"))
        .to_srv_request();
    assert!(is_cross_site(&fetch));
    let cli = TestRequest::post().to_srv_request();
    assert!(!is_cross_site(&cli), "curl sends neither header");
}
