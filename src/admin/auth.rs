//! Admin access control: the token (Bearer header, or the dashboard's session cookie), compared
//! in constant time, and the cross-site guard for state-changing calls.
//!
//! Control plane. Every admin request passes [`guard`] first.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method};
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpResponse};

use super::error::ApiError;
use super::AdminState;

/// The dashboard's session cookie (holds the token; `HttpOnly`, `SameSite=Strict`).
pub const SESSION_COOKIE: &str = "director_session";

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
    /// The session cookie.
    Cookie,
}

/// The credential `req` carries for `token`, if it is valid.
pub fn credential(req: &ServiceRequest, token: Option<&str>) -> Option<Credential> {
    let Some(token) = token else {
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
    constant_time_eq(cookie.value().as_bytes(), token.as_bytes()).then_some(Credential::Cookie)
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

/// The middleware: token check, then the cross-site guard for state-changing methods.
pub async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let token = req
        .app_data::<web::Data<AdminState>>()
        .and_then(|s| s.token.clone());
    if changes_state(req.method()) && is_cross_site(&req) {
        let e = ApiError::forbidden("cross-site requests may not change state");
        return Ok(req.error_response(e));
    }
    if !is_public(req.path()) && credential(&req, token.as_deref()).is_none() {
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
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn constant_time_comparison() {
        assert!(constant_time_eq(b"secret-token-123", b"secret-token-123"));
        assert!(!constant_time_eq(b"secret-token-123", b"secret-token-124"));
        assert!(!constant_time_eq(b"short", b"longer"));
    }

    #[test]
    fn credentials() {
        let token = Some("0123456789abcdef");
        let req = TestRequest::default().to_srv_request();
        assert_eq!(credential(&req, None), Some(Credential::Open));
        assert_eq!(credential(&req, token), None);
        let req = TestRequest::default()
            .insert_header((header::AUTHORIZATION, "Bearer 0123456789abcdef"))
            .to_srv_request();
        assert_eq!(credential(&req, token), Some(Credential::Bearer));
        let req = TestRequest::default()
            .insert_header((header::AUTHORIZATION, "Bearer 0123456789abcdeX"))
            .to_srv_request();
        assert_eq!(credential(&req, token), None);
        let req = TestRequest::default()
            .cookie(actix_web::cookie::Cookie::new(SESSION_COOKIE, "0123456789abcdef"))
            .to_srv_request();
        assert_eq!(credential(&req, token), Some(Credential::Cookie));
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
}
