//! The control plane never stalls the data plane: with one worker — the arbiter that hosts the
//! Director actor and serves every proxied request — a burst of concurrent API changes (each
//! validated against the whole document and written to the state file with its fsyncs) leaves
//! proxied requests flowing. The Director does that work on the blocking pool and serialises
//! the changes; done inline, the burst's file writes would queue up in its mailbox and hold
//! the worker for about the whole burst.

use crate::support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::json;
use support::backend::TestBackend;
use support::{admin, get, start, temp_dir};

/// Runtime changes fired at once.
const CHANGES: usize = 120;
/// Backends of the cluster the changes edit: a sizeable document to validate and to write.
const BULK_BACKENDS: usize = 200;

/// One proxied request: when it started, how long it took.
struct Sample {
    started: Instant,
    took: Duration,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxied_requests_keep_flowing_during_a_burst_of_api_changes() {
    let app = TestBackend::start("app").await;
    let dir = temp_dir("latency");
    let state = dir.path().join("state.json");
    let mut yaml = format!(
        "proxy: {{ listen: \"127.0.0.1:0\", workers: 1 }}\n\
         admin: {{ listen: \"127.0.0.1:0\", max_connections: {} }}\n\
         state_file: \"{}\"\n\
         routes: [{{ cluster: c }}]\n\
         clusters:\n  c:\n    backends:\n      - {{ name: app, url: \"{}\" }}\n  bulk:\n    backends:\n",
        CHANGES + 16,
        state.display(),
        app.url()
    );
    for i in 0..BULK_BACKENDS {
        yaml.push_str(&format!(
            "      - {{ name: b{i}, url: \"{}\", capacity: 1 }}\n",
            app.url()
        ));
    }
    let d = start(&yaml).await;
    let target = d.target();
    assert_eq!(get(&target, "/").await.status, 200);
    let (_, before) = admin(&d, "GET", "/api/v1/status", None, None).await;
    let generation = before["generation"].as_u64().expect("generation");

    // Proxied requests, one after another, until the burst is over.
    let burst_over = Arc::new(AtomicBool::new(false));
    let traffic = {
        let (target, burst_over) = (target.clone(), burst_over.clone());
        tokio::spawn(async move {
            let mut samples = Vec::new();
            while !burst_over.load(Ordering::Acquire) {
                let started = Instant::now();
                let reply = get(&target, "/").await;
                assert_eq!(reply.status, 200, "{}", reply.text());
                samples.push(Sample {
                    started,
                    took: started.elapsed(),
                });
            }
            samples
        })
    };

    let burst_start = Instant::now();
    let changes = (0..CHANGES).map(|i| {
        let path = format!("/api/v1/clusters/bulk/backends/b{i}");
        let d = &d;
        async move { admin(d, "PATCH", &path, Some(json!({ "capacity": 2 })), None).await }
    });
    for (code, body) in join_all(changes).await {
        assert_eq!((code, &body["capacity"]), (200, &json!(2)), "{body}");
    }
    let burst = burst_start.elapsed();
    burst_over.store(true, Ordering::Release);
    let samples = traffic.await.expect("traffic task");

    let (_, after) = admin(&d, "GET", "/api/v1/status", None, None).await;
    assert_eq!(
        after["generation"].as_u64(),
        Some(generation + CHANGES as u64),
        "every change applied: {after:#}"
    );
    assert!(after["state_file_error"].is_null(), "{after:#}");
    let saved = std::fs::read_to_string(&state).expect("state file written");
    assert!(saved.contains("\"b0\""), "the changes are persisted");

    // Judged on the requests that started while the burst was in flight.
    let during: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.started >= burst_start && s.started < burst_start + burst)
        .collect();
    let slowest = during.iter().map(|s| s.took).max().unwrap_or_default();
    assert!(
        during.len() >= 5,
        "only {} proxied request(s) started during a {burst:?} burst of {CHANGES} changes",
        during.len()
    );
    assert!(
        slowest < burst / 4,
        "a proxied request took {slowest:?} during a {burst:?} burst of {CHANGES} changes"
    );
    d.settled("c").await;
    d.stop().await;
}
