//! The overview's cluster lifecycle and routes panel in a real browser (headless Chromium over
//! WebDriver): create a cluster with its first backend, add a route to it, move the route up
//! so traffic reaches the new backend, see *Delete cluster* refused while the route points at
//! it, delete the route, then the cluster. Each step is checked through the API and the proxy.
//!
//! Without Chromium or chromedriver the test is reported as ignored (build.rs looks for them).

use crate::support;

use serde_json::{json, Value};
use support::backend::TestBackend;
use support::webdriver::{artifacts_dir, Browser};
use support::{admin, get, start, wait_until, Director};

/// `(path_prefix, cluster)` of each route, from the API.
async fn routes(d: &Director) -> Vec<(String, String)> {
    let (status, body) = admin(d, "GET", "/api/v1/routes", None, None).await;
    assert_eq!(status, 200, "{body}");
    body.as_array()
        .expect("a list")
        .iter()
        .map(|r| {
            // A route without `path_prefix` has the default, `/`.
            let prefix = r["path_prefix"].as_str().unwrap_or("/").to_owned();
            (prefix, r["cluster"].as_str().unwrap_or("").to_owned())
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(p, c)| (p.to_string(), c.to_string())).collect()
}

/// Types `text` into the input `css`.
async fn type_into(browser: &Browser, css: &str, text: &str) {
    let input = browser.find(css).await;
    browser.send_keys(&input, text).await;
}

/// Clicks the first element matching `css`, once there is one.
async fn click(browser: &Browser, css: &str) {
    let script = format!("return document.querySelector({}) !== null;", json!(css));
    browser.wait_for(&format!("`{css}`"), &script).await;
    let element = browser.find(css).await;
    browser.click(&element).await;
}

/// Waits until the routes panel shows `prefixes` in order.
async fn panel_shows(browser: &Browser, prefixes: &[&str]) {
    let script = format!(
        "return JSON.stringify([...document.querySelectorAll('tr.route input[name=\"path_prefix\"]')].map((i) => i.value)) === {};",
        json!(json!(prefixes).to_string())
    );
    browser
        .wait_for(&format!("the routes panel to show {prefixes:?}"), &script)
        .await;
}

#[cfg_attr(
    not(has_chromium),
    ignore = "chromium or chromedriver not installed (apt-get install chromium chromium-driver)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_a_cluster_route_to_it_reorder_and_delete_from_the_page() {
    let web = TestBackend::start("web-1").await;
    let shop = TestBackend::start("shop-1").await;
    let d = start(&format!(
        "proxy: {{ listen: \"127.0.0.1:0\", workers: 2 }}\n\
         admin: {{ listen: \"127.0.0.1:0\" }}\n\
         routes:\n  - {{ cluster: web }}\n\
         clusters:\n  web:\n    backends:\n      - {{ name: web-1, url: \"{}\" }}\n",
        web.url()
    ))
    .await;
    let browser = Browser::start().await;
    browser.goto(&format!("http://{}/", d.admin_addr())).await;
    panel_shows(&browser, &["/"]).await;

    // New cluster with its first backend.
    type_into(&browser, "form.new-cluster input[name=\"name\"]", "shop").await;
    type_into(&browser, "form.new-cluster input[name=\"url\"]", &shop.url()).await;
    click(&browser, "form.new-cluster button[type=\"submit\"]").await;
    wait_until("cluster shop in the API", async || {
        let (status, body) = admin(&d, "GET", "/api/v1/clusters/shop", None, None).await;
        (status == 200).then_some(body)
    })
    .await;
    let shop_section = "section.cluster[data-cluster=\"shop\"]";
    browser
        .wait_for(
            "shop's section",
            &format!(
                "return document.querySelector('{shop_section} tr.backend[data-backend=\"shop-1\"]') !== null;"
            ),
        )
        .await;

    // A route to it, appended after the catch-all: nothing changes for /shop/ yet.
    type_into(&browser, "form.add-route input[name=\"path_prefix\"]", "/shop/").await;
    type_into(&browser, "form.add-route input[name=\"target\"]", "shop").await;
    click(&browser, "form.add-route button[type=\"submit\"]").await;
    panel_shows(&browser, &["/", "/shop/"]).await;
    assert_eq!(routes(&d).await, pairs(&[("/", "web"), ("/shop/", "shop")]));
    assert_eq!(get(&d.target(), "/shop/x").await.text(), "web-1");

    // Move it up: now it matches first.
    click(
        &browser,
        "tr.route[data-index=\"1\"] button[data-action=\"route-up\"]",
    )
    .await;
    panel_shows(&browser, &["/shop/", "/"]).await;
    assert_eq!(routes(&d).await, pairs(&[("/shop/", "shop"), ("/", "web")]));
    assert_eq!(get(&d.target(), "/shop/x").await.text(), "shop-1");
    assert_eq!(get(&d.target(), "/other").await.text(), "web-1");

    // Delete cluster (confirmed) is refused while the route points at it; the page says why.
    browser.execute("window.confirm = () => true;", vec![]).await;
    click(
        &browser,
        &format!("{shop_section} button[data-action=\"delete-cluster\"]"),
    )
    .await;
    let banner = browser
        .wait_for(
            "the refusal in the error banner",
            "const e = document.getElementById('error'); return !e.hidden && e.textContent;",
        )
        .await;
    let banner = banner.as_str().unwrap_or_default().to_owned();
    assert!(
        banner.contains("conflict") && banner.contains("routes[0]"),
        "{banner}"
    );
    let (status, _) = admin(&d, "GET", "/api/v1/clusters/shop", None, None).await;
    assert_eq!(status, 200, "still there");
    browser
        .screenshot_full_page(&artifacts_dir().join("overview-routes.png"))
        .await;

    // Delete the route, then the cluster.
    click(
        &browser,
        "tr.route[data-index=\"0\"] button[data-action=\"delete-route\"]",
    )
    .await;
    panel_shows(&browser, &["/"]).await;
    assert_eq!(get(&d.target(), "/shop/x").await.text(), "web-1");
    click(
        &browser,
        &format!("{shop_section} button[data-action=\"delete-cluster\"]"),
    )
    .await;
    wait_until("shop gone from the API", async || {
        let (status, _) = admin(&d, "GET", "/api/v1/clusters/shop", None, None).await;
        (status == 404).then_some(())
    })
    .await;
    browser
        .wait_for(
            "shop's section gone",
            &format!("return document.querySelector('{shop_section}') === null;"),
        )
        .await;
    let clusters: Value = admin(&d, "GET", "/api/v1/clusters", None, None).await.1;
    assert_eq!(clusters.as_array().map(Vec::len), Some(1), "{clusters}");
    drop(browser);
    d.stop().await;
}
