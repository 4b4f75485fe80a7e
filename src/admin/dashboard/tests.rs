//! The dashboard's pages and login against a real Director actor (no listener: the admin app
//! is called in-process), and the overview's escaping of names from configuration and state.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Arbiter};
use actix_web::body::MessageBody;
use actix_web::dev::ServiceResponse;
use actix_web::http::header;
use actix_web::test::{call_service, init_service, read_body, TestRequest};
use actix_web::{middleware, App};
use arc_swap::{ArcSwap, ArcSwapOption};
use tokio::sync::oneshot;

use super::*;
use crate::admin::auth;
use crate::admin::live::LiveStats;
use crate::cluster::admission::BucketState;
use crate::cluster::arbiters::Arbiters;
use crate::cluster::backend_status::BackendStatus;
use crate::cluster::cluster_actor::SharedClusters;
use crate::cluster::cluster_state::{BackendState, CacheSettingsView, ClusterState, SettingsView};
use crate::cluster::director_actor::{ConfigStatus, DirectorActor};
use crate::cluster::health::{Health, ProbeResult};
use crate::config::{
    AdminConfig, Document, ListenAddr, Role, DEFAULT_MAX_EVENT_STREAMS, DEFAULT_SESSION_TTL,
};
use crate::stats::TrafficSnapshot;

const TOKEN: &str = "dashboard-test-token-0123";

const CONFIG: &str = "
proxy: { listen: \"127.0.0.1:0\" }
clusters:
  shop:
    cache: { enabled: true, update: shadowed, default_ttl: 90s }
    buckets:
      - { name: vip, rate: 0.2, ceil: 0.5 }
    backends:
      - { name: app01, url: \"http://127.0.0.1:9\", capacity: 4 }
      - { name: app02, url: \"http://127.0.0.1:9\", capacity: 2, role: standby, enabled: false }
";

/// An admin state over a real Director actor on this thread, and the live stats.
async fn admin_state(token: Option<&str>) -> web::Data<AdminState> {
    let document = Document::from_yaml(CONFIG).expect("test config");
    let topology = Arc::new(ArcSwapOption::empty());
    let status = Arc::new(ArcSwap::from_pointee(ConfigStatus {
        generation: 0,
        config_path: None,
        state_file: None,
        last_reload: None,
        state_file_error: None,
        shared_state_error: None,
        discovery: Vec::new(),
    }));
    let arbiters = Arbiters::new(vec![Arbiter::current()]);
    let (published, is_published) = oneshot::channel();
    let clusters: SharedClusters = Arc::new(ArcSwap::from_pointee(BTreeMap::new()));
    let (t, c, s) = (topology.clone(), clusters.clone(), status.clone());
    let director = DirectorActor::new(document, t, c, s, arbiters, published).start();
    is_published.await.expect("topology published");
    let live = LiveStats::start_in(topology.clone(), &Arbiter::current(), Duration::from_millis(50));
    let settings = Arc::new(ArcSwapOption::from_pointee(AdminConfig {
        listen: ListenAddr::Tcp(([127, 0, 0, 1], 8081).into()),
        token: token.map(str::to_owned),
        session_ttl: DEFAULT_SESSION_TTL,
        max_event_streams: DEFAULT_MAX_EVENT_STREAMS,
        max_connections: 64,
        tls: None,
    }));
    web::Data::new(AdminState::new(clusters, status, director, settings, live))
}

/// A request to the admin listener as a browser on the same machine sends it.
fn local(req: TestRequest) -> TestRequest {
    req.insert_header((header::HOST, "127.0.0.1:8081"))
}

/// The admin app as the admin server builds it.
macro_rules! admin_app {
    ($state:expr) => {{
        let state = $state;
        init_service(
            App::new()
                .app_data(web::Data::new(state.live.clone()))
                .app_data(state)
                .wrap(middleware::from_fn(auth::guard))
                .configure(crate::admin::routes),
        )
        .await
    }};
}

async fn text(res: ServiceResponse<impl MessageBody>) -> String {
    String::from_utf8(read_body(res).await.to_vec()).expect("UTF-8 page")
}

fn header_of<B>(res: &ServiceResponse<B>, name: header::HeaderName) -> String {
    res.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[actix_web::test]
async fn pages_render_the_clusters_and_backends() {
    let app = admin_app!(admin_state(None).await);
    let res = call_service(&app, local(TestRequest::get().uri("/")).to_request()).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header_of(&res, header::CONTENT_TYPE), "text/html; charset=utf-8");
    assert!(header_of(&res, header::CONTENT_SECURITY_POLICY).contains("script-src 'self'"));
    let page = text(res).await;
    for needle in [
        r#"<section class="cluster" data-cluster="shop">"#,
        r#"<tr class="backend" data-backend="app01">"#,
        r#"<tr class="backend is-disabled" data-backend="app02">"#,
        r#"<tr class="bucket depth-1" data-bucket="vip">"#,
        r#"data-field="health""#,
        r#"data-field="load""#,
        r#"<button type="button" data-action="disable">"#,
        r#"<button type="button" data-action="enable">"#,
        r#"data-action="set-capacity""#,
        r#"data-action="remove""#,
        r#"<form class="add-backend" data-cluster="shop""#,
        r#"<button id="reload""#,
        r#"id="reload-status""#,
        r#"id="error""#,
        "no reload yet",
        "/static/overview.js?v=",
        r#"<section class="cache-card" data-cache="shop""#,
        r#"<button type="button" class="danger" data-action="purge-cache">Purge cache</button>"#,
        r#"<b data-field="cache-hit-ratio">–</b>"#,
        r#"<span data-field="cache-memory">0 B / 256 MiB</span>"#,
        "<dt>update</dt><dd>shadowed</dd>",
        "<dt>default ttl</dt><dd>90 s</dd>",
    ] {
        assert!(
            page.contains(needle),
            "{needle} missing from the overview:\n{page}"
        );
    }
    assert!(page.contains(">enabled</td>") && page.contains(">disabled</td>"));

    let res = call_service(&app, local(TestRequest::get().uri("/live")).to_request()).await;
    assert_eq!(res.status(), StatusCode::OK);
    let page = text(res).await;
    for needle in [
        r#"data-window="5m""#,
        r#"data-window="15m""#,
        r#"data-window="1h""#,
        r#"id="live-status""#,
        "/static/uplot/uPlot.iife.min.js?v=",
        "/static/live.js?v=",
        r#"data-chart="cache_hit_ratio""#,
        r#"data-chart="cache_bytes""#,
    ] {
        assert!(page.contains(needle), "{needle} missing from the live page");
    }
    let res = call_service(
        &app,
        local(TestRequest::get().uri("/static/dashboard.css")).to_request(),
    )
    .await;
    assert_eq!(header_of(&res, header::CONTENT_TYPE), "text/css; charset=utf-8");
}

#[actix_web::test]
async fn login_sets_a_strict_http_only_cookie() {
    let app = admin_app!(admin_state(Some(TOKEN)).await);

    let res = call_service(&app, TestRequest::get().uri("/").to_request()).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(header_of(&res, header::LOCATION), "/login");
    let res = call_service(&app, TestRequest::get().uri("/live").to_request()).await;
    assert_eq!(header_of(&res, header::LOCATION), "/login");
    let res = call_service(&app, TestRequest::get().uri("/api/v1/status").to_request()).await;
    assert_eq!(
        res.status(),
        StatusCode::UNAUTHORIZED,
        "the API still answers JSON"
    );
    let res = call_service(&app, TestRequest::get().uri("/static/live.js").to_request()).await;
    assert_eq!(res.status(), StatusCode::OK, "assets are public");

    let res = call_service(&app, TestRequest::get().uri("/login").to_request()).await;
    assert_eq!(res.status(), StatusCode::OK);
    let form = text(res).await;
    assert!(form.contains(r#"<form id="login""#) && form.contains(r#"name="token""#));

    let post = |token: &str| {
        TestRequest::post()
            .uri("/login")
            .set_form([("token", token)])
            .to_request()
    };
    let res = call_service(&app, post("not-the-token")).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.headers().get(header::SET_COOKIE).is_none());
    let page = text(res).await;
    assert!(page.contains(r#"<form id="login""#) && page.contains("not valid"));

    let res = call_service(&app, post(TOKEN)).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(header_of(&res, header::LOCATION), "/");
    let cookie = header_of(&res, header::SET_COOKIE);
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
    }
    assert!(
        !cookie.contains(TOKEN),
        "the cookie never holds the token: {cookie}"
    );
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    let session = actix_web::cookie::Cookie::parse(cookie).expect("a cookie");
    assert_eq!(session.name(), auth::SESSION_COOKIE);
    let session = actix_web::cookie::Cookie::new(auth::SESSION_COOKIE, session.value().to_owned());

    let res = call_service(
        &app,
        TestRequest::get().uri("/").cookie(session.clone()).to_request(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(text(res).await.contains("Log out"));
    let res = call_service(
        &app,
        TestRequest::get()
            .uri("/login")
            .cookie(session.clone())
            .to_request(),
    )
    .await;
    assert_eq!(header_of(&res, header::LOCATION), "/", "already logged in");

    // The token itself, the cookie's old content, is no session.
    let raw = actix_web::cookie::Cookie::new(auth::SESSION_COOKIE, TOKEN);
    let res = call_service(&app, TestRequest::get().uri("/").cookie(raw).to_request()).await;
    assert_eq!(header_of(&res, header::LOCATION), "/login");

    let res = call_service(
        &app,
        TestRequest::post().uri("/logout").cookie(session).to_request(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(header_of(&res, header::SET_COOKIE).contains("Max-Age=0"));
}

#[actix_web::test]
async fn a_login_over_tls_gets_a_secure_cookie() {
    let app = admin_app!(admin_state(Some(TOKEN)).await);
    // What `connection_info()` reports as `https` (a TLS listener will, too).
    let req = TestRequest::post()
        .uri("/login")
        .insert_header(("x-forwarded-proto", "https"))
        .set_form([("token", TOKEN)])
        .to_request();
    let res = call_service(&app, req).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let cookie = header_of(&res, header::SET_COOKIE);
    assert!(cookie.contains("; Secure"), "{cookie}");
}

#[actix_web::test]
async fn without_a_token_login_goes_to_the_overview() {
    let app = admin_app!(admin_state(None).await);
    for req in [
        local(TestRequest::get().uri("/login")).to_request(),
        local(TestRequest::post().uri("/login"))
            .set_form([("token", "x")])
            .to_request(),
    ] {
        let res = call_service(&app, req).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert_eq!(header_of(&res, header::LOCATION), "/");
    }
}

/// A cluster state whose every name and message is markup.
fn hostile_state() -> ClusterState {
    const EVIL: &str = "<script>alert(1)</script>";
    let settings = SettingsView {
        enabled: true,
        scheduler: "rr",
        queue_limit: 1,
        queue_timeout_ms: 1500,
        retry_after: 1,
        max_retry_count: 1,
        enqueue_on_unavailable: false,
        connect_timeout_ms: 1,
        read_timeout_ms: 1,
        write_timeout_ms: 1,
        sticky_offline: false,
        health_checks: true,
        x_sendfile: false,
        max_fails: 3,
        fail_timeout_ms: 10_000,
        forwarded_for: "append",
        client_body_timeout_ms: 60_000,
        via: "director".to_owned(),
        on_client_abort: "close",
        cache: CacheSettingsView::new(&crate::config::CacheConfig::default()),
        upgrades: crate::cluster::cluster_state::UpgradesView::new(&Default::default()),
    };
    let bucket = BucketState {
        name: EVIL.to_owned(),
        parent: None,
        rate: 1.0,
        ceil: 1.0,
        assured: None,
        ceiling: None,
        in_use: 0,
        borrowed: 0,
        queued: 0,
        queued_max: 0,
        queued_total: 0,
        dropped: 0,
        served: 0,
    };
    let status = BackendStatus {
        id: 1,
        name: EVIL.to_owned(),
        url: format!("http://x/{EVIL}"),
        role: Role::Active,
        capacity: 3,
        enabled: false,
        health: Health::Offline,
        health_changed_at: 0.0,
        health_reason: Some(EVIL.to_owned()),
        last_probe: Some(ProbeResult {
            ok: false,
            detail: format!("protocol error: {EVIL}"),
            at: 0.0,
        }),
        draining: false,
        checks_failed: 0,
        times_down: 0,
        downtime_before: 0.0,
        health_progress: None,
    };
    ClusterState {
        cache: crate::cache::CacheSnapshot {
            enabled: true,
            lookups: 3,
            hits: 2,
            hit_ratio: 2.0 / 3.0,
            ..Default::default()
        },
        name: format!("\"quoted\" {EVIL}"),
        settings,
        capacity: Some(3),
        in_use: 0,
        buckets: vec![bucket],
        backends: vec![BackendState {
            terminate_protection: false,
            discovered_by: None,
            status,
            stats: TrafficSnapshot::default(),
        }],
        stats: TrafficSnapshot::default(),
        discovery: Vec::new(),
    }
}

#[test]
fn overview_escapes_names_from_configuration_and_state() {
    let mut status = ConfigStatus {
        generation: 3,
        config_path: None,
        state_file: None,
        last_reload: None,
        state_file_error: Some("<img src=x onerror=alert(2)>".to_owned()),
        shared_state_error: None,
        discovery: Vec::new(),
    };
    status.last_reload = Some(crate::cluster::director_actor::ReloadOutcome {
        at: 0.0,
        trigger: "api".to_owned(),
        ok: false,
        errors: vec![crate::config::ConfigError {
            path: "clusters.<b>".to_owned(),
            message: "invalid backend name `<script>alert(3)</script>`".to_owned(),
        }],
    });
    let page = OverviewPage {
        layout: Layout {
            page: "overview",
            can_log_out: false,
        },
        status: StatusView::new(&status, Duration::from_secs(5), 10.0),
        clusters: vec![ClusterView::new(&hostile_state(), None, 10.0)],
        direct_routes: Vec::new(),
        routes: super::routes_view::RouteView::list(&[serde_json::json!({
            "host": "<script>alert(4)</script>", "cluster": "<i>x</i>", "read_timeout": "<u>"
        })]),
    };
    let html = page.render().expect("renders");
    assert!(
        !html.contains("<i>x") && !html.contains("<u>"),
        "unescaped markup:
{html}"
    );
    assert!(!html.contains("<script>alert"), "unescaped markup:\n{html}");
    assert!(!html.contains("<img src=x"), "unescaped markup:\n{html}");
    assert!(!html.contains("<b>"), "unescaped markup:\n{html}");
    // askama writes numeric character references.
    let escaped = "&#60;script&#62;alert(1)&#60;/script&#62;";
    assert!(html.contains(&format!(
        r#"<section class="cluster" data-cluster="&#34;quoted&#34; {escaped}">"#
    )));
    assert!(html.contains(&format!(
        r#"<tr class="backend is-disabled" data-backend="{escaped}">"#
    )));
    assert!(html.contains("invalid backend name `&#60;script&#62;alert(3)&#60;/script&#62;`"));
    assert!(html.contains(r#"<button type="button" data-action="enable">"#));
    assert!(html.contains(&format!(
        r#"<section class="cache-card" data-cache="&#34;quoted&#34; {escaped}" aria-label="object cache of &#34;quoted&#34; {escaped}">"#
    )));
    assert!(html.contains(r#"<b data-field="cache-hit-ratio">66.7 %</b>"#));
    assert!(html.contains("failed (api, 10 s ago)"));
}
