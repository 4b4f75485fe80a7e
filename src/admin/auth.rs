//! Admin access control: the Host check (DNS rebinding) of a listener without a token, the
//! token (Bearer header, or the dashboard's session cookie, see [`super::session`]) compared
//! in constant time, HTTP Basic for HAProxy's URIs when stats users are configured (see
//! [`super::haproxy_compat`]), and the cross-site guard for state-changing calls.
//!
//! Control plane. Every admin request passes [`guard`] first.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpResponse};

use super::error::ApiError;
use super::haproxy_compat;
use super::session;
use super::AdminState;
use crate::config::{AdminConfig, HaproxyCompatConfig, ListenAddr};

pub use super::session::SESSION_COOKIE;

/// Paths reachable without the token: the login form and its assets.
fn is_public(path: &str) -> bool {
    path == "/login" || path.starts_with("/static/")
}

/// Whether `a` equals `b`, in time that depends only on the lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// How a request proved it may use the admin surface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// No token is configured.
    Open,
    /// `Authorization: Bearer`.
    Bearer,
    /// A valid session cookie.
    Cookie,
}

/// The credential `req` carries under `settings` (no settings: no token), if it is valid.
pub fn credential(req: &ServiceRequest, settings: Option<&AdminConfig>) -> Option<Credential> {
    let Some((token, settings)) = settings.and_then(|s| Some((s.token.as_deref()?, s))) else {
        return Some(Credential::Open);
    };
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    if let Some(given) = bearer {
        return constant_time_eq(given.as_bytes(), token.as_bytes()).then_some(Credential::Bearer);
    }
    let cookie = req.cookie(SESSION_COOKIE)?;
    session::is_valid(token, cookie.value(), settings.session_ttl).then_some(Credential::Cookie)
}

/// Whether `host` (a `Host` header: a name or address with an optional port) is one that DNS
/// can't point at another machine: an IPv4 literal, a bracketed IPv6 literal, `localhost` or a
/// name under `.localhost` (RFC 6761 keeps those on the loopback interface). The listener's own
/// address is an IP literal (`admin.listen` takes no names), so it is among them.
pub fn is_rebinding_safe_host(host: &str) -> bool {
    if let Some(bracketed) = host.strip_prefix('[') {
        let Some((v6, rest)) = bracketed.split_once(']') else {
            return false;
        };
        let port_ok = rest.is_empty() || rest.strip_prefix(':').is_some_and(is_port);
        return port_ok && v6.parse::<Ipv6Addr>().is_ok();
    }
    let name = match host.rsplit_once(':') {
        Some((name, port)) if is_port(port) => name,
        Some(_) => return false,
        None => host,
    };
    if name.parse::<Ipv4Addr>().is_ok() {
        return true;
    }
    let name = name.to_ascii_lowercase();
    let is_dns_name = |s: &str| {
        s.split('.')
            .all(|label| !label.is_empty() && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    };
    name == "localhost" || name.strip_suffix(".localhost").is_some_and(is_dns_name)
}

/// A port number: 1 to 5 digits, at most 65535.
fn is_port(port: &str) -> bool {
    (1..=5).contains(&port.len()) && port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_ok()
}

/// The DNS-rebinding check of a listener without a token: a page on `http://evil.example`
/// whose name was re-pointed at 127.0.0.1 reaches the listener as same-origin, with `Host:
/// evil.example`, so only names DNS can't re-point are answered ([`is_rebinding_safe_host`]).
/// The request target's authority, if it has one (`GET http://name/ HTTP/1.1`), is checked too.
pub fn check_host(req: &ServiceRequest) -> Result<(), ApiError> {
    let refused = |detail: String| ApiError::new(StatusCode::FORBIDDEN, "host_not_allowed", detail);
    let host = match req.headers().get(header::HOST).map(|v| v.to_str()) {
        None => {
            return Err(ApiError::bad_request(
                "missing_host",
                "the request has no Host header; without admin.token the admin listener needs one \
                 naming an IP address or localhost",
            ))
        }
        Some(Err(_)) => return Err(refused("the Host header is not valid text".to_owned())),
        Some(Ok(host)) => host,
    };
    let authority = req.uri().authority().map(|a| a.as_str());
    for name in std::iter::once(host).chain(authority) {
        if !is_rebinding_safe_host(name) {
            return Err(refused(format!(
                "Host `{name}` is not allowed: without admin.token the admin listener answers only \
                 IP addresses, localhost and *.localhost (protection against DNS rebinding); \
                 use http://127.0.0.1:PORT/ or set admin.token"
            )));
        }
    }
    Ok(())
}

/// Whether requests need the Host check: no token, and a TCP listener (a UNIX socket is out
/// of a browser's reach). Without settings, the check applies.
fn needs_host_check(settings: Option<&AdminConfig>) -> bool {
    settings.is_none_or(|s| s.token.is_none() && !matches!(s.listen, ListenAddr::Unix(_)))
}

/// Whether a state-changing request comes from another site: an `Origin` that is not this
/// host, or a `Sec-Fetch-Site` other than `same-origin` / `none`.
pub fn is_cross_site(req: &ServiceRequest) -> bool {
    let headers = req.headers();
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if !matches!(site, "same-origin" | "none") {
            return true;
        }
    }
    match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        None => false,
        Some(origin) => {
            let host = headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let origin_host = origin.split_once("://").map_or("", |(_, rest)| rest);
            origin == "null" || !origin_host.eq_ignore_ascii_case(host)
        }
    }
}

/// A dashboard page a browser navigates to (as opposed to an API call).
fn is_dashboard_page(req: &ServiceRequest) -> bool {
    req.method() == Method::GET && matches!(req.path(), "/" | "/live")
}

fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The admin settings in force for `req` (read once per request: a reload may swap them).
fn settings(req: &ServiceRequest) -> Option<Arc<AdminConfig>> {
    req.app_data::<web::Data<AdminState>>()?.settings()
}

/// The admin state and `haproxy_compat` settings when `req` is for one of HAProxy's URIs and
/// stats users are configured.
fn stats_users_apply(req: &ServiceRequest) -> Option<(web::Data<AdminState>, Arc<HaproxyCompatConfig>)> {
    let state = req.app_data::<web::Data<AdminState>>()?.clone();
    let config = state.haproxy_compat.load_full();
    let applies = !config.users.is_empty()
        && haproxy_compat::classify_admin(req.method(), req.uri(), &config).is_some();
    applies.then_some((state, config))
}

/// The middleware: the Host check (without a token), the cross-site guard for state-changing
/// methods, then the token.
pub async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let settings = settings(&req);
    if needs_host_check(settings.as_deref()) {
        if let Err(e) = check_host(&req) {
            return Ok(req.error_response(e));
        }
    }
    if changes_state(req.method()) && is_cross_site(&req) {
        let e = ApiError::forbidden("cross-site requests may not change state");
        return Ok(req.error_response(e));
    }
    if !is_public(req.path()) && credential(&req, settings.as_deref()).is_none() {
        if let Some((state, config)) = stats_users_apply(&req) {
            // HAProxy's URIs also take the stats users' HTTP Basic credentials.
            if haproxy_compat::basic_allows(req.request(), &state, &config).await {
                return next.call(req).await.map(ServiceResponse::map_into_boxed_body);
            }
            return Ok(req.into_response(haproxy_compat::challenge(&config.realm)));
        }
        if is_dashboard_page(&req) {
            // A browser opening the dashboard: the login form rather than a JSON refusal.
            let login = HttpResponse::SeeOther()
                .insert_header((header::LOCATION, "/login"))
                .finish();
            return Ok(req.into_response(login));
        }
        return Ok(req.error_response(ApiError::unauthorized()));
    }
    next.call(req).await.map(ServiceResponse::map_into_boxed_body)
}

#[cfg(test)]
mod tests;
