//! The admin listener end to end: the JSON API's round trips and refusals, HAProxy CSV,
//! Prometheus `/metrics` and the event stream. Admin security is in `admin_security.rs`.

use crate::support;

use std::collections::HashMap;

use bytes::Bytes;
use serde_json::{json, Value};
use support::backend::TestBackend;
use support::{admin, admin_raw, eventually, get, start, Director};

/// One cluster `c` over `backends` (name, url, capacity); a loopback admin listener without a
/// token.
fn config(backends: &[(&str, String, u32)]) -> String {
    let mut yaml = String::from("proxy: { listen: \"127.0.0.1:0\", workers: 2 }\n");
    yaml.push_str("admin: { listen: \"127.0.0.1:0\" }\n");
    yaml.push_str("routes: [{ cluster: c }]\nclusters:\n  c:\n    queue_limit: 4\n    queue_timeout: 300ms\n    backends:\n");
    for (name, url, capacity) in backends {
        yaml.push_str(&format!(
            "      - {{ name: {name}, url: \"{url}\", capacity: {capacity} }}\n"
        ));
    }
    yaml
}

/// Sends `GET path` through the proxy in a task of its own.
fn spawn_get(d: &Director, path: &'static str) -> tokio::task::JoinHandle<support::Reply> {
    let target = d.target();
    tokio::spawn(async move { get(&target, path).await })
}

async fn backend_state(d: &Director, name: &str) -> Value {
    let (status, body) = admin(
        d,
        "GET",
        &format!("/api/v1/clusters/c/backends/{name}"),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn add_patch_disable_and_delete_backends() {
    let (a, b) = (TestBackend::start("a").await, TestBackend::start("b").await);
    let d = start(&config(&[("a", a.url(), 0)])).await;

    // Add: the answer is the new backend's state, and traffic reaches it.
    let (status, body) = admin(
        &d,
        "POST",
        "/api/v1/clusters/c/backends",
        Some(json!({ "name": "b", "url": b.url(), "capacity": 2 })),
        None,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        (body["name"].as_str(), body["capacity"].as_u64()),
        (Some("b"), Some(2))
    );
    eventually("b gets traffic", || d.cluster("c").backend("b").is_some()).await;
    for _ in 0..20 {
        assert_eq!(get(&d.target(), "/").await.status, 200);
    }
    assert!(
        b.hits() > 0 && a.hits() > 0,
        "both serve: a {} b {}",
        a.hits(),
        b.hits()
    );

    // Patch capacity: the limit holds.
    let (status, body) = admin(
        &d,
        "PATCH",
        "/api/v1/clusters/c/backends/a",
        Some(json!({ "capacity": 1 })),
        None,
    )
    .await;
    assert_eq!((status, body["capacity"].as_u64()), (200, Some(1)), "{body}");
    let (status, _) = admin(
        &d,
        "PATCH",
        "/api/v1/clusters/c/backends/b",
        Some(json!({ "enabled": false })),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let held = spawn_get(&d, "/hold");
    a.wait_current(1).await;
    let second = spawn_get(&d, "/hold");
    // The second request waits in the queue: a is at its capacity of 1 and b is disabled.
    eventually("second request queued", || {
        d.cluster("c").admission.stats.snapshot().queued.current == 1
    })
    .await;
    assert_eq!((a.current(), b.current()), (1, 0));
    a.release_holds();
    assert_eq!(held.await.expect("task").status, 200);
    assert_eq!(second.await.expect("task").status, 200);
    assert_eq!(a.peak(), 1, "capacity 1 held");

    // Disabled: no new requests reach b.
    let b_hits = b.hits();
    for _ in 0..10 {
        assert_eq!(get(&d.target(), "/").await.status, 200);
    }
    assert_eq!(b.hits(), b_hits);
    assert_eq!(backend_state(&d, "b").await["enabled"], false);

    // Delete with a request in flight: it finishes, then the backend is gone.
    a.reset_holds();
    admin(
        &d,
        "PATCH",
        "/api/v1/clusters/c/backends/a",
        Some(json!({ "capacity": 0 })),
        None,
    )
    .await;
    let in_flight = spawn_get(&d, "/hold");
    a.wait_current(1).await;
    let (status, body) = admin(&d, "DELETE", "/api/v1/clusters/c/backends/a", None, None).await;
    assert_eq!((status, body["draining"].as_bool()), (200, Some(true)), "{body}");
    a.release_holds();
    let reply = in_flight.await.expect("task");
    assert_eq!((reply.status, reply.text()), (200, "a".to_owned()));
    eventually("a removed after draining", || {
        d.cluster("c").statuses.load().iter().all(|s| s.name != "a")
    })
    .await;
    let (status, _) = admin(&d, "GET", "/api/v1/clusters/c/backends/a", None, None).await;
    assert_eq!(status, 404);
    d.settled("c").await;
    d.stop().await;
}

/// Every kind of bad input is a 4xx with `{error, detail}` and changes nothing.
#[tokio::test]
async fn bad_input_is_refused_and_changes_nothing() {
    let a = TestBackend::start("a").await;
    let d = start(&config(&[("a", a.url(), 3)])).await;
    let before = admin(&d, "GET", "/api/v1/clusters/c", None, None).await.1;
    let generation = admin(&d, "GET", "/api/v1/status", None, None).await.1["generation"].clone();
    let cases: Vec<(&str, &str, Option<String>, u16, &str)> = vec![
        (
            "POST",
            "/api/v1/clusters/c/backends",
            Some("{ not json".into()),
            400,
            "invalid_json",
        ),
        (
            "POST",
            "/api/v1/clusters/c/backends",
            Some("[1, 2]".into()),
            400,
            "invalid_json",
        ),
        (
            "POST",
            "/api/v1/clusters/c/backends",
            Some(r#"{"name":"x","url":"http://h:1","weight":3}"#.into()),
            400,
            "invalid_config",
        ),
        (
            "POST",
            "/api/v1/clusters/c/backends",
            Some(r#"{"name":"x","url":"ftp://h"}"#.into()),
            400,
            "invalid_config",
        ),
        (
            "POST",
            "/api/v1/clusters/c/backends",
            Some(r#"{"name":"x","url":"http://h:1","capacity":-1}"#.into()),
            400,
            "invalid_config",
        ),
        (
            "POST",
            "/api/v1/clusters/c/backends",
            Some(r#"{"url":"http://h:1"}"#.into()),
            400,
            "invalid_value",
        ),
        (
            "POST",
            "/api/v1/clusters/c/backends",
            Some(format!(r#"{{"name":"a","url":"{}"}}"#, a.url())),
            409,
            "conflict",
        ),
        (
            "POST",
            "/api/v1/clusters/nope/backends",
            Some(r#"{"name":"x","url":"http://h:1"}"#.into()),
            404,
            "not_found",
        ),
        (
            "PATCH",
            "/api/v1/clusters/c/backends/zz",
            Some(r#"{"capacity":1}"#.into()),
            404,
            "not_found",
        ),
        (
            "PATCH",
            "/api/v1/clusters/c/backends/a",
            Some(r#"{"capacity":"many"}"#.into()),
            400,
            "invalid_config",
        ),
        (
            "PATCH",
            "/api/v1/clusters/c/backends/a",
            Some(r#"{"role":"primary"}"#.into()),
            400,
            "invalid_config",
        ),
        (
            "PATCH",
            "/api/v1/clusters/c/backends/a",
            Some(r#"{"name":"b"}"#.into()),
            400,
            "invalid_value",
        ),
        (
            "PATCH",
            "/api/v1/clusters/c",
            Some(r#"{"scheduler":"random"}"#.into()),
            400,
            "invalid_config",
        ),
        (
            "PATCH",
            "/api/v1/clusters/c",
            Some(r#"{"backends":[]}"#.into()),
            400,
            "invalid_value",
        ),
        (
            "POST",
            "/api/v1/clusters/c/buckets",
            Some(r#"{"name":"v","rate":0.5,"ceil":0.2}"#.into()),
            400,
            "invalid_config",
        ),
        (
            "DELETE",
            "/api/v1/clusters/c/buckets/none",
            None,
            404,
            "not_found",
        ),
        (
            "DELETE",
            "/api/v1/clusters/c/backends/none",
            None,
            404,
            "not_found",
        ),
        ("GET", "/api/v1/nothing", None, 404, "not_found"),
    ];
    for (method, path, body, want, kind) in cases {
        let reply = admin_raw(&d, method, path, body.clone(), None, &[]).await;
        let json: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
        assert_eq!(reply.status, want, "{method} {path} {body:?}: {json}");
        assert_eq!(json["error"], kind, "{method} {path} {body:?}: {json}");
        assert!(!json["detail"].is_null(), "{json}");
    }
    // A huge body is refused too.
    let huge = format!(
        r#"{{"name":"x","url":"http://h:1","pad":"{}"}}"#,
        "a".repeat(200_000)
    );
    let reply = admin_raw(&d, "POST", "/api/v1/clusters/c/backends", Some(huge), None, &[]).await;
    assert!((400..500).contains(&reply.status), "{}", reply.status);
    let after = admin(&d, "GET", "/api/v1/clusters/c", None, None).await.1;
    assert_eq!(
        before["backends"][0]["capacity"],
        after["backends"][0]["capacity"]
    );
    assert_eq!(before["settings"], after["settings"]);
    assert_eq!(after["backends"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        admin(&d, "GET", "/api/v1/status", None, None).await.1["generation"],
        generation
    );
    assert_eq!(get(&d.target(), "/").await.status, 200);
    d.stop().await;
}

#[tokio::test]
async fn buckets_and_cluster_settings_round_trip() {
    let a = TestBackend::start("a").await;
    let d = start(&config(&[("a", a.url(), 10)])).await;
    let (status, body) = admin(
        &d,
        "POST",
        "/api/v1/clusters/c/buckets",
        Some(json!({ "name": "vip", "rate": 0.2, "ceil": 0.4, "match": { "path_prefix": "/vip" } })),
        None,
    )
    .await;
    assert_eq!(
        (status, body["assured"].as_u64(), body["ceiling"].as_u64()),
        (201, Some(2), Some(4)),
        "{body}"
    );
    let (status, body) = admin(
        &d,
        "PATCH",
        "/api/v1/clusters/c/buckets/vip",
        Some(json!({ "ceil": 0.6 })),
        None,
    )
    .await;
    assert_eq!((status, body["ceiling"].as_u64()), (200, Some(6)), "{body}");
    let (status, body) = admin(
        &d,
        "PATCH",
        "/api/v1/clusters/c",
        Some(json!({ "max_retry_count": 7 })),
        None,
    )
    .await;
    assert_eq!(
        (status, body["settings"]["max_retry_count"].as_u64()),
        (200, Some(7)),
        "{body}"
    );
    assert_eq!(d.cluster("c").settings.load().max_retry_count, 7);
    let (status, _) = admin(&d, "DELETE", "/api/v1/clusters/c/buckets/vip", None, None).await;
    assert_eq!(status, 200);
    let (_, buckets) = admin(&d, "GET", "/api/v1/clusters/c/buckets", None, None).await;
    assert!(
        buckets
            .as_array()
            .is_some_and(|b| b.iter().all(|b| b["name"] != "vip")),
        "{buckets}"
    );
    d.stop().await;
}

/// Splits a CSV line into fields (no quoted commas in these names).
fn fields(line: &str) -> Vec<&str> {
    line.split(',').collect()
}

#[tokio::test]
async fn haproxy_csv_matches_the_api() {
    let (a, b) = (TestBackend::start("a").await, TestBackend::start("b").await);
    let d = start(&config(&[("a", a.url(), 4), ("b", b.url(), 2)])).await;
    for _ in 0..6 {
        assert_eq!(get(&d.target(), "/").await.status, 200);
    }
    admin(
        &d,
        "PATCH",
        "/api/v1/clusters/c/backends/b",
        Some(json!({ "enabled": false })),
        None,
    )
    .await;
    let reply = admin_raw(&d, "GET", "/haproxy?stats;csv", None, None, &[]).await;
    assert_eq!(reply.status, 200);
    let text = reply.text();
    let mut lines = text.lines();
    let header = lines.next().expect("header");
    assert!(
        header.starts_with("# pxname,svname,qcur,qmax,scur,smax,slim,stot,"),
        "{header}"
    );
    let columns: Vec<&str> = fields(header.trim_start_matches("# "));
    let col = |name: &str| {
        columns
            .iter()
            .position(|c| *c == name)
            .unwrap_or_else(|| panic!("column {name}"))
    };
    let mut rows: HashMap<String, Vec<String>> = HashMap::new();
    for line in text.lines() {
        assert!(line.ends_with(','), "no trailing comma: {line}");
        assert_eq!(fields(line).len(), columns.len(), "column count: {line}");
        if !line.starts_with('#') {
            let f = fields(line);
            rows.insert(
                format!("{}/{}", f[0], f[1]),
                f.iter().map(|s| s.to_string()).collect(),
            );
        }
    }
    let api = admin(&d, "GET", "/api/v1/clusters/c", None, None).await.1;
    let api_backend = |name: &str| {
        api["backends"]
            .as_array()
            .and_then(|l| l.iter().find(|b| b["name"] == name))
            .cloned()
            .expect("backend in API")
    };
    let row_a = &rows["c/a"];
    assert_eq!(
        row_a[col("stot")],
        api_backend("a")["stats"]["in_flight"]["total"].to_string()
    );
    assert_eq!(row_a[col("slim")], "4");
    assert_eq!(row_a[col("type")], "2");
    assert_eq!(row_a[col("act")], "1");
    assert_eq!(rows["c/b"][col("status")], "MAINT");
    assert_eq!(rows["c/BACKEND"][col("type")], "1");
    assert_eq!(
        rows["c/BACKEND"][col("hrsp_2xx")],
        api["stats"]["responses"][1].to_string()
    );
    assert!(rows.contains_key("director/FRONTEND"), "{:?}", rows.keys());
    let html = admin_raw(&d, "GET", "/haproxy?stats", None, None, &[]).await;
    assert!(
        html.status == 200 && html.text().contains("<table"),
        "{}",
        html.status
    );
    let monitor = admin_raw(&d, "GET", "/haproxy/monitor", None, None, &[]).await;
    assert_eq!(monitor.status, 200);
    d.stop().await;
}

/// `/metrics` is valid Prometheus text: every sample's family has HELP and TYPE, names and
/// labels are well formed, counters end in `_total`, and values match the API.
#[tokio::test]
async fn metrics_are_valid_prometheus_text() {
    let a = TestBackend::start("a").await;
    let d = start(&config(&[("a", a.url(), 4)])).await;
    for _ in 0..5 {
        assert_eq!(get(&d.target(), "/").await.status, 200);
    }
    let reply = admin_raw(&d, "GET", "/metrics", None, None, &[]).await;
    assert_eq!(reply.status, 200);
    assert!(reply
        .header("content-type")
        .is_some_and(|t| t.starts_with("text/plain; version=0.0.4")));
    let text = reply.text();
    let mut types: HashMap<String, String> = HashMap::new();
    let mut helps = std::collections::HashSet::new();
    let mut samples: Vec<(String, String, f64)> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            helps.insert(rest.split(' ').next().unwrap_or_default().to_owned());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut p = rest.split(' ');
            let (name, kind) = (p.next().unwrap_or_default(), p.next().unwrap_or_default());
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            assert!(
                types.insert(name.to_owned(), kind.to_owned()).is_none(),
                "family twice: {line}"
            );
        } else if !line.is_empty() {
            let (series, value) = line.rsplit_once(' ').expect("name value");
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value: {line}"));
            let (name, labels) = match series.split_once('{') {
                Some((n, l)) => {
                    assert!(l.ends_with('}'), "{line}");
                    (n, l.trim_end_matches('}').to_owned())
                }
                None => (series, String::new()),
            };
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
                "bad name: {line}"
            );
            assert!(name.starts_with("director_"), "{line}");
            samples.push((name.to_owned(), labels, value));
        }
    }
    for (name, _, _) in &samples {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| types.get(*f).map(String::as_str) == Some("histogram"))
            })
            .unwrap_or(name);
        let kind = types.get(family).unwrap_or_else(|| panic!("no TYPE for {name}"));
        assert!(helps.contains(family), "no HELP for {family}");
        if kind == "counter" {
            assert!(family.ends_with("_total"), "counter without _total: {family}");
        }
    }
    let value = |name: &str, labels: &str| {
        samples
            .iter()
            .find(|(n, l, _)| n == name && l == labels)
            .map(|(_, _, v)| *v)
            .unwrap_or_else(|| panic!("no sample {name}{{{labels}}}"))
    };
    assert_eq!(
        value(
            "director_backend_responses_total",
            "cluster=\"c\",backend=\"a\",code=\"2xx\""
        ),
        5.0
    );
    assert_eq!(
        value("director_backend_capacity", "cluster=\"c\",backend=\"a\""),
        4.0
    );
    d.stop().await;
}

#[tokio::test]
async fn the_event_stream_sends_samples() {
    let a = TestBackend::start("a").await;
    let d = start(&config(&[("a", a.url(), 4)])).await;
    let mut sender = support::connect(&support::Target::Tcp(d.admin_addr())).await;
    let req = http::Request::get("/api/v1/events")
        .header("host", d.admin_addr().to_string())
        .body(http_body_util::Full::new(Bytes::new()))
        .expect("request");
    let res = sender.send_request(req).await.expect("response");
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .is_ok_and(|t| t.starts_with("text/event-stream")));
    let mut body = res.into_body();
    let mut seen = String::new();
    let read = async {
        while !seen.contains("data: {") {
            let frame = http_body_util::BodyExt::frame(&mut body)
                .await
                .expect("frame")
                .expect("ok");
            if let Ok(data) = frame.into_data() {
                seen.push_str(&String::from_utf8_lossy(&data));
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(5), read)
        .await
        .expect("a sample within 5 s");
    let line = seen.lines().find(|l| l.starts_with("data: ")).expect("data line");
    let sample: Value = serde_json::from_str(&line["data: ".len()..]).expect("json sample");
    assert_eq!(sample["clusters"][0]["name"], "c", "{sample}");
    let (status, history) = admin(&d, "GET", "/api/v1/history?window=5m", None, None).await;
    assert_eq!((status, history["step"].as_u64()), (200, Some(1)), "{history}");
    d.stop().await;
}
