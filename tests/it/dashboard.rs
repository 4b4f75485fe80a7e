//! The dashboard in a real browser (headless Chromium over WebDriver): the overview lists the
//! configured clusters and backends, its disable button really takes a backend out of
//! rotation, its cache card shows a cluster cache's hits and its purge button empties it, the
//! live page's charts (the cache's among them) grow while traffic flows, and the token login
//! works.
//!
//! Each test keeps a screenshot of the page it checked in `target/test-artifacts/`. Without
//! Chromium or chromedriver the tests are reported as ignored (build.rs looks for them).

use crate::support;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;
use support::backend::TestBackend;
use support::webdriver::{artifacts_dir, Browser};
use support::{admin, get, start, wait_until, Director};

const TOKEN: &str = "dashboard-token-0123456789";

/// The Enter key, as WebDriver types it.
const ENTER: &str = "\u{E007}";

/// The test setup: two clusters (`web` with two backends, `api` with one) behind routes
/// `/api` → `api` and everything else → `web`, and an admin listener (with `token`, if any).
/// [`Setup::with_cache`] turns `web`'s object cache on.
struct Setup {
    director: Director,
    web_1: TestBackend,
    web_2: TestBackend,
    api_1: TestBackend,
}

impl Setup {
    async fn start(token: Option<&str>) -> Setup {
        Setup::build(token, false).await
    }

    /// No token; `web` with `cache: { enabled: true }`.
    async fn with_cache() -> Setup {
        Setup::build(None, true).await
    }

    async fn build(token: Option<&str>, web_cache: bool) -> Setup {
        let web_1 = TestBackend::start("web-1").await;
        let web_2 = TestBackend::start("web-2").await;
        let api_1 = TestBackend::start("api-1").await;
        let admin = match token {
            Some(t) => format!("{{ listen: \"127.0.0.1:0\", token: \"{t}\" }}"),
            None => "{ listen: \"127.0.0.1:0\" }".to_owned(),
        };
        let yaml = format!(
            "proxy: {{ listen: \"127.0.0.1:0\", workers: 2 }}\n\
             admin: {admin}\n\
             routes:\n  - {{ path_prefix: \"/api\", cluster: api }}\n  - {{ cluster: web }}\n\
             clusters:\n\
             \x20 web:\n{}    backends:\n\
             \x20     - {{ name: web-1, url: \"{}\", capacity: 4 }}\n\
             \x20     - {{ name: web-2, url: \"{}\", capacity: 4 }}\n\
             \x20 api:\n    backends:\n\
             \x20     - {{ name: api-1, url: \"{}\", capacity: 2 }}\n",
            if web_cache {
                "    cache: { enabled: true }\n"
            } else {
                ""
            },
            web_1.url(),
            web_2.url(),
            api_1.url()
        );
        let director = start(&yaml).await;
        Setup {
            director,
            web_1,
            web_2,
            api_1,
        }
    }

    /// The admin listener's URL for `path`.
    fn page(&self, path: &str) -> String {
        format!("http://{}{path}", self.director.admin_addr())
    }
}

/// Where the screenshot `name` goes: `target/test-artifacts/NAME`.
fn artifact(name: &str) -> PathBuf {
    artifacts_dir().join(name)
}

/// The trimmed text of the first element matching `css` right now, if there is one (read by
/// script, so a re-rendered page never leaves a stale element reference behind).
async fn text_of(browser: &Browser, css: &str) -> Option<String> {
    let script = "const e = document.querySelector(arguments[0]); return e ? e.textContent.trim() : null;";
    browser
        .execute(script, vec![json!(css)])
        .await
        .as_str()
        .map(str::to_owned)
}

/// Waits until the first element matching `css` reads `expected`.
async fn wait_for_text(browser: &Browser, css: &str, expected: &str) {
    wait_until(&format!("`{css}` to read `{expected}`"), async || {
        (text_of(browser, css).await.as_deref() == Some(expected)).then_some(())
    })
    .await;
}

/// The CSS selector of backend `backend`'s row in cluster `cluster`'s section.
fn row(cluster: &str, backend: &str) -> String {
    format!("section.cluster[data-cluster=\"{cluster}\"] tr.backend[data-backend=\"{backend}\"]")
}

#[cfg_attr(
    not(has_chromium),
    ignore = "chromium or chromedriver not installed (apt-get install chromium chromium-driver)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overview_lists_clusters_and_backends() {
    let browser = Browser::start().await;
    let setup = Setup::start(None).await;
    browser.goto(&setup.page("/")).await;

    for (cluster, backends) in [("api", &["api-1"][..]), ("web", &["web-1", "web-2"][..])] {
        browser
            .find(&format!("section.cluster[data-cluster=\"{cluster}\"]"))
            .await;
        for backend in backends {
            let row = row(cluster, backend);
            browser.find(&row).await;
            wait_for_text(&browser, &format!("{row} [data-field=\"enabled\"]"), "enabled").await;
            for control in [
                "[data-field=\"health\"]",
                "[data-field=\"load\"]",
                "button[data-action=\"disable\"]",
                "input[data-field=\"capacity\"]",
                "button[data-action=\"set-capacity\"]",
                "button[data-action=\"remove\"]",
            ] {
                let css = format!("{row} {control}");
                assert!(browser.try_find(&css).await.is_some(), "no `{css}`");
            }
        }
        let form = format!("form.add-backend[data-cluster=\"{cluster}\"]");
        for input in ["name", "url", "capacity", "role"] {
            let css = format!("{form} [name=\"{input}\"]");
            assert!(browser.try_find(&css).await.is_some(), "no `{css}`");
        }
    }
    assert_eq!(browser.find_all("section.cluster").await.len(), 2, "two clusters");
    assert_eq!(browser.find_all("tr.backend").await.len(), 3, "three backends");
    for control in ["button#reload", "#reload-status", "#error"] {
        assert!(browser.try_find(control).await.is_some(), "no `{control}`");
    }
    browser.screenshot_full_page(&artifact("overview.png")).await;
    drop(browser);
    setup.director.stop().await;
}

#[cfg_attr(
    not(has_chromium),
    ignore = "chromium or chromedriver not installed (apt-get install chromium chromium-driver)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_button_takes_a_backend_out_of_rotation() {
    let browser = Browser::start().await;
    let setup = Setup::start(None).await;
    let d = &setup.director;
    // Both web backends serve before the click.
    for _ in 0..20 {
        assert_eq!(get(&d.target(), "/").await.status, 200);
    }
    assert!(
        setup.web_1.hits() > 0 && setup.web_2.hits() > 0,
        "both serve: web-1 {} web-2 {}",
        setup.web_1.hits(),
        setup.web_2.hits()
    );

    browser.goto(&setup.page("/")).await;
    let web_2 = row("web", "web-2");
    let disable = browser
        .find(&format!("{web_2} button[data-action=\"disable\"]"))
        .await;
    browser.click(&disable).await;

    // The API agrees...
    wait_until("web-2 disabled in the API", async || {
        let (status, body) = admin(d, "GET", "/api/v1/clusters/web/backends/web-2", None, None).await;
        assert_eq!(status, 200, "{body}");
        (body["enabled"] == false).then_some(())
    })
    .await;
    let (_, web_1_state) = admin(d, "GET", "/api/v1/clusters/web/backends/web-1", None, None).await;
    assert_eq!(web_1_state["enabled"], true, "only web-2 was disabled");

    // ...traffic stops reaching web-2...
    let (web_1_hits, web_2_hits) = (setup.web_1.hits(), setup.web_2.hits());
    for _ in 0..20 {
        let reply = get(&d.target(), "/").await;
        assert_eq!((reply.status, reply.text()), (200, "web-1".to_owned()));
    }
    assert_eq!(
        setup.web_2.hits(),
        web_2_hits,
        "no request reached disabled web-2"
    );
    assert_eq!(setup.web_1.hits(), web_1_hits + 20);
    let api_hits = setup.api_1.hits();
    assert_eq!(
        get(&d.target(), "/api/x").await.text(),
        "api-1",
        "the other cluster serves"
    );
    assert_eq!(setup.api_1.hits(), api_hits + 1);

    // ...and the row says so.
    wait_for_text(&browser, &format!("{web_2} [data-field=\"enabled\"]"), "disabled").await;
    wait_for_text(
        &browser,
        &format!("{} [data-field=\"enabled\"]", row("web", "web-1")),
        "enabled",
    )
    .await;
    browser
        .find(&format!("{web_2} button[data-action=\"enable\"]"))
        .await;
    browser
        .screenshot_full_page(&artifact("overview-disabled.png"))
        .await;
    drop(browser);
    setup.director.stop().await;
}

/// The cluster switch of `web`: "Disable cluster" puts it into maintenance (every request gets
/// 503 with `Retry-After`, the other cluster serves on), "Enable cluster" brings it back; the
/// API and the section say which it is.
#[cfg_attr(
    not(has_chromium),
    ignore = "chromium or chromedriver not installed (apt-get install chromium chromium-driver)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_switch_puts_a_cluster_into_maintenance_and_back() {
    let browser = Browser::start().await;
    let setup = Setup::start(None).await;
    let d = &setup.director;
    let web = "section.cluster[data-cluster=\"web\"]";
    let badge = format!("{web} [data-field=\"cluster-enabled\"]");
    browser.goto(&setup.page("/")).await;
    wait_for_text(&browser, &badge, "in service").await;
    let disable = browser
        .find(&format!("{web} button[data-action=\"disable-cluster\"]"))
        .await;
    browser.click(&disable).await;

    wait_until("web disabled in the API", async || {
        let (status, body) = admin(d, "GET", "/api/v1/clusters/web", None, None).await;
        assert_eq!(status, 200, "{body}");
        (body["settings"]["enabled"] == false).then_some(())
    })
    .await;
    let hits = web_hits(&setup);
    for _ in 0..5 {
        let reply = get(&d.target(), "/").await;
        assert_eq!(reply.status, 503, "{}", reply.text());
        assert_eq!(reply.header("retry-after"), Some("10"));
    }
    assert_eq!(web_hits(&setup), hits, "no request reached web's backends");
    assert_eq!(
        get(&d.target(), "/api/x").await.text(),
        "api-1",
        "the other cluster serves"
    );
    wait_for_text(&browser, &badge, "maintenance: answering 503").await;
    wait_for_text(
        &browser,
        "section.cluster[data-cluster=\"api\"] [data-field=\"cluster-enabled\"]",
        "in service",
    )
    .await;
    browser
        .screenshot_full_page(&artifact("overview-cluster-disabled.png"))
        .await;

    let enable = browser
        .find(&format!("{web} button[data-action=\"enable-cluster\"]"))
        .await;
    browser.click(&enable).await;
    wait_for_text(&browser, &badge, "in service").await;
    let (_, body) = admin(d, "GET", "/api/v1/clusters/web", None, None).await;
    assert_eq!(body["settings"]["enabled"], true, "{body}");
    assert_eq!(get(&d.target(), "/").await.status, 200);
    assert_eq!(web_hits(&setup), hits + 1);
    drop(browser);
    setup.director.stop().await;
}

/// The CSS selector of `web`'s cache card.
const WEB_CACHE: &str = "section.cluster[data-cluster=\"web\"] .cache-card";

/// The requests both web backends received.
fn web_hits(setup: &Setup) -> u64 {
    setup.web_1.hits() + setup.web_2.hits()
}

/// `GET /api/v1/clusters/web/cache`.
async fn web_cache(d: &Director) -> serde_json::Value {
    let (status, body) = admin(d, "GET", "/api/v1/clusters/web/cache", None, None).await;
    assert_eq!(status, 200, "{body}");
    body
}

#[cfg_attr(
    not(has_chromium),
    ignore = "chromium or chromedriver not installed (apt-get install chromium chromium-driver)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_card_shows_hits_and_its_purge_button_empties_the_cache() {
    let browser = Browser::start().await;
    let setup = Setup::with_cache().await;
    let d = &setup.director;

    // A miss that stores `/cacheable` (max-age=60), then four hits no backend sees.
    assert_eq!(get(&d.target(), "/cacheable").await.status, 200);
    wait_until("the object stored", async || {
        (web_cache(d).await["objects"] == 1).then_some(())
    })
    .await;
    let before = web_hits(&setup);
    for _ in 0..4 {
        assert_eq!(get(&d.target(), "/cacheable").await.status, 200);
    }
    assert_eq!(web_hits(&setup), before, "four answers from the cache");

    browser.goto(&setup.page("/")).await;
    browser.find(WEB_CACHE).await;
    let cache_field = |name: &str| format!("{WEB_CACHE} [data-field=\"{name}\"]");
    wait_for_text(&browser, &cache_field("cache-hit-ratio"), "80 %").await;
    wait_for_text(&browser, &cache_field("cache-hits"), "4 / 5").await;
    wait_for_text(&browser, &cache_field("cache-objects"), "1").await;
    let memory = text_of(&browser, &cache_field("cache-memory"))
        .await
        .expect("memory");
    assert!(
        memory.ends_with(" / 256 MiB") && !memory.starts_with("0 B"),
        "bytes stored / max_memory: {memory}"
    );
    let settings = text_of(&browser, &format!("{WEB_CACHE} .cache-settings"))
        .await
        .expect("settings");
    assert!(
        settings.contains("locked") && settings.contains("max object size"),
        "{settings}"
    );
    assert!(
        browser
            .try_find("section.cluster[data-cluster=\"api\"] .cache-card")
            .await
            .is_none(),
        "api has no cache, so no card"
    );
    browser
        .screenshot_full_page(&artifact("overview-cache.png"))
        .await;

    let purge = browser
        .find(&format!("{WEB_CACHE} button[data-action=\"purge-cache\"]"))
        .await;
    browser.click(&purge).await;
    wait_for_text(&browser, &cache_field("cache-purged"), "purged 1 object").await;
    let cache = web_cache(d).await;
    assert_eq!(
        (&cache["objects"], &cache["purges"]),
        (&0.into(), &1.into()),
        "{cache}"
    );
    // The card follows (refreshed from the API, not re-rendered).
    wait_for_text(&browser, &cache_field("cache-objects"), "0").await;
    wait_for_text(&browser, &cache_field("cache-memory"), "0 B / 256 MiB").await;
    assert_eq!(
        text_of(&browser, &cache_field("cache-purged")).await.as_deref(),
        Some("purged 1 object"),
        "the count stays shown"
    );
    browser.find("#error[hidden]").await;

    // Purged for real: the next request goes to a backend again.
    let before = web_hits(&setup);
    assert_eq!(get(&d.target(), "/cacheable").await.status, 200);
    assert_eq!(web_hits(&setup), before + 1, "a miss after the purge");
    wait_for_text(&browser, &cache_field("cache-hits"), "4 / 6").await;
    browser
        .screenshot_full_page(&artifact("overview-cache-purged.png"))
        .await;
    drop(browser);
    setup.director.stop().await;
}

#[cfg_attr(
    not(has_chromium),
    ignore = "chromium or chromedriver not installed (apt-get install chromium chromium-driver)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_card_purges_one_url_then_a_path_prefix() {
    let browser = Browser::start().await;
    let setup = Setup::with_cache().await;
    let d = &setup.director;
    // Three objects: the query is part of the key. The test client's Host is test.local.
    let paths = [
        "/cacheable?max_age=60",
        "/cacheable?max_age=61",
        "/cacheable?max_age=62",
    ];
    for path in paths {
        assert_eq!(get(&d.target(), path).await.status, 200);
    }
    wait_until("three objects stored", async || {
        (web_cache(d).await["objects"] == 3).then_some(())
    })
    .await;

    browser.goto(&setup.page("/")).await;
    let form = format!("{WEB_CACHE} form.cache-purge-some");
    let purged = format!("{WEB_CACHE} [data-field=\"cache-purged\"]");
    // `kind` is a select: set it by script, then type the rest as a user would.
    let fill = |kind: &'static str, value: &'static str, host: &'static str| {
        let (browser, form) = (&browser, form.clone());
        async move {
            let select = "document.querySelector(arguments[0]).elements.kind.value = arguments[1];";
            browser.execute(select, vec![json!(form), json!(kind)]).await;
            for (name, text) in [("value", value), ("host", host)] {
                let input = browser.find(&format!("{form} input[name=\"{name}\"]")).await;
                browser.clear(&input).await;
                browser.send_keys(&input, text).await;
            }
            let submit = browser.find(&format!("{form} button[type=\"submit\"]")).await;
            browser.click(&submit).await;
        }
    };

    fill("url", "/cacheable?max_age=61", "test.local").await;
    wait_for_text(&browser, &purged, "purged 1 object").await;
    assert_eq!(web_cache(d).await["objects"], 2, "only that URL went");
    let before = web_hits(&setup);
    assert_eq!(get(&d.target(), paths[0]).await.status, 200);
    assert_eq!(web_hits(&setup), before, "the other URLs are still hits");

    fill("prefix", "/cacheable", "").await;
    wait_for_text(&browser, &purged, "purged 2 objects").await;
    assert_eq!(
        web_cache(d).await["objects"],
        0,
        "every object under the prefix went"
    );
    browser.find("#error[hidden]").await;
    drop(browser);
    setup.director.stop().await;
}

/// Whether the cache chart `name` has a series `label` with a value above 0, and is shown.
const CACHE_SERIES_ABOVE_ZERO: &str = "const [name, label] = arguments; \
     const c = window.directorCharts && window.directorCharts[name]; \
     if (!c || !c.data || document.querySelector(`[data-chart=\"${name}\"]`).hidden) return null; \
     const i = c.series.findIndex(s => s.label === label); \
     return i > 0 && Array.from(c.data[i]).some(v => v > 0);";

#[cfg_attr(
    not(has_chromium),
    ignore = "chromium or chromedriver not installed (apt-get install chromium chromium-driver)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_page_charts_the_cache_hit_ratio_and_bytes() {
    let browser = Browser::start().await;
    let setup = Setup::with_cache().await;
    let target = setup.director.target();
    let traffic = tokio::spawn(async move {
        loop {
            get(&target, "/cacheable").await;
            get(&target, "/api/x").await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let traffic = AbortOnDrop(traffic);

    browser.goto(&setup.page("/live")).await;
    wait_for_text(&browser, "#live-status", "connected").await;
    for chart in ["cache_hit_ratio", "cache_bytes"] {
        wait_until(&format!("a `web` series above 0 on {chart}"), async || {
            let value = browser
                .execute(CACHE_SERIES_ABOVE_ZERO, vec![json!(chart), json!("web")])
                .await;
            (value == json!(true)).then_some(())
        })
        .await;
        let labels = browser
            .execute(
                "return window.directorCharts[arguments[0]].series.slice(1).map(s => s.label);",
                vec![json!(chart)],
            )
            .await;
        assert_eq!(labels, json!(["web"]), "{chart}: only the cluster with a cache");
    }
    // Every request after the first is a hit: the last second's ratio reaches 100 %.
    browser
        .wait_for(
            "a hit ratio of 100 %",
            "const c = window.directorCharts.cache_hit_ratio; \
             return Array.from(c.data[1]).some(v => v === 100);",
        )
        .await;
    let legend = text_of(&browser, "[data-chart=\"cache_bytes\"] .u-legend")
        .await
        .unwrap_or_default();
    assert!(legend.contains("web"), "{legend}");
    browser.screenshot_full_page(&artifact("live-cache.png")).await;
    drop(traffic);
    drop(browser);
    setup.director.stop().await;
}

/// Reads `window.directorCharts.rps.data[0].length` (`null` before the charts exist).
const RPS_POINTS: &str = "const c = window.directorCharts; \
     return c && c.rps && c.rps.data ? c.rps.data[0].length : null;";

#[cfg_attr(
    not(has_chromium),
    ignore = "chromium or chromedriver not installed (apt-get install chromium chromium-driver)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_charts_grow_while_traffic_flows() {
    let browser = Browser::start().await;
    let setup = Setup::start(None).await;

    // Traffic on both clusters until the test ends.
    let target = setup.director.target();
    let traffic = tokio::spawn(async move {
        loop {
            get(&target, "/").await;
            get(&target, "/api/x").await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let traffic = AbortOnDrop(traffic);

    browser.goto(&setup.page("/live")).await;
    wait_for_text(&browser, "#live-status", "connected").await;
    browser
        .wait_for(
            "the four charts",
            "const c = window.directorCharts; \
             return !!c && ['rps', 'utilisation', 'queue', 'latency'].every(k => c[k] && c[k].data);",
        )
        .await;
    for window in ["5m", "15m", "1h"] {
        browser.find(&format!("button[data-window=\"{window}\"]")).await;
    }

    let first = browser.wait_for("the rps chart", RPS_POINTS).await;
    let first = first.as_u64().expect("a point count");
    let first_read = tokio::time::Instant::now();
    let grown = wait_until("the rps chart to grow over 1.5 s", async || {
        let points = browser.execute(RPS_POINTS, vec![]).await.as_u64()?;
        (first_read.elapsed() >= Duration::from_millis(1500) && points > first).then_some(points)
    })
    .await;
    assert!(grown > first, "{grown} > {first}");
    browser
        .wait_for(
            "a requests-per-second value above 0",
            "return window.directorCharts.rps.data.slice(1)\
             .some(series => Array.from(series).some(v => v > 0));",
        )
        .await;
    browser.screenshot_full_page(&artifact("live.png")).await;
    drop(traffic);
    drop(browser);
    setup.director.stop().await;
}

/// Aborts the task when dropped (also when the test panics).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg_attr(
    not(has_chromium),
    ignore = "chromium or chromedriver not installed (apt-get install chromium chromium-driver)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_with_the_token() {
    let browser = Browser::start().await;
    let setup = Setup::start(Some(TOKEN)).await;

    // Without the cookie, the overview sends us to the login form.
    browser.goto(&setup.page("/")).await;
    wait_until("the redirect to /login", async || {
        (browser.current_path().await == "/login").then_some(())
    })
    .await;
    browser.find("form#login").await;
    browser.screenshot(&artifact("login.png")).await;

    // A wrong token keeps us on the form, without a session.
    submit_token(&browser, "wrong-token-0123456789").await;
    assert_eq!(browser.current_path().await, "/login");
    browser.find("form#login input[name=\"token\"]").await;
    assert!(
        !has_session_cookie(&browser).await,
        "no session cookie for a wrong token"
    );
    browser.screenshot(&artifact("login-wrong-token.png")).await;
    browser.goto(&setup.page("/")).await;
    assert_eq!(browser.current_path().await, "/login", "still locked out");

    // The right one lands on the overview with a session cookie.
    submit_token(&browser, TOKEN).await;
    wait_until("the overview after login", async || {
        (browser.current_path().await == "/").then_some(())
    })
    .await;
    browser.find("section.cluster[data-cluster=\"web\"]").await;
    assert!(has_session_cookie(&browser).await, "a session cookie");
    browser.goto(&setup.page("/live")).await;
    assert_eq!(
        browser.current_path().await,
        "/live",
        "the cookie opens the live page too"
    );
    drop(browser);
    setup.director.stop().await;
}

/// Types `token` into the login form and presses Enter; returns once the answer arrived (a
/// new page, or a message in the form's error element).
async fn submit_token(browser: &Browser, token: &str) {
    let input = browser.find("form#login input[name=\"token\"]").await;
    browser.clear(&input).await;
    browser.execute("window.__beforeSubmit = true;", vec![]).await;
    browser.send_keys(&input, &format!("{token}{ENTER}")).await;
    browser
        .wait_for(
            "the login answer",
            "const error = document.querySelector('#error, form#login .error'); \
             return !window.__beforeSubmit || !!(error && error.textContent.trim());",
        )
        .await;
}

async fn has_session_cookie(browser: &Browser) -> bool {
    let names = browser.cookie_names().await;
    names.iter().any(|name| name == "director_session")
}
