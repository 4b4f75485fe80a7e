//! Runtime lifecycle of clusters and routes through the JSON API: create and delete a
//! cluster, add / change / move / delete routes, each validated like `config.yaml` (bad input
//! changes nothing), in force for traffic at once, kept in the state file across a restart,
//! and merged with a reload of `config.yaml`. (The dashboard's controls are tested in
//! `dashboard_lifecycle.rs`.)

use crate::support;

use director::app::StartOptions;
use serde_json::{json, Value};
use support::backend::TestBackend;
use support::{admin, get, start_file, temp_dir, Director};

/// Cluster `a` over `backend`, one route `/` → `a`, a loopback admin listener, the state file
/// `state`, and `extra` appended (more clusters).
fn config(backend: &TestBackend, state: &std::path::Path, extra: &str) -> String {
    format!(
        "proxy: {{ listen: \"127.0.0.1:0\", workers: 2 }}\n\
         admin: {{ listen: \"127.0.0.1:0\" }}\n\
         state_file: \"{}\"\n\
         routes:\n  - {{ path_prefix: \"/\", cluster: a }}\n\
         clusters:\n  a:\n    backends:\n      - {{ name: a1, url: \"{}\" }}\n{extra}",
        state.display(),
        backend.url()
    )
}

/// The body the proxy answers `path` with (the test backends answer with their name).
async fn served_by(d: &Director, path: &str) -> String {
    let reply = get(&d.target(), path).await;
    assert_eq!(reply.status, 200, "{path}: {}", reply.text());
    reply.text()
}

/// `(path_prefix, cluster)` of each route, in order.
async fn route_list(d: &Director) -> Vec<(String, String)> {
    let (status, body) = admin(d, "GET", "/api/v1/routes", None, None).await;
    assert_eq!(status, 200, "{body}");
    let routes = body.as_array().expect("a list");
    routes
        .iter()
        .enumerate()
        .map(|(i, r)| {
            assert_eq!(r["index"], i, "{body}");
            let text = |k: &str| r[k].as_str().unwrap_or("").to_owned();
            (text("path_prefix"), text("cluster"))
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(p, c)| (p.to_string(), c.to_string())).collect()
}

async fn call(d: &Director, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    admin(d, method, path, body, None).await
}

#[tokio::test]
async fn clusters_and_routes_are_created_changed_and_deleted_at_runtime() {
    let (a, b) = (TestBackend::start("a1").await, TestBackend::start("b1").await);
    let dir = temp_dir("lifecycle-api");
    let (path, state) = (dir.path().join("config.yaml"), dir.path().join("state.json"));
    std::fs::write(&path, config(&a, &state, "")).expect("write config");
    let d = start_file(&path, StartOptions::default()).await;
    assert_eq!(served_by(&d, "/b/x").await, "a1");

    // Create a cluster with a backend, then a route to it appended after the catch-all.
    let (status, body) = call(
        &d,
        "POST",
        "/api/v1/clusters",
        Some(json!({ "name": "b", "queue_limit": 3, "backends": [{ "name": "b1", "url": b.url() }] })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["name"], "b", "{body}");
    assert_eq!(body["backends"][0]["name"], "b1", "{body}");
    let (status, body) = call(
        &d,
        "POST",
        "/api/v1/routes",
        Some(json!({ "path_prefix": "/b/", "cluster": "b" })),
    )
    .await;
    assert_eq!((status, &body["index"]), (201, &json!(1)), "{body}");
    // The catch-all still matches first.
    assert_eq!(served_by(&d, "/b/x").await, "a1");

    // Move it before the catch-all: now /b/ reaches the new cluster's backend.
    let (status, body) = call(&d, "POST", "/api/v1/routes/1/move", Some(json!({ "to": 0 }))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(route_list(&d).await, pairs(&[("/b/", "b"), ("/", "a")]));
    assert_eq!(served_by(&d, "/b/x").await, "b1");
    assert_eq!(served_by(&d, "/other").await, "a1");

    // Insert a route before another: /b/special/ goes to a again.
    let (status, body) = call(
        &d,
        "POST",
        "/api/v1/routes",
        Some(json!({ "index": 0, "path_prefix": "/b/special/", "cluster": "a" })),
    )
    .await;
    assert_eq!((status, &body["index"]), (201, &json!(0)), "{body}");
    assert_eq!(served_by(&d, "/b/special/x").await, "a1");
    assert_eq!(served_by(&d, "/b/x").await, "b1");

    // Change a route: retarget it.
    let (status, body) = call(&d, "PATCH", "/api/v1/routes/0", Some(json!({ "cluster": "b" }))).await;
    assert_eq!((status, &body["cluster"]), (200, &json!("b")), "{body}");
    assert_eq!(served_by(&d, "/b/special/x").await, "b1");

    // Delete it.
    let (status, body) = call(&d, "DELETE", "/api/v1/routes/0", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(route_list(&d).await, pairs(&[("/b/", "b"), ("/", "a")]));

    // A cluster a route points at is not deleted; the answer names the route.
    let (status, body) = call(&d, "DELETE", "/api/v1/clusters/b", None).await;
    assert_eq!((status, &body["error"]), (409, &json!("conflict")), "{body}");
    assert!(
        body["detail"].as_str().unwrap_or("").contains("routes[0]"),
        "{body}"
    );
    assert_eq!(served_by(&d, "/b/x").await, "b1", "nothing changed");

    // A request in flight at the cluster finishes after its route and the cluster are gone.
    let (status, body) = call(
        &d,
        "PATCH",
        "/api/v1/routes/0",
        Some(json!({ "path_prefix": "/hold" })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let held = {
        let target = d.target();
        tokio::spawn(async move { get(&target, "/hold").await })
    };
    b.wait_current(1).await;
    let (status, body) = call(&d, "DELETE", "/api/v1/routes/0", None).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(&d, "DELETE", "/api/v1/clusters/b", None).await;
    assert_eq!((status, &body["removed"]), (200, &json!(true)), "{body}");
    let (status, _) = call(&d, "GET", "/api/v1/clusters/b", None).await;
    assert_eq!(status, 404);
    b.release_holds();
    let held = held.await.expect("task");
    assert_eq!((held.status, held.text()), (200, "b1".to_owned()), "drained");
    assert_eq!(served_by(&d, "/b/x").await, "a1");
    d.settled("a").await;
    d.stop().await;
}

#[tokio::test]
async fn bad_changes_are_refused_with_the_loaders_error_and_change_nothing() {
    let a = TestBackend::start("a1").await;
    let dir = temp_dir("lifecycle-refusals");
    let (path, state) = (dir.path().join("config.yaml"), dir.path().join("state.json"));
    std::fs::write(&path, config(&a, &state, "")).expect("write config");
    let d = start_file(&path, StartOptions::default()).await;
    let (_, before) = call(&d, "GET", "/api/v1/status", None).await;

    let raw = support::admin_raw(&d, "POST", "/api/v1/routes", Some("{ not json".into()), None, &[]).await;
    assert_eq!(raw.status, 400, "{}", raw.text());
    assert!(raw.text().contains("invalid_json"), "{}", raw.text());

    let refusals: [(&str, &str, Value, u16, &str); 9] = [
        (
            "POST",
            "/api/v1/routes",
            json!({ "cluster": "nope" }),
            400,
            "routes[1].cluster",
        ),
        (
            "POST",
            "/api/v1/routes",
            json!({ "path_prefix": "x", "cluster": "a" }),
            400,
            "routes[1].path_prefix",
        ),
        (
            "POST",
            "/api/v1/routes",
            json!({ "index": 5, "cluster": "a" }),
            400,
            "past the end",
        ),
        (
            "PATCH",
            "/api/v1/routes/0",
            json!({ "cluster": "nope" }),
            400,
            "unknown cluster",
        ),
        (
            "PATCH",
            "/api/v1/routes/7",
            json!({ "cluster": "a" }),
            404,
            "no route 7",
        ),
        (
            "POST",
            "/api/v1/routes/0/move",
            json!({ "to": 3 }),
            400,
            "past the end",
        ),
        (
            "POST",
            "/api/v1/clusters",
            json!({ "name": "a" }),
            409,
            "already exists",
        ),
        (
            "POST",
            "/api/v1/clusters",
            json!({ "name": "bad name!" }),
            400,
            "invalid cluster name",
        ),
        (
            "POST",
            "/api/v1/clusters",
            json!({ "name": "n", "queue_limit": "x" }),
            400,
            "clusters.n.queue_limit",
        ),
    ];
    for (method, uri, body, want, says) in refusals {
        let (status, answer) = call(&d, method, uri, Some(body.clone())).await;
        assert_eq!(status, want, "{method} {uri} {body}: {answer}");
        assert!(answer.get("error").is_some(), "{answer}");
        assert!(
            answer["detail"].to_string().contains(says),
            "{method} {uri} {body}: {answer}"
        );
    }
    let (status, _) = call(&d, "DELETE", "/api/v1/clusters/nope", None).await;
    assert_eq!(status, 404);
    let (status, _) = call(&d, "DELETE", "/api/v1/routes/x", None).await;
    assert_eq!(status, 404);

    let (_, after) = call(&d, "GET", "/api/v1/status", None).await;
    assert_eq!(after["generation"], before["generation"], "nothing was applied");
    assert_eq!(route_list(&d).await, pairs(&[("/", "a")]));
    let (_, clusters) = call(&d, "GET", "/api/v1/clusters", None).await;
    assert_eq!(clusters.as_array().map(Vec::len), Some(1), "{clusters}");
    assert!(!state.exists(), "no state file written for refused changes");
    d.stop().await;
}

#[tokio::test]
async fn created_clusters_and_runtime_routes_survive_a_restart_and_a_reload() {
    let (a, b) = (TestBackend::start("a1").await, TestBackend::start("b1").await);
    let dir = temp_dir("lifecycle-persist");
    let (path, state) = (dir.path().join("config.yaml"), dir.path().join("state.json"));
    let gone = "  gone:\n    backends: []\n";
    std::fs::write(&path, config(&a, &state, gone)).expect("write config");
    let d = start_file(&path, StartOptions::default()).await;
    let create = json!({ "name": "b", "backends": [{ "name": "b1", "url": b.url() }] });
    assert_eq!(call(&d, "POST", "/api/v1/clusters", Some(create)).await.0, 201);
    let route = json!({ "index": 0, "path_prefix": "/b/", "cluster": "b" });
    assert_eq!(call(&d, "POST", "/api/v1/routes", Some(route)).await.0, 201);
    assert_eq!(call(&d, "DELETE", "/api/v1/clusters/gone", None).await.0, 200);
    // A created cluster is changed like any other.
    let settings = json!({ "queue_limit": 9 });
    assert_eq!(
        call(&d, "PATCH", "/api/v1/clusters/b", Some(settings)).await.0,
        200
    );
    d.stop().await;

    // Restart: the created cluster, the route list and the deletion are restored.
    let d = start_file(&path, StartOptions::default()).await;
    assert_eq!(route_list(&d).await, pairs(&[("/b/", "b"), ("/", "a")]));
    assert_eq!(served_by(&d, "/b/x").await, "b1");
    assert_eq!(call(&d, "GET", "/api/v1/clusters/gone", None).await.0, 404);
    let (_, b_state) = call(&d, "GET", "/api/v1/clusters/b", None).await;
    assert_eq!(b_state["settings"]["queue_limit"], 9, "{b_state}");

    // A reload of an edited config.yaml (a new cluster; routes and `gone` unchanged) keeps
    // them and adds the file's new cluster.
    std::fs::write(
        &path,
        config(&a, &state, &format!("{gone}  more:\n    backends: []\n")),
    )
    .expect("write config");
    let (status, body) = call(&d, "POST", "/api/v1/reload", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(route_list(&d).await, pairs(&[("/b/", "b"), ("/", "a")]));
    assert_eq!(served_by(&d, "/b/x").await, "b1");
    assert_eq!(call(&d, "GET", "/api/v1/clusters/more", None).await.0, 200);
    assert_eq!(call(&d, "GET", "/api/v1/clusters/gone", None).await.0, 404);

    // The file changes its routes: its list wins (the runtime route is gone, the cluster stays).
    let edited = config(&a, &state, gone).replace(
        "routes:\n",
        "routes:\n  - { path_prefix: \"/file/\", cluster: a }\n",
    );
    std::fs::write(&path, edited).expect("write config");
    let (status, body) = call(&d, "POST", "/api/v1/reload", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(route_list(&d).await, pairs(&[("/file/", "a"), ("/", "a")]));
    assert_eq!(served_by(&d, "/b/x").await, "a1");
    assert_eq!(call(&d, "GET", "/api/v1/clusters/b", None).await.0, 200);
    d.settled("a").await;
    d.stop().await;
}
