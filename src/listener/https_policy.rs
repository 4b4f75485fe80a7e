//! A listener's HTTPS policy: `redirect_to_https` on a plain listener (every request is
//! answered with a redirect to `https://`) and `hsts` on a TLS listener (the
//! `Strict-Transport-Security` header on every response that has none).
//!
//! The server puts a listener's [`HttpsPolicy`] into each connection's data (into each
//! request's extensions on HTTP/2); the request-side
//! entry points of `conn` ([`super::guarded`], [`super::track_requests`]) apply it. Hot path:
//! one connection-data lookup per request, nothing when the listener has no policy.

use std::sync::Arc;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpMessage, HttpRequest, HttpResponse};

use crate::config::ListenerConfig;
use crate::proto::header_lines;

/// The port `https://` URLs leave out.
const HTTPS_PORT: u16 = 443;

/// What a listener does beyond serving its requests.
#[derive(Debug, Clone, Default)]
pub struct HttpsPolicy {
    /// Redirect every request to `https://` on this port.
    pub redirect_to_https: Option<u16>,
    /// The `Strict-Transport-Security` value for every response.
    pub hsts: Option<HeaderValue>,
}

impl HttpsPolicy {
    /// The policy of a configured proxy listener.
    pub fn of(listener: &ListenerConfig) -> HttpsPolicy {
        HttpsPolicy {
            redirect_to_https: listener.redirect_to_https,
            hsts: listener
                .hsts
                .and_then(|h| HeaderValue::from_str(&h.header_value()).ok()),
        }
    }

    /// Whether the policy does anything (else connections don't carry it).
    pub fn is_active(&self) -> bool {
        self.redirect_to_https.is_some() || self.hsts.is_some()
    }
}

/// The policy of `req`'s listener, if it has one.
pub(super) fn of_request(req: &HttpRequest) -> Option<Arc<HttpsPolicy>> {
    match req.conn_data::<Arc<HttpsPolicy>>() {
        Some(policy) => Some(policy.clone()),
        // An HTTP/2 request carries its own (its connection has no connection data).
        None => req.extensions().get::<Arc<HttpsPolicy>>().cloned(),
    }
}

/// The redirect to `https://` that answers `req` on a listener that redirects; `None` on any
/// other listener.
pub(super) fn redirect(req: &HttpRequest, policy: Option<&HttpsPolicy>) -> Option<HttpResponse> {
    let port = policy?.redirect_to_https?;
    let Some(host) = request_host(req) else {
        return Some(
            HttpResponse::BadRequest()
                .insert_header((header::CONTENT_TYPE, "text/plain; charset=utf-8"))
                .body("a request without a Host cannot be redirected to https\n"),
        );
    };
    let path = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let location = match port {
        HTTPS_PORT => format!("https://{host}{path}"),
        port => format!("https://{host}:{port}{path}"),
    };
    // 301 keeps what browsers and caches know; a method other than GET/HEAD keeps its method
    // and body with 308.
    let status = match *req.method() {
        Method::GET | Method::HEAD => StatusCode::MOVED_PERMANENTLY,
        _ => StatusCode::PERMANENT_REDIRECT,
    };
    Some(
        HttpResponse::build(status)
            .insert_header((header::LOCATION, location))
            .insert_header((header::CONTENT_TYPE, "text/plain; charset=utf-8"))
            .body("moved to https\n"),
    )
}

/// Adds the listener's `Strict-Transport-Security` to `res` unless the response has one.
pub(super) fn add_hsts<B>(res: &mut HttpResponse<B>, policy: Option<&HttpsPolicy>) {
    if let Some(value) = policy.and_then(|p| p.hsts.as_ref()) {
        let has_hsts = res.headers().contains_key(header::STRICT_TRANSPORT_SECURITY)
            || header_lines::has_field(res.head().raw_headers(), b"strict-transport-security");
        if !has_hsts {
            res.headers_mut()
                .insert(header::STRICT_TRANSPORT_SECURITY, value.clone());
        }
    }
}

/// The request's host without its port: `Host`, else the target's authority; `None` when
/// there is none or it is not a plausible host name (it goes into `Location`).
fn request_host(req: &HttpRequest) -> Option<&str> {
    let authority = match req.headers().get(header::HOST) {
        Some(value) => value.to_str().ok()?,
        None => req.uri().authority()?.as_str(),
    };
    let host = match authority.strip_prefix('[') {
        Some(v6) => &authority[..v6.find(']')? + 2],
        None => authority.split(':').next()?,
    };
    let plausible = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'[' | b']' | b':'));
    plausible.then_some(host)
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    fn location(req: TestRequest, port: u16) -> (StatusCode, String) {
        let policy = HttpsPolicy {
            redirect_to_https: Some(port),
            hsts: None,
        };
        let res = redirect(&req.to_http_request(), Some(&policy)).expect("redirects");
        let location = res
            .headers()
            .get(header::LOCATION)
            .map_or(String::new(), |v| v.to_str().unwrap().to_owned());
        (res.status(), location)
    }

    #[test]
    fn redirects_keep_host_path_and_query() {
        let get = TestRequest::get()
            .uri("/a/b?c=d")
            .insert_header((header::HOST, "shop.test:8080"));
        assert_eq!(
            location(get, 443),
            (StatusCode::MOVED_PERMANENTLY, "https://shop.test/a/b?c=d".into())
        );
        let post = TestRequest::post()
            .uri("/form")
            .insert_header((header::HOST, "[::1]:8080"));
        assert_eq!(
            location(post, 8443),
            (StatusCode::PERMANENT_REDIRECT, "https://[::1]:8443/form".into())
        );
        let odd = TestRequest::get().insert_header((header::HOST, "a b"));
        assert_eq!(location(odd, 443).0, StatusCode::BAD_REQUEST);
    }
}
