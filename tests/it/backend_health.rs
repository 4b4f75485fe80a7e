//! Health checks of a backend's own (`health` on a backend, its keys over the cluster's): the
//! backend is probed at its own path and interval, from `config.yaml` and when the API adds or
//! changes it, while the others keep the cluster's checks.

use crate::support;

use serde_json::json;
use support::backend::TestBackend;
use support::{admin, get, start, wait_until, Director};

/// The cluster's checks fail (`/status?code=503`, once every 10 s, `fall: 1`); `own` is
/// probed at `/health` every 50 ms.
fn config(plain: &TestBackend, own: &TestBackend) -> String {
    format!(
        "proxy: {{ listen: \"127.0.0.1:0\", workers: 1 }}\n\
         admin: {{ listen: \"127.0.0.1:0\" }}\n\
         routes:\n  - {{ cluster: c }}\n\
         clusters:\n  c:\n\
         \x20   health: {{ path: \"/status?code=503\", interval: 10s, fall: 1, rise: 1 }}\n\
         \x20   backends:\n\
         \x20     - {{ name: plain, url: \"{}\" }}\n\
         \x20     - {{ name: own, url: \"{}\", health: {{ path: /health, interval: 50ms }} }}\n",
        plain.url(),
        own.url()
    )
}

async fn health_of(d: &Director, backend: &str) -> serde_json::Value {
    let (status, body) = admin(
        d,
        "GET",
        &format!("/api/v1/clusters/c/backends/{backend}"),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["health"].clone()
}

#[tokio::test]
async fn a_backend_with_its_own_checks_is_probed_at_its_path_and_interval() {
    let (plain, own) = (TestBackend::start("plain").await, TestBackend::start("own").await);
    let d = start(&config(&plain, &own)).await;

    // `plain` fails the cluster's probe and goes offline; `own` answers its own probes (many
    // of them: the cluster's interval would allow one) and stays online.
    wait_until("plain offline", async || {
        health_of(&d, "plain").await == "offline"
    })
    .await;
    wait_until("own probed at /health every 50 ms", async || own.probes() >= 5).await;
    assert_eq!(
        plain.probes(),
        0,
        "plain is probed at the cluster's path, not /health"
    );
    assert_eq!(health_of(&d, "own").await, "online");
    let own_hits = own.hits();
    for _ in 0..4 {
        assert_eq!(get(&d.target(), "/").await.text(), "own");
    }
    assert_eq!(
        own.hits(),
        own_hits + 4,
        "own's probes never hit the cluster's path"
    );

    // The API gives `plain` checks of its own: it is probed at /health and comes back.
    let patch = json!({ "health": { "path": "/health", "interval": "50ms" } });
    let (status, body) = admin(
        &d,
        "PATCH",
        "/api/v1/clusters/c/backends/plain",
        Some(patch),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    wait_until("plain probed at /health", async || plain.probes() >= 2).await;
    wait_until("plain online", async || health_of(&d, "plain").await == "online").await;

    // A backend added with checks of its own is probed there too.
    let added = TestBackend::start("added").await;
    let new =
        json!({ "name": "added", "url": added.url(), "health": { "path": "/health", "interval": "50ms" } });
    let (status, body) = admin(&d, "POST", "/api/v1/clusters/c/backends", Some(new), None).await;
    assert_eq!(status, 201, "{body}");
    wait_until("added probed at /health", async || added.probes() >= 2).await;

    // Bad settings are refused with their path, like the cluster's, and change nothing.
    let bad = json!({ "health": { "interval": "0s", "expect": [99] } });
    let (status, body) = admin(&d, "PATCH", "/api/v1/clusters/c/backends/own", Some(bad), None).await;
    assert_eq!(status, 400, "{body}");
    let text = body.to_string();
    assert!(
        text.contains("clusters.c.backends[1].health.interval")
            && text.contains("clusters.c.backends[1].health.expect[0]"),
        "{body:#}"
    );
    let probes = own.probes();
    wait_until("own still probed every 50 ms", async || {
        own.probes() >= probes + 3
    })
    .await;
    d.settled("c").await;
    d.stop().await;
}
