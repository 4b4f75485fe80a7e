//! The access log's HAProxy-style fields against real backends: the timers (queue wait,
//! connect, response head, total) with plausible values, the backend and bucket that served
//! a request, its retries, and the termination state for a normal end, a queue timeout, a
//! backend that refuses connections or answers too late, in both the JSON and the combined
//! format. (A client that leaves while its backend works is `CH`, status 499: see
//! `client_abort.rs`; while queued, `CQ`: see the unit tests of `proxy::access_log`.)

use crate::support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::backend::{refusing_url, TestBackend};
use support::{cluster_config, eventually, get, start, Director};

/// `yaml` with an access log of `format` at `path`.
pub(crate) fn logged(mut yaml: String, format: &str, path: &std::path::Path) -> String {
    yaml.push_str(&format!(
        "access_log: {{ enabled: true, format: {format}, path: \"{}\" }}\n",
        path.display()
    ));
    yaml
}

/// The log's lines once it has `n`.
async fn lines(path: &std::path::Path, n: usize) -> Vec<String> {
    eventually(&format!("{n} access log lines"), || {
        std::fs::read_to_string(path).is_ok_and(|s| s.lines().count() >= n)
    })
    .await;
    let text = std::fs::read_to_string(path).expect("log");
    text.lines().map(str::to_owned).collect()
}

pub(crate) async fn json_lines(path: &std::path::Path, n: usize) -> Vec<Value> {
    let lines = lines(path, n).await;
    lines
        .iter()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

/// The line of the request for `path` (the request line's target).
fn for_path<'l>(lines: &'l [Value], path: &str) -> &'l Value {
    let request = format!("GET {path} HTTP/1.1");
    lines
        .iter()
        .find(|l| l["request"] == request.as_str())
        .unwrap_or_else(|| panic!("no line for {path}: {lines:#?}"))
}

fn ms(line: &Value, field: &str) -> f64 {
    line[field]
        .as_f64()
        .unwrap_or_else(|| panic!("{field} is not a number: {line}"))
}

fn queued(d: &Director, n: u32) -> bool {
    d.cluster("c").admission.buckets()[0].queued == n
}

/// Capacity 1, the first request held: the second waits in the queue for a measured time,
/// then is served; a third times out in the queue (`sQ`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_wait_and_queue_termination_states() {
    let a = TestBackend::start("a").await;
    let dir = support::temp_dir("timers");
    let log = dir.path().join("access.log");
    let settings = "queue_timeout: 300ms";
    let d = start(&logged(
        cluster_config(settings, &[("a", a.url(), 1, "active")]),
        "json",
        &log,
    ))
    .await;
    let target = d.target();

    // A holds the only slot; B queues behind it for at least `held`.
    let holder = tokio::spawn({
        let target = target.clone();
        async move { get(&target, "/hold").await }
    });
    a.wait_current(1).await;
    let waiter = tokio::spawn({
        let target = target.clone();
        async move { get(&target, "/sleep?ms=0").await }
    });
    eventually("B queued", || queued(&d, 1)).await;
    let queued_at = Instant::now();
    tokio::time::sleep(Duration::from_millis(150)).await; // the wait being measured
    a.release_holds();
    let held = queued_at.elapsed();
    assert_eq!(holder.await.expect("A").status, 200);
    assert_eq!(waiter.await.expect("B").status, 200);
    a.reset_holds();

    // C times out in the queue behind a held D.
    let holder = tokio::spawn({
        let target = target.clone();
        async move { get(&target, "/hold").await }
    });
    a.wait_current(1).await;
    let timed_out = get(&target, "/sleep?ms=1").await;
    assert_eq!(timed_out.status, 504);

    a.release_holds();
    assert_eq!(holder.await.expect("D").status, 200);

    let lines = json_lines(&log, 4).await;
    let a_line = for_path(&lines, "/hold");
    assert_eq!(a_line["termination"], "--");
    assert_eq!(a_line["backend"], "a");
    assert_eq!(a_line["bucket"], "root");
    assert_eq!(ms(a_line, "queue_ms"), 0.0, "A was admitted at once");
    assert!(
        ms(a_line, "ttfb_ms") >= 150.0,
        "A's head waited for the release: {a_line}"
    );
    assert!(ms(a_line, "duration_ms") >= ms(a_line, "ttfb_ms"));

    let b = for_path(&lines, "/sleep?ms=0");
    let floor = held.as_secs_f64() * 1000.0 - 5.0;
    assert!(
        ms(b, "queue_ms") >= 150.0_f64.min(floor),
        "B queued for {held:?}: {b}"
    );
    assert!(ms(b, "duration_ms") >= ms(b, "queue_ms"));
    assert!(ms(b, "connect_ms") >= 0.0 && ms(b, "ttfb_ms") >= 0.0);
    assert_eq!(
        (b["termination"].as_str(), b["retries"].as_u64()),
        (Some("--"), Some(0))
    );

    let c = for_path(&lines, "/sleep?ms=1");
    assert_eq!(
        (c["status"].as_u64(), c["termination"].as_str()),
        (Some(504), Some("sQ"))
    );
    assert!(ms(c, "queue_ms") >= 300.0, "{c}");
    assert!(c["connect_ms"].is_null() && c["ttfb_ms"].is_null(), "{c}");

    d.stop().await;
}

/// A refused connection is retried on the next backend (`retries` 1, normal end); with no
/// backend left the answer is a 502 with `SC`; a backend slower than `read_timeout` is `sH`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_and_backend_termination_states_in_the_combined_format() {
    let good = TestBackend::start("good").await;
    let refusing = refusing_url().await;
    let dir = support::temp_dir("timers");
    let log = dir.path().join("access.log");
    // `chance` fills the first backend first: the refusing one is always tried first.
    let settings = "scheduler: chance\nread_timeout: 200ms\nmax_retry_count: 1";
    let backends = [
        ("down", refusing.clone(), 4, "active"),
        ("good", good.url(), 4, "active"),
    ];
    let d = start(&logged(cluster_config(settings, &backends), "combined", &log)).await;
    assert_eq!(get(&d.target(), "/sleep?ms=1").await.status, 200);
    assert_eq!(get(&d.target(), "/sleep?ms=1000").await.status, 504);
    let lines = lines(&log, 2).await;
    let retried = lines
        .iter()
        .find(|l| l.contains("/sleep?ms=1 "))
        .expect("first line");
    assert!(
        retried.contains(" cluster=c backend=good bucket=root timers=0/"),
        "{retried}"
    );
    assert!(retried.ends_with(" retries=1 term=--"), "{retried}");
    let slow = lines
        .iter()
        .find(|l| l.contains("/sleep?ms=1000 "))
        .expect("second line");
    assert!(slow.contains("\" 504 "), "{slow}");
    assert!(slow.contains(" timers=0/-1/-1/"), "no response head: {slow}");
    assert!(slow.ends_with(" term=sH"), "{slow}");
    d.stop().await;

    let dir = support::temp_dir("timers");
    let log = dir.path().join("access.log");
    let backends = [("down", refusing, 4, "active")];
    let d = start(&logged(cluster_config("", &backends), "json", &log)).await;
    assert_eq!(get(&d.target(), "/x").await.status, 502);
    let line = &json_lines(&log, 1).await[0];
    assert_eq!(
        (line["termination"].as_str(), line["backend"].as_str()),
        (Some("SC"), Some("down"))
    );
    assert!(line["connect_ms"].is_null(), "{line}");
    d.stop().await;
}
