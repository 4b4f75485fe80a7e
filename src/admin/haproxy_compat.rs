//! HAProxy's stats URI and monitor URI as HAProxy tools expect them (`haproxy_compat:`): which
//! request targets they are, who may read them, and their answers, on the admin listener (a
//! middleware before routing) and on the proxy listener (asked by `app` before the pipeline).
//!
//! Control plane, reached from both listeners. Matching is HAProxy's: a request target (path
//! and query) that starts with `stats_uri` is a stats request (`GET`, `HEAD` or `POST`), and
//! `;csv` after the prefix asks for the CSV; a target equal to `monitor_uri` is a monitor
//! request, checked first. On the admin listener the historical `/haproxy?stats` and
//! `/haproxy/monitor` are always answered too.
//!
//! Who may read: on the admin listener, what the admin guard accepts (the token or a session)
//! and, when `users` are configured, HTTP Basic for the stats and monitor URIs
//! ([`basic_allows`], called by the guard). On the proxy listener, the stats need HTTP Basic
//! (the configuration refuses the proxy listener without users); the monitor URI is open, as
//! HAProxy's is, since load balancers probe it without credentials. A refused stats request is
//! answered 401 with `WWW-Authenticate: Basic realm="<realm>"`, as HAProxy does.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method};
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpRequest, HttpResponse};

use super::stats_routes::{monitor_response, stats_response};
use super::AdminState;
use crate::config::{HaproxyCompatConfig, DEFAULT_MONITOR_URI, DEFAULT_STATS_URI};

/// What a request asks of the HAProxy surface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompatRequest {
    /// The stats page; `csv`: the CSV rather than HTML.
    Stats {
        csv: bool,
    },
    Monitor,
}

/// The request target as HAProxy matches it: path and query.
fn target(uri: &actix_web::http::Uri) -> &str {
    uri.path_and_query().map_or_else(|| uri.path(), |pq| pq.as_str())
}

/// `target` against one pair of URIs.
fn classify_with(method: &Method, target: &str, stats_uri: &str, monitor_uri: &str) -> Option<CompatRequest> {
    if target == monitor_uri {
        return Some(CompatRequest::Monitor);
    }
    let rest = target.strip_prefix(stats_uri)?;
    matches!(*method, Method::GET | Method::HEAD | Method::POST).then(|| CompatRequest::Stats {
        csv: rest.contains(";csv"),
    })
}

/// What `method` and `uri` ask of the HAProxy surface under `config`, on a listener that
/// serves it.
pub fn classify(
    method: &Method,
    uri: &actix_web::http::Uri,
    config: &HaproxyCompatConfig,
) -> Option<CompatRequest> {
    classify_with(method, target(uri), &config.stats_uri, &config.monitor_uri)
}

/// The same on the admin listener: the configured URIs when it serves them, and the
/// historical ones always.
pub fn classify_admin(
    method: &Method,
    uri: &actix_web::http::Uri,
    config: &HaproxyCompatConfig,
) -> Option<CompatRequest> {
    config
        .on_admin
        .then(|| classify(method, uri, config))
        .flatten()
        .or_else(|| classify_with(method, target(uri), DEFAULT_STATS_URI, DEFAULT_MONITOR_URI))
}

/// Whether `req` carries HTTP Basic credentials of one of the configured users.
pub async fn basic_allows(req: &HttpRequest, state: &AdminState, config: &HaproxyCompatConfig) -> bool {
    if config.users.is_empty() {
        return false;
    }
    match req.headers().get(header::AUTHORIZATION) {
        Some(value) => state.basic_auth.allows(value.as_bytes(), &config.users).await,
        None => false,
    }
}

/// HAProxy's answer to missing or wrong credentials.
pub fn challenge(realm: &str) -> HttpResponse {
    HttpResponse::Unauthorized()
        .insert_header((header::WWW_AUTHENTICATE, format!("Basic realm=\"{realm}\"")))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .content_type("text/html")
        .body(
            "<html><body><h1>401 Unauthorized</h1>\n\
             You need a valid user and password to access this content.\n</body></html>\n",
        )
}

/// The answer to `kind`, once the request is allowed.
async fn answer(kind: CompatRequest, state: &AdminState, config: &HaproxyCompatConfig) -> HttpResponse {
    match kind {
        CompatRequest::Monitor => monitor_response(state, config.monitor_fail),
        CompatRequest::Stats { csv } => stats_response(state, csv).await,
    }
}

/// The admin listener's middleware (inside the guard, which has checked the credentials):
/// answers HAProxy's URIs before routing.
pub async fn admin_front(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let Some(state) = req.app_data::<web::Data<AdminState>>().cloned() else {
        return next.call(req).await.map(ServiceResponse::map_into_boxed_body);
    };
    let config = state.haproxy_compat.load_full();
    match classify_admin(req.method(), req.uri(), &config) {
        Some(kind) => {
            let reply = answer(kind, &state, &config).await;
            Ok(req.into_response(reply))
        }
        None => next.call(req).await.map(ServiceResponse::map_into_boxed_body),
    }
}

/// What `req` asks of the proxy listener's HAProxy surface, if it serves one: `None` for
/// every request to proxy, at the cost of a pointer load and a string comparison.
pub fn proxy_match(req: &HttpRequest, state: &AdminState) -> Option<CompatRequest> {
    let config = state.haproxy_compat.load();
    config
        .on_proxy
        .then(|| classify(req.method(), req.uri(), &config))
        .flatten()
}

/// The proxy listener's answer to `kind` (from [`proxy_match`]): the stats need a user's
/// HTTP Basic credentials, the monitor URI is open.
pub async fn proxy_answer(
    req: HttpRequest,
    state: web::Data<AdminState>,
    kind: CompatRequest,
) -> HttpResponse {
    let config = state.haproxy_compat.load_full();
    if matches!(kind, CompatRequest::Stats { .. }) && !basic_allows(&req, &state, &config).await {
        return challenge(&config.realm);
    }
    answer(kind, &state, &config).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(method: Method, target: &str, config: &HaproxyCompatConfig) -> Option<CompatRequest> {
        classify(&method, &target.parse().expect("uri"), config)
    }

    #[test]
    fn stats_uri_is_a_prefix_and_csv_follows_it() {
        let config = HaproxyCompatConfig {
            stats_uri: "/".to_owned(),
            monitor_uri: "/healthz".to_owned(),
            ..HaproxyCompatConfig::default()
        };
        assert_eq!(
            kind(Method::GET, "/;csv", &config),
            Some(CompatRequest::Stats { csv: true })
        );
        assert_eq!(
            kind(Method::GET, "/", &config),
            Some(CompatRequest::Stats { csv: false })
        );
        assert_eq!(
            kind(Method::GET, "/healthz", &config),
            Some(CompatRequest::Monitor)
        );
        assert_eq!(kind(Method::DELETE, "/;csv", &config), None);
        let default = HaproxyCompatConfig::default();
        assert_eq!(
            kind(Method::GET, "/haproxy?stats;csv;norefresh", &default),
            Some(CompatRequest::Stats { csv: true })
        );
        assert_eq!(
            kind(Method::HEAD, "http://example.com/haproxy?stats", &default),
            Some(CompatRequest::Stats { csv: false })
        );
        assert_eq!(kind(Method::GET, "/haproxy", &default), None);
        assert_eq!(
            kind(Method::GET, "/haproxy/monitor?x", &default),
            None,
            "exact match"
        );
    }

    #[test]
    fn the_admin_listener_keeps_the_historical_uris() {
        let config = HaproxyCompatConfig {
            stats_uri: "/stats".to_owned(),
            monitor_uri: "/up".to_owned(),
            ..HaproxyCompatConfig::default()
        };
        let admin = |target: &str, config: &HaproxyCompatConfig| {
            classify_admin(&Method::GET, &target.parse().expect("uri"), config)
        };
        assert_eq!(
            admin("/stats;csv", &config),
            Some(CompatRequest::Stats { csv: true })
        );
        assert_eq!(
            admin("/haproxy?stats;csv", &config),
            Some(CompatRequest::Stats { csv: true })
        );
        assert_eq!(admin("/haproxy/monitor", &config), Some(CompatRequest::Monitor));
        let proxy_only = HaproxyCompatConfig {
            on_admin: false,
            ..config
        };
        assert_eq!(admin("/stats", &proxy_only), None);
        assert_eq!(admin("/up", &proxy_only), None);
        assert_eq!(
            admin("/haproxy/monitor", &proxy_only),
            Some(CompatRequest::Monitor)
        );
    }
}
