//! The dashboard's pages over a real admin listener, without a browser: the token login and
//! its cookie, the redirect of unauthenticated page visits, the embedded static files, the
//! escaping of what a failed reload reports, and a cluster cache's numbers on the overview, in
//! `/metrics`, the HAProxy CSV and the stats history.

use crate::support;

use director::app::StartOptions;
use support::backend::TestBackend;
use support::{admin, admin_raw, get, start, start_file, wait_until, Director, Reply};

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
    let dir = support::temp_dir("dashboard-pages");
    let path = dir.path().join("config.yaml");
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

/// Waits (up to 10 s) until `GET path` on the admin API answers JSON that `done` accepts.
async fn wait_for_json(
    d: &Director,
    path: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    wait_until(format!("{path} to get there"), async || {
        let (status, body) = admin(d, "GET", path, None, None).await;
        assert_eq!(status, 200, "{path}: {body}");
        if done(&body) {
            Ok(body)
        } else {
            Err(body)
        }
    })
    .await
}

#[tokio::test]
async fn cache_numbers_reach_the_overview_metrics_csv_and_history() {
    let backend = TestBackend::start("app01").await;
    let yaml = config(&backend.url(), None, "app01").replace(
        "clusters:\n  shop:\n",
        "clusters:\n  shop:\n    cache: { enabled: true }\n",
    );
    let d = start(&yaml).await;

    // One miss that stores the object, then four hits that never reach the backend.
    assert_eq!(get(&d.target(), "/cacheable").await.status, 200);
    wait_for_json(&d, "/api/v1/clusters/shop/cache", |c| c["objects"] == 1).await;
    for _ in 0..4 {
        let reply = get(&d.target(), "/cacheable").await;
        assert_eq!((reply.status, reply.text()), (200, "app01".to_owned()));
    }
    assert_eq!(backend.hits(), 1, "four answers from the cache");
    let (_, cache) = admin(&d, "GET", "/api/v1/clusters/shop/cache", None, None).await;
    assert_eq!(
        (&cache["lookups"], &cache["hits"], &cache["misses"]),
        (&5.into(), &4.into(), &1.into()),
        "{cache}"
    );

    let metrics = call(&d, "GET", "/metrics", None, &[]).await.text();
    for line in [
        "# TYPE director_cache_lookups_total counter",
        "director_cache_lookups_total{cluster=\"shop\"} 5\n",
        "director_cache_hits_total{cluster=\"shop\"} 4\n",
        "director_cache_misses_total{cluster=\"shop\"} 1\n",
        "director_cache_stores_total{cluster=\"shop\"} 1\n",
        "director_cache_stale_total{cluster=\"shop\",reason=\"if_error\"} 0\n",
        "director_cache_objects{cluster=\"shop\"} 1\n",
        "# TYPE director_cache_bytes gauge",
        "director_cache_max_bytes{cluster=\"shop\"} 268435456\n",
    ] {
        assert!(
            metrics.contains(line),
            "{line:?} missing from /metrics:\n{metrics}"
        );
    }

    let csv = call(&d, "GET", "/haproxy?stats;csv", None, &[]).await.text();
    let mut lines = csv.lines();
    let names: Vec<&str> = lines
        .next()
        .expect("header")
        .trim_start_matches("# ")
        .split(',')
        .collect();
    let column =
        |row: &[&str], name: &str| row[names.iter().position(|n| *n == name).expect(name)].to_owned();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let row = |px: &str, sv: &str| {
        rows.iter()
            .find(|r| r[0] == px && r[1] == sv)
            .unwrap_or_else(|| panic!("no {px}/{sv} in\n{csv}"))
            .clone()
    };
    let shop = row("shop", "BACKEND");
    assert_eq!(
        (column(&shop, "cache_lookups"), column(&shop, "cache_hits")),
        ("5".into(), "4".into())
    );
    let front = row("director", "FRONTEND");
    assert_eq!(
        (column(&front, "cache_lookups"), column(&front, "cache_hits")),
        ("5".into(), "4".into())
    );

    let page = call(&d, "GET", "/", None, &[]).await.text();
    for needle in [
        r#"<section class="cache-card" data-cache="shop""#,
        r#"<b data-field="cache-hit-ratio">80 %</b>"#,
        r#"<dd data-field="cache-hits">4 / 5</dd>"#,
        r#"<dd data-field="cache-objects">1</dd>"#,
        r#"data-action="purge-cache""#,
    ] {
        assert!(
            page.contains(needle),
            "{needle} missing from the overview:\n{page}"
        );
    }

    // The stats history records the store's size once a second.
    let history = wait_for_json(&d, "/api/v1/history?window=1m", |h| {
        h["samples"].as_array().is_some_and(|samples| {
            samples
                .iter()
                .any(|s| s["clusters"][0]["cache"]["objects"].as_f64() == Some(1.0))
        })
    })
    .await;
    let last = history["samples"]
        .as_array()
        .and_then(|s| s.last())
        .expect("a sample");
    let cache = &last["clusters"][0]["cache"];
    assert!(cache["bytes"].as_f64().is_some_and(|b| b > 0.0), "{cache}");
    assert_eq!(cache["max_memory"], 268_435_456);

    // A settings change shows in the cluster's state and on the card.
    let patch = serde_json::json!({ "cache": { "update": "shadowed", "default_ttl": "90s" } });
    let (status, body) = admin(&d, "PATCH", "/api/v1/clusters/shop", Some(patch), None).await;
    assert_eq!(status, 200, "{body}");
    let state = wait_for_json(&d, "/api/v1/clusters/shop", |c| {
        c["settings"]["cache"]["update"] == "shadowed"
    })
    .await;
    assert_eq!(state["settings"]["cache"]["default_ttl_ms"], 90_000, "{state:#}");
    let page = call(&d, "GET", "/", None, &[]).await.text();
    assert!(page.contains("<dt>update</dt><dd>shadowed</dd>"), "{page}");
    assert!(page.contains("<dt>default ttl</dt><dd>90 s</dd>"), "{page}");

    // Turned off: no card, no cache families.
    let patch = serde_json::json!({ "cache": { "enabled": false } });
    let (status, body) = admin(&d, "PATCH", "/api/v1/clusters/shop", Some(patch), None).await;
    assert_eq!(status, 200, "{body}");
    wait_for_json(&d, "/api/v1/clusters/shop", |c| c["cache"]["enabled"] == false).await;
    assert!(!call(&d, "GET", "/", None, &[])
        .await
        .text()
        .contains("cache-card"));
    assert!(!call(&d, "GET", "/metrics", None, &[])
        .await
        .text()
        .contains("director_cache_"));
    d.stop().await;
}
