//! Request IDs and W3C trace context end to end (`proxy.request_id`, `proxy.traceparent`): a
//! client's usable ID is kept, a missing or unusable one is generated; the ID reaches an HTTP
//! backend as a header and php-fpm as `HTTP_X_REQUEST_ID`, comes back to the client and is in
//! the access log; `traceparent` is passed on, given a span of director's own, or started.

use crate::support;

use bytes::Bytes;
use serde_json::Value;
use support::backend::TestBackend;
use support::php::{Listen, PhpFpm};
use support::{cluster_config, get, request, start, Director, Reply};

const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// `cluster_config` with `proxy` settings added and a JSON access log at `log`.
fn with_proxy(yaml: String, proxy: &str, log: &std::path::Path) -> String {
    let mut yaml = yaml.replacen("  workers: 2\n", &format!("  workers: 2\n{proxy}"), 1);
    yaml.push_str(&format!(
        "access_log: {{ enabled: true, format: json, path: \"{}\" }}\n",
        log.display()
    ));
    yaml
}

/// The header fields the backend's `/headers` page saw.
fn seen(reply: &Reply, name: &str) -> Option<String> {
    reply
        .text()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::to_owned))
}

fn is_generated_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The JSON access log lines written so far, once there are `n`.
async fn log_lines(path: &std::path::Path, n: usize) -> Vec<Value> {
    support::eventually(&format!("{n} access log lines"), || {
        std::fs::read_to_string(path).is_ok_and(|s| s.lines().count() >= n)
    })
    .await;
    std::fs::read_to_string(path)
        .expect("log")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

async fn http_director(proxy: &str) -> (TestBackend, Director, tempfile::TempDir) {
    let a = TestBackend::start("a").await;
    let dir = support::temp_dir("rid");
    let yaml = with_proxy(
        cluster_config("", &[("a", a.url(), 4, "active")]),
        proxy,
        &dir.path().join("access.log"),
    );
    let d = start(&yaml).await;
    (a, d, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_are_kept_or_generated_and_travel_everywhere() {
    let proxy = "  request_id: { enabled: true }\n  traceparent: { enabled: true }\n";
    let (_a, d, dir) = http_director(proxy).await;
    let log = dir.path().join("access.log");

    // None sent: one is generated, the backend sees it, the client gets it back.
    let r = get(&d.target(), "/headers").await;
    assert_eq!(r.status, 200);
    let id = r.header("x-request-id").expect("returned").to_owned();
    assert!(is_generated_id(&id), "{id}");
    assert_eq!(seen(&r, "x-request-id").as_deref(), Some(id.as_str()));
    let started = seen(&r, "traceparent").expect("a trace was started");
    assert!(
        started.starts_with("00-") && started.len() == 55 && started.ends_with("-01"),
        "{started}"
    );

    // A usable one is kept; so is a valid traceparent.
    let headers = [("x-request-id", "client-id-42"), ("traceparent", PARENT)];
    let r = request(&d.target(), "GET", "/headers", &headers, Bytes::new()).await;
    assert_eq!(r.header("x-request-id"), Some("client-id-42"));
    assert_eq!(seen(&r, "x-request-id").as_deref(), Some("client-id-42"));
    assert_eq!(seen(&r, "traceparent").as_deref(), Some(PARENT));

    // An unusable one (a space; too long) is replaced, never forwarded.
    let long = "x".repeat(129);
    for bad in ["two words", long.as_str()] {
        let r = request(
            &d.target(),
            "GET",
            "/headers",
            &[("x-request-id", bad)],
            Bytes::new(),
        )
        .await;
        let id = r.header("x-request-id").expect("returned");
        assert!(is_generated_id(id), "{bad:?} replaced by {id}");
        assert_eq!(
            seen(&r, "x-request-id").as_deref(),
            Some(id),
            "one value upstream"
        );
    }

    // Director's own answers carry it too (no route here would be 404; a bad path is 400).
    let r = request(
        &d.target(),
        "GET",
        "/../x",
        &[("x-request-id", "bad-path")],
        Bytes::new(),
    )
    .await;
    assert_eq!((r.status, r.header("x-request-id")), (400, Some("bad-path")));

    let lines = log_lines(&log, 5).await;
    let first = with_id(&lines, &id);
    assert_eq!(first["trace_id"].as_str(), started.get(3..35));
    assert_eq!(first["termination"], "--");
    assert_eq!(
        with_id(&lines, "client-id-42")["trace_id"],
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(with_id(&lines, "bad-path")["termination"], "PR");
    d.stop().await;
}

/// The log line of the request with ID `id`.
fn with_id<'l>(lines: &'l [Value], id: &str) -> &'l Value {
    lines
        .iter()
        .find(|l| l["request_id"] == id)
        .unwrap_or_else(|| panic!("no line with request_id {id}: {lines:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_header_a_hop_span_and_no_start() {
    let proxy = "  request_id: { enabled: true, header: X-Correlation-Id }\n  \
                 traceparent: { enabled: true, start: false, new_span: true }\n";
    let (_a, d, _dir) = http_director(proxy).await;
    let r = request(
        &d.target(),
        "GET",
        "/headers",
        &[("traceparent", PARENT)],
        Bytes::new(),
    )
    .await;
    let id = r.header("x-correlation-id").expect("returned");
    assert_eq!(seen(&r, "x-correlation-id").as_deref(), Some(id));
    assert!(r.header("x-request-id").is_none());
    let hop = seen(&r, "traceparent").expect("passed on");
    assert_eq!(&hop[..36], &PARENT[..36], "the same trace");
    assert_ne!(&hop[36..52], &PARENT[36..52], "a span of director's own");
    // No trace is started, and a malformed one is dropped rather than passed on.
    let r = get(&d.target(), "/headers").await;
    assert_eq!(seen(&r, "traceparent"), None);
    let r = request(
        &d.target(),
        "GET",
        "/headers",
        &[("traceparent", "00-zz")],
        Bytes::new(),
    )
    .await;
    assert_eq!(seen(&r, "traceparent"), None);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_by_default_headers_pass_untouched() {
    let (_a, d, _dir) = http_director("").await;
    let headers = [("x-request-id", "two words"), ("traceparent", "00-zz")];
    let r = request(&d.target(), "GET", "/headers", &headers, Bytes::new()).await;
    assert!(r.header("x-request-id").is_none());
    assert_eq!(seen(&r, "x-request-id").as_deref(), Some("two words"));
    assert_eq!(seen(&r, "traceparent").as_deref(), Some("00-zz"));
    d.stop().await;
}

#[cfg_attr(
    not(has_php_fpm),
    ignore = "php-fpm not installed (apt-get install php8.2-fpm)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn php_fpm_gets_the_request_id_and_traceparent_as_params() {
    let fpm = PhpFpm::start(Listen::Unix, 2).await;
    let root = support::php::docroot();
    let settings = format!("fastcgi: {{ document_root: \"{}\" }}", root.display());
    let dir = support::temp_dir("rid-php");
    let proxy = "  request_id: { enabled: true }\n  traceparent: { enabled: true }\n";
    let yaml = with_proxy(
        cluster_config(&settings, &[("php", fpm.url(), 2, "active")]),
        proxy,
        &dir.path().join("access.log"),
    );
    let d = start(&yaml).await;
    let server =
        |r: &Reply| -> Value { serde_json::from_slice::<Value>(&r.body).expect("JSON")["server"].clone() };

    let r = get(&d.target(), "/echo.php").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let id = r.header("x-request-id").expect("returned").to_owned();
    assert!(is_generated_id(&id));
    let vars = server(&r);
    assert_eq!(vars["HTTP_X_REQUEST_ID"], id.as_str());
    let parent = vars["HTTP_TRACEPARENT"].as_str().expect("started");
    assert!(parent.starts_with("00-") && parent.len() == 55, "{parent}");

    let headers = [("x-request-id", "from-client"), ("traceparent", PARENT)];
    let r = request(&d.target(), "GET", "/echo.php", &headers, Bytes::new()).await;
    let vars = server(&r);
    assert_eq!(vars["HTTP_X_REQUEST_ID"], "from-client");
    assert_eq!(vars["HTTP_TRACEPARENT"], PARENT);
    assert_eq!(r.header("x-request-id"), Some("from-client"));
    let lines = log_lines(&dir.path().join("access.log"), 2).await;
    assert_eq!(with_id(&lines, &id)["backend"], "php");
    assert_eq!(
        with_id(&lines, "from-client")["trace_id"],
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    d.stop().await;
}
