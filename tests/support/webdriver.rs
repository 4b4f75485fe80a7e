//! Test fixture: a tiny W3C WebDriver client driving headless Chromium through `chromedriver`.
//!
//! [`Browser::start`] runs `chromedriver --port=N` as a child process, waits until its `/status`
//! says ready and opens a session on `/usr/bin/chromium` with the flags this machine needs
//! (headless, no sandbox, no background networking) and a fresh, empty profile directory.
//! Dropping the [`Browser`] deletes the session, kills chromedriver and removes the profile.
//!
//! Only what the dashboard tests use is here: navigation, CSS lookups that poll until the
//! element appears, clicks, typing, text, scripts, cookies and screenshots. Requests go over
//! hyper 1 on a fresh loopback connection each; bodies are JSON (serde_json).
//!
//! When Chromium or chromedriver is not installed, [`Browser::start`] says so and returns
//! `None` so the test can skip, unless `DIRECTOR_REQUIRE_ALL` is set (CI), where it panics.
#![allow(dead_code)]

use std::future::Future;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};

use super::{request, Target};

/// The Chromium binary the session runs.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Where chromedriver is looked for when it is not on `PATH`.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The key W3C WebDriver uses for element references in JSON.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// How long [`Browser::find`] and [`Browser::wait_for`] poll before giving up.
pub const WAIT: Duration = Duration::from_secs(10);
/// Pause between two polls.
const POLL: Duration = Duration::from_millis(25);

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

/// A reference to an element of the current page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElementId(pub String);

impl ElementId {
    /// The element as a script argument (`arguments[i]` in [`Browser::execute`]).
    pub fn to_json(&self) -> Value {
        json!({ ELEMENT_KEY: self.0 })
    }
}

/// A WebDriver error answer: its `error` code and `message`.
#[derive(Debug)]
pub struct WebDriverError {
    pub status: u16,
    pub error: String,
    pub message: String,
}

impl std::fmt::Display for WebDriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.error, self.status, self.message)
    }
}

/// A chromedriver process with one open Chromium session.
pub struct Browser {
    driver: Child,
    driver_addr: SocketAddr,
    session: String,
    profile: PathBuf,
}

/// The chromedriver executable: on `PATH`, else [`CHROMEDRIVER`].
fn chromedriver_path() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("chromedriver"));
    on_path
        .chain(std::iter::once(PathBuf::from(CHROMEDRIVER)))
        .find(|p| p.is_file())
}

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

/// A new, empty directory for Chromium's profile.
fn fresh_profile_dir() -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "director-chromium-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the Chromium profile directory");
    dir
}

/// Polls `probe` every few milliseconds until it returns `Some`, for up to [`WAIT`]; panics
/// naming `what` otherwise.
pub async fn poll_until<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session; `None` (after saying so) when
    /// either is not installed and `DIRECTOR_REQUIRE_ALL` is unset.
    pub async fn start() -> Option<Browser> {
        let driver_path = chromedriver_path();
        let Some(driver_path) = driver_path.filter(|_| Path::new(CHROMIUM).is_file()) else {
            assert!(
                std::env::var_os("DIRECTOR_REQUIRE_ALL").is_none(),
                "DIRECTOR_REQUIRE_ALL is set but chromium/chromedriver is not installed \
                 (need {CHROMIUM} and chromedriver)"
            );
            eprintln!("skipping: chromium/chromedriver not installed");
            return None;
        };
        let port = free_port();
        let driver = Command::new(&driver_path)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", driver_path.display()));
        let mut browser = Browser {
            driver,
            driver_addr: SocketAddr::from(([127, 0, 0, 1], port)),
            session: String::new(),
            profile: fresh_profile_dir(),
        };
        browser.wait_ready().await;
        browser.session = browser.new_session().await;
        Some(browser)
    }

    /// Waits until chromedriver answers `GET /status` with `ready: true`.
    async fn wait_ready(&mut self) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(exit) = self.driver.try_wait().expect("chromedriver status") {
                panic!("chromedriver exited before it was ready: {exit}");
            }
            if TcpStream::connect(self.driver_addr).is_ok() {
                let status = self.call("GET", "/status", None).await;
                if status.as_ref().is_ok_and(|v| v["ready"] == true) {
                    return;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "chromedriver never became ready"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    async fn new_session(&self) -> String {
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|f| f.to_string()).collect();
        args.push(format!("--user-data-dir={}", self.profile.display()));
        let capabilities = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
                }
            }
        });
        let value = self
            .call("POST", "/session", Some(capabilities))
            .await
            .unwrap_or_else(|e| panic!("create a Chromium session: {e}"));
        value["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no sessionId in {value}"))
            .to_owned()
    }

    /// One WebDriver call: `method path` with an optional JSON body; the answer's `value`.
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, WebDriverError> {
        let body = match (method, body) {
            (_, Some(body)) => Bytes::from(body.to_string()),
            ("POST", None) => Bytes::from_static(b"{}"),
            _ => Bytes::new(),
        };
        let host = self.driver_addr.to_string();
        let headers = [
            ("host", host.as_str()),
            ("content-type", "application/json; charset=utf-8"),
        ];
        let reply = request(&Target::Tcp(self.driver_addr), method, path, &headers, body).await;
        let json: Value = serde_json::from_slice(&reply.body).unwrap_or_else(|e| {
            panic!(
                "chromedriver answered {method} {path} with non-JSON ({e}): {}",
                reply.text()
            )
        });
        let value = json.get("value").cloned().unwrap_or(Value::Null);
        if reply.status == 200 {
            return Ok(value);
        }
        Err(WebDriverError {
            status: reply.status,
            error: value["error"].as_str().unwrap_or("unknown error").to_owned(),
            message: value["message"].as_str().unwrap_or_default().to_owned(),
        })
    }

    /// A call on this session (`path` is relative to `/session/{id}`) that must succeed.
    async fn session_call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.try_session_call(method, path, body)
            .await
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"))
    }

    async fn try_session_call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, WebDriverError> {
        self.call(method, &format!("/session/{}{path}", self.session), body)
            .await
    }

    /// Navigates to `url` and waits for the page to load.
    pub async fn goto(&self, url: &str) {
        self.session_call("POST", "/url", Some(json!({ "url": url })))
            .await;
    }

    /// The current page's URL.
    pub async fn current_url(&self) -> String {
        let value = self.session_call("GET", "/url", None).await;
        value.as_str().unwrap_or_default().to_owned()
    }

    /// The path of the current page's URL (`/login` for `http://host:port/login?x`).
    pub async fn current_path(&self) -> String {
        let url = self.current_url().await;
        let after_scheme = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
        let path = after_scheme.find('/').map_or("/", |i| &after_scheme[i..]);
        path.split(['?', '#']).next().unwrap_or("/").to_owned()
    }

    /// The first element matching `css` right now, if any.
    pub async fn try_find(&self, css: &str) -> Option<ElementId> {
        let body = json!({ "using": "css selector", "value": css });
        match self.try_session_call("POST", "/element", Some(body)).await {
            Ok(value) => Some(element_id(&value)),
            Err(e) if e.error == "no such element" => None,
            Err(e) => panic!("find `{css}`: {e}"),
        }
    }

    /// The first element matching `css`, polling until it appears (up to [`WAIT`]).
    pub async fn find(&self, css: &str) -> ElementId {
        poll_until(&format!("an element matching `{css}`"), || self.try_find(css)).await
    }

    /// Every element matching `css` right now (no waiting).
    pub async fn find_all(&self, css: &str) -> Vec<ElementId> {
        let body = json!({ "using": "css selector", "value": css });
        let value = self.session_call("POST", "/elements", Some(body)).await;
        value
            .as_array()
            .map(|items| items.iter().map(element_id).collect())
            .unwrap_or_default()
    }

    /// Clicks `element` (scrolled into view first by the driver).
    pub async fn click(&self, element: &ElementId) {
        self.session_call("POST", &format!("/element/{}/click", element.0), None)
            .await;
    }

    /// The rendered text of `element`.
    pub async fn text(&self, element: &ElementId) -> String {
        let value = self
            .session_call("GET", &format!("/element/{}/text", element.0), None)
            .await;
        value.as_str().unwrap_or_default().to_owned()
    }

    /// An attribute of `element`, if it has one.
    pub async fn attribute(&self, element: &ElementId, name: &str) -> Option<String> {
        let value = self
            .session_call("GET", &format!("/element/{}/attribute/{name}", element.0), None)
            .await;
        value.as_str().map(str::to_owned)
    }

    /// Empties an `input` or `textarea`.
    pub async fn clear(&self, element: &ElementId) {
        self.session_call("POST", &format!("/element/{}/clear", element.0), None)
            .await;
    }

    /// Types `text` into `element` (`\u{E007}` is the Enter key).
    pub async fn send_keys(&self, element: &ElementId, text: &str) {
        let body = json!({ "text": text });
        self.session_call("POST", &format!("/element/{}/value", element.0), Some(body))
            .await;
    }

    /// Runs `script` as a function body in the page (`arguments[i]` are `args`); its return value.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Value {
        let body = json!({ "script": script, "args": args });
        self.session_call("POST", "/execute/sync", Some(body)).await
    }

    /// Polls `script` (as [`Browser::execute`]) until it returns something other than `null`,
    /// `false` or `undefined`; that value.
    pub async fn wait_for(&self, what: &str, script: &str) -> Value {
        poll_until(what, move || async move {
            let value = self.execute(script, vec![]).await;
            (!matches!(value, Value::Null | Value::Bool(false))).then_some(value)
        })
        .await
    }

    /// Sets a cookie for the current page's site.
    pub async fn add_cookie(&self, name: &str, value: &str) {
        let body = json!({ "cookie": { "name": name, "value": value, "path": "/" } });
        self.session_call("POST", "/cookie", Some(body)).await;
    }

    /// Every cookie of the current page's site, `HttpOnly` ones included (name, value).
    pub async fn cookies(&self) -> Vec<(String, String)> {
        let value = self.session_call("GET", "/cookie", None).await;
        value
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                let field = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
                (field("name"), field("value"))
            })
            .collect()
    }

    /// Saves a PNG of the viewport to `path` (creating its directory).
    pub async fn screenshot(&self, path: &Path) {
        let value = self.session_call("GET", "/screenshot", None).await;
        let png = decode_base64(value.as_str().expect("screenshot is a base64 string"));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("create the screenshot directory");
        }
        std::fs::write(path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
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
                .unwrap_or_else(|| panic!("window sizes: {sizes}"))
        };
        let (width, height, viewport, page) = (size(0), size(1), size(2), size(3));
        let full = height - viewport + page;
        self.set_window_size(width, full.max(height)).await;
        self.screenshot(path).await;
        self.set_window_size(width, height).await;
    }

    /// Resizes the browser window (outer size, in CSS pixels).
    pub async fn set_window_size(&self, width: u64, height: u64) {
        let body = json!({ "width": width, "height": height });
        self.session_call("POST", "/window/rect", Some(body)).await;
    }

    /// One call on this session as a blocking HTTP/1.1 exchange (for `Drop`, which may run
    /// outside any runtime); the answer's body, if one came. chromedriver keeps the connection
    /// open even after `connection: close`, so the body ends at its `content-length`.
    fn blocking_session_call(&self, method: &str, path: &str) -> Option<Vec<u8>> {
        let mut stream = TcpStream::connect_timeout(&self.driver_addr, Duration::from_secs(1)).ok()?;
        // `DELETE` returns once Chromium has exited.
        stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        let request = format!(
            "{method} /session/{}{path} HTTP/1.1\r\nhost: {}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            self.session, self.driver_addr
        );
        stream.write_all(request.as_bytes()).ok()?;
        let mut answer = Vec::new();
        let mut chunk = [0u8; 64 * 1024];
        loop {
            if let Some(head_len) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&answer[..head_len]).to_ascii_lowercase();
                let body_len: usize = head
                    .lines()
                    .find_map(|line| line.strip_prefix("content-length:"))
                    .and_then(|n| n.trim().parse().ok())?;
                if answer.len() >= head_len + 4 + body_len {
                    return Some(answer[head_len + 4..head_len + 4 + body_len].to_vec());
                }
            }
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => answer.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Saves what the page showed when a test failed, as `failed-TEST.png` in [`artifacts_dir`].
    fn screenshot_after_failure(&self) {
        let Some(body) = self.blocking_session_call("GET", "/screenshot") else {
            return;
        };
        let Ok(answer) = serde_json::from_slice::<Value>(&body) else {
            return;
        };
        let Some(png) = answer["value"].as_str() else {
            return;
        };
        let test = std::thread::current().name().unwrap_or("test").replace("::", "-");
        let path = artifacts_dir().join(format!("failed-{test}.png"));
        if std::fs::create_dir_all(artifacts_dir()).is_ok()
            && std::fs::write(&path, decode_base64(png)).is_ok()
        {
            eprintln!("the page at the failure: {}", path.display());
        }
    }
}

/// Where tests keep screenshots: `target/test-artifacts/` of this crate.
pub fn artifacts_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts")
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            if std::thread::panicking() {
                self.screenshot_after_failure();
            }
            self.blocking_session_call("DELETE", "");
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// The element reference in a WebDriver answer's `value`.
fn element_id(value: &Value) -> ElementId {
    let id = value[ELEMENT_KEY]
        .as_str()
        .unwrap_or_else(|| panic!("not an element reference: {value}"));
    ElementId(id.to_owned())
}

/// Decodes standard base64 (with or without padding; whitespace ignored).
pub fn decode_base64(text: &str) -> Vec<u8> {
    fn sextet(c: u8) -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a') as u32 + 26,
            b'0'..=b'9' => (c - b'0') as u32 + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("invalid base64 byte {c:#x}"),
        }
    }
    let symbols: Vec<u8> = text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .collect();
    let mut out = Vec::with_capacity(symbols.len() * 3 / 4);
    for chunk in symbols.chunks(4) {
        let bits = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &c)| acc | sextet(c) << (18 - 6 * i));
        let bytes = bits.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}
