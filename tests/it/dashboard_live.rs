//! The dashboard's per-backend and per-bucket rates in a real browser (headless Chromium over
//! WebDriver): the live page charts requests per second for every cluster, bucket and backend;
//! its kind switches and legend clicks hide series and the choice survives a reload; the 24 h
//! view loads minute aggregates; the overview draws a sparkline per backend.
//!
//! Screenshots go to `target/test-artifacts/`. Without Chromium or chromedriver the tests are
//! reported as ignored (build.rs looks for them).

use crate::support;

use std::time::Duration;

use serde_json::{json, Value};
use support::backend::TestBackend;
use support::webdriver::{artifacts_dir, Browser};
use support::{get, start, Director};

/// A cluster `web` (bucket `vip` for `/vip`, backends `web-1` and `web-2`) with traffic on
/// both buckets until dropped.
struct Setup {
    director: Director,
    _backends: (TestBackend, TestBackend),
    traffic: tokio::task::JoinHandle<()>,
}

impl Setup {
    async fn start() -> Setup {
        let web_1 = TestBackend::start("web-1").await;
        let web_2 = TestBackend::start("web-2").await;
        let yaml = format!(
            "proxy: {{ listen: \"127.0.0.1:0\", workers: 2 }}\n\
             admin: {{ listen: \"127.0.0.1:0\" }}\n\
             routes:\n  - {{ cluster: web }}\n\
             clusters:\n  web:\n\
             \x20   buckets:\n      - {{ name: vip, rate: 0.5, ceil: 1.0, match: {{ path_prefix: \"/vip\" }} }}\n\
             \x20   backends:\n\
             \x20     - {{ name: web-1, url: \"{}\", capacity: 4 }}\n\
             \x20     - {{ name: web-2, url: \"{}\", capacity: 4 }}\n",
            web_1.url(),
            web_2.url()
        );
        let director = start(&yaml).await;
        let target = director.target();
        let traffic = tokio::spawn(async move {
            loop {
                get(&target, "/").await;
                get(&target, "/vip/x").await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        Setup {
            director,
            _backends: (web_1, web_2),
            traffic,
        }
    }

    fn page(&self, path: &str) -> String {
        format!("http://{}{path}", self.director.admin_addr())
    }

    async fn stop(self) {
        self.traffic.abort();
        self.director.stop().await;
    }
}

/// `{label: show}` of the rps chart's series.
const RPS_SHOWN: &str = "const c = window.directorCharts && window.directorCharts.rps; \
     if (!c) return null; \
     return Object.fromEntries(c.series.slice(1).map(s => [s.label, s.show]));";

async fn rps_shown(browser: &Browser) -> Value {
    browser.execute(RPS_SHOWN, vec![]).await
}

/// Whether the rps chart's series `label` has a value above 0.
const SERIES_ABOVE_ZERO: &str = "const c = window.directorCharts.rps; \
     const i = c.series.findIndex(s => s.label === arguments[0]); \
     return i > 0 && Array.from(c.data[i]).some(v => v > 0);";

#[cfg_attr(
    not(has_chromium),
    ignore = "chromium or chromedriver not installed (apt-get install chromium chromium-driver)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_page_charts_rates_of_buckets_and_backends_with_toggles() {
    let browser = Browser::start().await;
    let setup = Setup::start().await;
    browser.goto(&setup.page("/live")).await;
    for label in ["web", "web › vip", "web / web-1", "web / web-2"] {
        support::wait_until(&format!("`{label}` above 0 on the rps chart"), async || {
            let above = browser.execute(SERIES_ABOVE_ZERO, vec![json!(label)]).await;
            (above == json!(true)).then_some(())
        })
        .await;
    }
    let shown = rps_shown(&browser).await;
    assert_eq!(shown["web / web-1"], json!(true), "{shown}");

    // The backends switch hides every backend series, on every chart.
    browser
        .click(&browser.find("input[data-kind=\"backend\"]").await)
        .await;
    let shown = rps_shown(&browser).await;
    assert_eq!(
        (
            &shown["web / web-1"],
            &shown["web / web-2"],
            &shown["web"],
            &shown["web › vip"]
        ),
        (&json!(false), &json!(false), &json!(true), &json!(true)),
        "{shown}"
    );
    let utilisation = browser
        .execute(
            "return window.directorCharts.utilisation.series.slice(1)\
             .filter(s => s.label.includes(' / ')).every(s => !s.show);",
            vec![],
        )
        .await;
    assert_eq!(utilisation, json!(true));

    // A legend click hides one series.
    let entry = browser
        .find("[data-chart=\"rps\"] .u-legend tr.u-series:nth-child(3)")
        .await;
    browser.click(&entry).await;
    let shown = rps_shown(&browser).await;
    assert_eq!(
        shown["web › vip"],
        json!(false),
        "the third entry is the bucket: {shown}"
    );
    assert_eq!(shown["web"], json!(true));

    // Both choices survive a reload.
    browser.goto(&setup.page("/live")).await;
    browser
        .wait_for(
            "the rps chart with its series",
            "const c = window.directorCharts && window.directorCharts.rps; \
             return !!c && c.series.length > 4;",
        )
        .await;
    let shown = rps_shown(&browser).await;
    assert_eq!(
        (&shown["web / web-1"], &shown["web › vip"], &shown["web"]),
        (&json!(false), &json!(false), &json!(true)),
        "{shown}"
    );
    let checked = browser
        .execute(
            "return document.querySelector('input[data-kind=\"backend\"]').checked;",
            vec![],
        )
        .await;
    assert_eq!(checked, json!(false));
    browser
        .screenshot_full_page(&artifacts_dir().join("live-series.png"))
        .await;

    // Backends back on; the 24 h view loads minute aggregates.
    browser
        .click(&browser.find("input[data-kind=\"backend\"]").await)
        .await;
    assert_eq!(rps_shown(&browser).await["web / web-2"], json!(true));
    browser
        .click(&browser.find("button[data-window=\"24h\"]").await)
        .await;
    browser
        .wait_for(
            "the 24 h window",
            "return document.querySelector('button[data-window=\"24h\"]').getAttribute('aria-pressed') === 'true' \
             && !!window.directorCharts.rps && document.getElementById('error').hidden;",
        )
        .await;
    drop(browser);
    setup.stop().await;
}

#[cfg_attr(
    not(has_chromium),
    ignore = "chromium or chromedriver not installed (apt-get install chromium chromium-driver)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overview_draws_a_sparkline_per_backend() {
    let browser = Browser::start().await;
    let setup = Setup::start().await;
    browser.goto(&setup.page("/")).await;
    for backend in ["web-1", "web-2"] {
        let script = format!(
            "const s = document.querySelector('tr.backend[data-backend=\"{backend}\"] svg.spark'); \
             return !!s && Number(s.dataset.points) >= 2 && Number(s.dataset.max) > 0 \
             && s.querySelector('polyline').getAttribute('points').split(' ').length >= 2;"
        );
        browser
            .wait_for(&format!("a sparkline with traffic for {backend}"), &script)
            .await;
    }
    browser
        .screenshot_full_page(&artifacts_dir().join("overview-sparklines.png"))
        .await;
    drop(browser);
    setup.stop().await;
}
