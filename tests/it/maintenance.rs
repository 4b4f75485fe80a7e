//! The cluster-wide maintenance switch (`enabled` of a cluster): a disabled cluster answers
//! every request routed to it with 503 and `Retry-After` while its health checks keep
//! running; it is set in `config.yaml` or with `PATCH /api/v1/clusters/{c}`, shown in the
//! cluster's state, and a runtime switch survives a restart through the state file. (The
//! dashboard's button is tested in `dashboard.rs`.)

use crate::support;

use director::app::StartOptions;
use serde_json::json;
use support::backend::TestBackend;
use support::{admin, get, start_file, temp_dir, wait_until, Director};

/// One cluster `c` over `backend`, probed at `/health` every 50 ms, with `retry_after: 7`,
/// `extra` cluster lines, a loopback admin listener and the state file `state`.
fn config(backend: &TestBackend, extra: &str, state: &std::path::Path) -> String {
    format!(
        "proxy: {{ listen: \"127.0.0.1:0\", workers: 1 }}\n\
         admin: {{ listen: \"127.0.0.1:0\" }}\n\
         state_file: \"{}\"\n\
         routes:\n  - {{ cluster: c }}\n\
         clusters:\n  c:\n    retry_after: 7\n{extra}\
         \x20   health: {{ interval: 50ms, path: /health }}\n\
         \x20   backends:\n      - {{ name: b, url: \"{}\", capacity: 2 }}\n",
        state.display(),
        backend.url()
    )
}

/// Asserts that `/` is answered by the maintenance 503 with `Retry-After: 7`, and that the
/// backend saw none of it.
async fn answers_maintenance(d: &Director, backend: &TestBackend) {
    let hits = backend.hits();
    for _ in 0..5 {
        let reply = get(&d.target(), "/").await;
        assert_eq!(reply.status, 503, "{}", reply.text());
        assert_eq!(reply.header("retry-after"), Some("7"));
        assert!(reply.text().contains("maintenance"), "{}", reply.text());
    }
    assert_eq!(backend.hits(), hits, "nothing reaches a disabled cluster");
}

async fn cluster_enabled(d: &Director) -> serde_json::Value {
    let (status, body) = admin(d, "GET", "/api/v1/clusters/c", None, None).await;
    assert_eq!(status, 200, "{body}");
    body["settings"]["enabled"].clone()
}

#[tokio::test]
async fn a_disabled_cluster_answers_503_keeps_probing_and_the_switch_persists() {
    let backend = TestBackend::start("b").await;
    let dir = temp_dir("maintenance");
    let (path, state) = (dir.path().join("config.yaml"), dir.path().join("state.json"));

    // Disabled in config.yaml.
    std::fs::write(&path, config(&backend, "    enabled: false\n", &state)).expect("write config");
    let d = start_file(&path, StartOptions::default()).await;
    answers_maintenance(&d, &backend).await;
    assert_eq!(cluster_enabled(&d).await, json!(false));
    // Health checks keep running meanwhile.
    let probes = backend.probes();
    wait_until("probes while the cluster is disabled", async || {
        backend.probes() >= probes + 3
    })
    .await;
    d.settled("c").await;
    d.stop().await;

    // Enabled in config.yaml; switched off and on through the API.
    std::fs::write(&path, config(&backend, "", &state)).expect("write config");
    let d = start_file(&path, StartOptions::default()).await;
    assert_eq!(cluster_enabled(&d).await, json!(true));
    assert_eq!(get(&d.target(), "/").await.text(), "b");

    let (status, body) = admin(
        &d,
        "PATCH",
        "/api/v1/clusters/c",
        Some(json!({ "enabled": false })),
        None,
    )
    .await;
    assert_eq!(
        (status, &body["settings"]["enabled"]),
        (200, &json!(false)),
        "{body}"
    );
    answers_maintenance(&d, &backend).await;

    // A bad value is refused with its path and changes nothing.
    let (status, body) = admin(
        &d,
        "PATCH",
        "/api/v1/clusters/c",
        Some(json!({ "enabled": "no" })),
        None,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("clusters.c.enabled"), "{body}");
    assert_eq!(cluster_enabled(&d).await, json!(false));
    d.stop().await;

    // The runtime switch survives a restart (the state file is laid over config.yaml)...
    let d = start_file(&path, StartOptions::default()).await;
    assert_eq!(cluster_enabled(&d).await, json!(false));
    answers_maintenance(&d, &backend).await;

    // ...until an operator turns it back on; then requests flow again.
    let (status, body) = admin(
        &d,
        "PATCH",
        "/api/v1/clusters/c",
        Some(json!({ "enabled": true })),
        None,
    )
    .await;
    assert_eq!(
        (status, &body["settings"]["enabled"]),
        (200, &json!(true)),
        "{body}"
    );
    let hits = backend.hits();
    assert_eq!(get(&d.target(), "/").await.text(), "b");
    assert_eq!(backend.hits(), hits + 1);
    d.settled("c").await;
    d.stop().await;
}
