//! Test fixture: headless Chromium driven over WebDriver (the `fantoccini` client, plain HTTP to
//! `chromedriver` on loopback).
//!
//! [`Browser::start`] runs `chromedriver --port=N` as a child process and opens a session on
//! Chromium with the flags this machine needs (headless, no sandbox, no background networking)
//! and a fresh, empty profile directory. Dropping the [`Browser`] keeps a screenshot when the
//! test is failing, ends the session, kills chromedriver and removes the profile.
//!
//! build.rs finds Chromium and chromedriver when the tests are built; a browser test carries
//! `#[cfg_attr(not(has_chromium), ignore = ...)]`, so without them it is reported as ignored.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};

use super::{free_port, temp_dir, wait_until};

/// Chromium's flags: headless and quiet, since this machine's network is closed.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,900",
];

/// Where build.rs found `name` (`DIRECTOR_TEST_CHROMIUM`, `DIRECTOR_TEST_CHROMEDRIVER`).
fn tool(path: Option<&'static str>) -> &'static str {
    path.unwrap_or_else(|| {
        panic!("chromium or chromedriver is not installed: this test should have been ignored")
    })
}

/// A chromedriver process with one open Chromium session.
pub struct Browser {
    client: Option<Client>,
    driver: Child,
    profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session.
    pub async fn start() -> Browser {
        let chromium = tool(option_env!("DIRECTOR_TEST_CHROMIUM"));
        let driver_path = tool(option_env!("DIRECTOR_TEST_CHROMEDRIVER"));
        let port = free_port();
        let mut driver = Command::new(driver_path)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {driver_path}: {e}"));
        let profile = temp_dir("chromium");
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|f| f.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chromium, "args": args },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let url = format!("http://127.0.0.1:{port}");
        // Until chromedriver listens, connecting fails; then it opens the session.
        let client = wait_until("a Chromium session from chromedriver", async || {
            if let Some(exit) = driver.try_wait().expect("chromedriver status") {
                panic!("chromedriver exited before it was ready: {exit}");
            }
            ClientBuilder::new(HttpConnector::new())
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
        })
        .await;
        Browser {
            client: Some(client),
            driver,
            profile,
        }
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("an open session")
    }

    /// Navigates to `url` and waits for the page to load.
    pub async fn goto(&self, url: &str) {
        self.client()
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("go to {url}: {e}"));
    }

    /// The path of the current page's URL (`/login` for `http://host:port/login?x`).
    pub async fn current_path(&self) -> String {
        let url = self.client().current_url().await.expect("the current URL");
        url.path().to_owned()
    }

    /// The first element matching `css` right now, if any.
    pub async fn try_find(&self, css: &str) -> Option<Element> {
        match self.client().find(Locator::Css(css)).await {
            Ok(element) => Some(element),
            Err(e) if e.is_no_such_element() => None,
            Err(e) => panic!("find `{css}`: {e}"),
        }
    }

    /// The first element matching `css`, waiting until it appears.
    pub async fn find(&self, css: &str) -> Element {
        wait_until(format!("an element matching `{css}`"), async || {
            self.try_find(css).await
        })
        .await
    }

    /// Every element matching `css` right now (no waiting).
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        self.client()
            .find_all(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("find all `{css}`: {e}"))
    }

    /// Clicks `element`.
    pub async fn click(&self, element: &Element) {
        element.click().await.expect("click");
    }

    /// Empties an `input` or `textarea`.
    pub async fn clear(&self, element: &Element) {
        element.clear().await.expect("clear");
    }

    /// Types `text` into `element` (`\u{E007}` is the Enter key).
    pub async fn send_keys(&self, element: &Element, text: &str) {
        element.send_keys(text).await.expect("send keys");
    }

    /// Runs `script` as a function body in the page (`arguments[i]` are `args`); its return value.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Value {
        self.client()
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("execute `{script}`: {e}"))
    }

    /// Runs `script` (as [`Browser::execute`]) until it returns something other than `null`,
    /// `false` or `undefined`; that value.
    pub async fn wait_for(&self, what: &str, script: &str) -> Value {
        wait_until(what, async || {
            let value = self.execute(script, vec![]).await;
            (!matches!(value, Value::Null | Value::Bool(false))).then_some(value)
        })
        .await
    }

    /// The names of every cookie of the current page's site, `HttpOnly` ones included.
    pub async fn cookie_names(&self) -> Vec<String> {
        let cookies = self.client().get_all_cookies().await.expect("cookies");
        cookies.iter().map(|c| c.name().to_owned()).collect()
    }

    /// Saves a PNG of the viewport to `path` (creating its directory).
    pub async fn screenshot(&self, path: &Path) {
        let png = self.client().screenshot().await.expect("screenshot");
        save(path, &png);
    }

    /// Saves a PNG of the whole page to `path`: the window grows to the page's height for the
    /// shot (WebDriver's screenshot only covers the viewport), then gets its size back.
    pub async fn screenshot_full_page(&self, path: &Path) {
        let sizes = self
            .execute(
                "return [window.outerWidth, window.outerHeight, window.innerHeight, \
                 document.documentElement.scrollHeight];",
                vec![],
            )
            .await;
        let size = |i: usize| {
            sizes[i]
                .as_u64()
                .and_then(|v| u32::try_from(v).ok())
                .unwrap_or_else(|| panic!("window sizes: {sizes}"))
        };
        let (width, height, viewport, page) = (size(0), size(1), size(2), size(3));
        let full = height - viewport + page;
        let client = self.client();
        client
            .set_window_size(width, full.max(height))
            .await
            .expect("resize");
        self.screenshot(path).await;
        client.set_window_size(width, height).await.expect("resize");
    }
}

/// Writes `png` to `path`, creating its directory.
fn save(path: &Path, png: &[u8]) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("create the screenshot directory");
    }
    std::fs::write(path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Where tests keep screenshots: `target/test-artifacts/` of this crate.
pub fn artifacts_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts")
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The session's requests run on the test's runtime: finish them there (the browser
        // tests use the multi-threaded runtime, where a worker may block in place).
        if let (Some(client), Ok(runtime)) = (self.client.take(), tokio::runtime::Handle::try_current()) {
            if runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread {
                let failing = std::thread::panicking();
                tokio::task::block_in_place(|| {
                    runtime.block_on(async {
                        if failing {
                            screenshot_after_failure(&client).await;
                        }
                        let _ = client.close().await;
                    })
                });
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = &self.profile;
    }
}

/// Saves what the page showed when a test failed, as `failed-TEST.png` in [`artifacts_dir`].
async fn screenshot_after_failure(client: &Client) {
    let Ok(png) = client.screenshot().await else {
        return;
    };
    let test = std::thread::current().name().unwrap_or("test").replace("::", "-");
    let path = artifacts_dir().join(format!("failed-{test}.png"));
    save(&path, &png);
    eprintln!("the page at the failure: {}", path.display());
}
