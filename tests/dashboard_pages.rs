//! The dashboard's pages over a real admin listener, without a browser: the token login and
//! its cookie, the redirect of unauthenticated page visits, the embedded static files, and
//! the escaping of what a failed reload reports.

mod support;

use director::app::StartOptions;
use support::backend::TestBackend;
use support::{admin_raw, start, start_file, Director, Reply};

const TOKEN: &str = "dashboard-pages-token-0123456789";

fn config(backend_url: &str, token: Option<&str>, backend_name: &str) -> String {
    let admin = match token {
        Some(t) => format!("{{ listen: \"127.0.0.1:0\", token: \"{t}\" }}"),
        None => "{ listen: \"127.0.0.1:0\" }".to_owned(),
    };
    format!(
        "proxy: {{ listen: \"127.0.0.1:0\", workers: 1 }}\n\
         admin: {admin}\n\
         routes: [{{ cluster: shop }}]\n\
         clusters:\n  shop:\n    backends:\n\
         \x20     - {{ name: \"{backend_name}\", url: \"{backend_url}\", capacity: 3 }}\n"
    )
}

/// `method path` on the admin listener with extra headers and no token.
async fn call(d: &Director, method: &str, path: &str, body: Option<&str>, headers: &[(&str, &str)]) -> Reply {
    admin_raw(d, method, path, body.map(str::to_owned), None, headers).await
}

#[tokio::test]
async fn login_cookie_opens_the_pages() {
    let backend = TestBackend::start("app01").await;
    let d = start(&config(&backend.url(), Some(TOKEN), "app01")).await;

    for page in ["/", "/live"] {
        let reply = call(&d, "GET", page, None, &[]).await;
        assert_eq!(reply.status, 303, "{page}");
        assert_eq!(reply.header("location"), Some("/login"), "{page}");
    }
    let form = call(&d, "GET", "/login", None, &[]).await;
    assert_eq!(form.status, 200);
    assert!(form.text().contains(r#"<form id="login""#));

    let urlencoded = [("content-type", "application/x-www-form-urlencoded")];
    let wrong = call(&d, "POST", "/login", Some("token=wrong"), &urlencoded).await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.header("set-cookie").is_none());
    assert!(wrong.text().contains(r#"name="token""#), "the form again");

    let body = format!("token={TOKEN}");
    let login = call(&d, "POST", "/login", Some(&body), &urlencoded).await;
    assert_eq!(login.status, 303);
    assert_eq!(login.header("location"), Some("/"));
    let cookie = login.header("set-cookie").expect("a session cookie").to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );

    let session = cookie.split(';').next().expect("name=value").to_owned();
    let overview = call(&d, "GET", "/", None, &[("cookie", &session)]).await;
    assert_eq!(overview.status, 200);
    let page = overview.text();
    assert!(page.contains(r#"data-cluster="shop""#) && page.contains(r#"data-backend="app01""#));
    let live = call(&d, "GET", "/live", None, &[("cookie", &session)]).await;
    assert_eq!(live.status, 200);

    // The cookie also carries the page's API calls (same-origin, as a browser sends them).
    let same_origin = [("cookie", session.as_str()), ("sec-fetch-site", "same-origin")];
    let disable = call(
        &d,
        "PATCH",
        "/api/v1/clusters/shop/backends/app01",
        Some(r#"{"enabled": false}"#),
        &same_origin,
    )
    .await;
    assert_eq!(disable.status, 200, "{}", disable.text());
    let overview = call(&d, "GET", "/", None, &[("cookie", &session)]).await;
    assert!(overview.text().contains(r#"data-action="enable""#));
    d.stop().await;
}

#[tokio::test]
async fn static_files_are_embedded_with_their_types() {
    let backend = TestBackend::start("app01").await;
    let d = start(&config(&backend.url(), Some(TOKEN), "app01")).await;
    for (path, content_type) in [
        (
            "/static/uplot/uPlot.iife.min.js",
            "text/javascript; charset=utf-8",
        ),
        ("/static/uplot/uPlot.min.css", "text/css; charset=utf-8"),
        ("/static/uplot/LICENSE", "text/plain; charset=utf-8"),
        ("/static/dashboard.css", "text/css; charset=utf-8"),
        ("/static/overview.js", "text/javascript; charset=utf-8"),
    ] {
        let reply = call(&d, "GET", path, None, &[]).await;
        assert_eq!(reply.status, 200, "{path} is public");
        assert_eq!(reply.header("content-type"), Some(content_type), "{path}");
        assert!(reply.header("cache-control").is_some() && reply.header("etag").is_some());
        assert!(!reply.body.is_empty());
    }
    let license = call(&d, "GET", "/static/uplot/LICENSE", None, &[]).await;
    assert!(license.text().contains("MIT"));
    assert_eq!(call(&d, "GET", "/static/missing.js", None, &[]).await.status, 404);
    d.stop().await;
}

#[tokio::test]
async fn a_failed_reload_is_shown_escaped() {
    let backend = TestBackend::start("app01").await;
    let dir = std::env::temp_dir().join(format!("director-dashboard-pages-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("config.yaml");
    std::fs::write(&path, config(&backend.url(), None, "app01")).expect("config");
    let d = start_file(&path, StartOptions::default()).await;

    let hostile = config(&backend.url(), None, "<script>alert(1)</script>");
    std::fs::write(&path, hostile).expect("config");
    let reload = call(&d, "POST", "/api/v1/reload", None, &[]).await;
    assert_eq!(reload.status, 422, "{}", reload.text());

    let page = call(&d, "GET", "/", None, &[]).await.text();
    assert!(
        page.contains(r#"<div id="reload-status" data-state="failed">"#),
        "{page}"
    );
    assert!(
        page.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
        "{page}"
    );
    assert!(!page.contains("<script>alert"), "unescaped markup in the page");
    d.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
