//! Reloading `config.yaml` end to end: the file watcher (in-place edit, rename-replace,
//! Kubernetes ConfigMap symlink swap), `POST /api/v1/reload`, SIGHUP to the real binary, an
//! invalid edit that keeps the last good configuration, draining a removed backend with
//! requests in flight, and runtime changes persisted in the state file (restart, the file's
//! definition winning, a corrupt state file set aside).

use crate::support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use director::app::StartOptions;
use serde_json::{json, Value};
use support::backend::TestBackend;
use support::binary::Binary;
use support::{admin, eventually, get, start_file, temp_dir, wait_until, Director, Target};

/// A config on port 0 with a loopback admin listener, `top` as extra top-level lines, and one
/// cluster `c` (round-robin) with `settings` (YAML lines) over `backends` (name, url, capacity).
fn config(top: &str, settings: &str, backends: &[(&str, String, u32)]) -> String {
    let mut yaml = String::from(
        "proxy:\n  listen: [\"127.0.0.1:0\"]\n  workers: 1\nadmin: { listen: \"127.0.0.1:0\" }\n",
    );
    yaml.push_str(top);
    yaml.push_str("routes:\n  - { path_prefix: \"/\", cluster: c }\nclusters:\n  c:\n    scheduler: rr\n");
    for line in settings.lines().filter(|l| !l.trim().is_empty()) {
        yaml.push_str("    ");
        yaml.push_str(line.trim());
        yaml.push('\n');
    }
    yaml.push_str("    backends:\n");
    for (name, url, capacity) in backends {
        yaml.push_str(&format!(
            "      - {{ name: {name}, url: \"{url}\", capacity: {capacity} }}\n"
        ));
    }
    yaml
}

fn options(watch_config: bool) -> StartOptions {
    StartOptions {
        handle_signals: false,
        watch_config,
    }
}

/// Truncates and rewrites `path` in place (same inode), as most editors and `echo >` do.
fn write_in_place(path: &Path, yaml: &str) {
    std::fs::write(path, yaml).expect("write config");
}

/// `GET path` on the admin listener; asserts 200.
async fn admin_get(d: &Director, path: &str) -> Value {
    let (status, body) = admin(d, "GET", path, None, None).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

async fn status(d: &Director) -> Value {
    admin_get(d, "/api/v1/status").await
}

/// Polls `GET path` on the admin listener until `done` holds (10 s at most); the last answer.
async fn admin_until(d: &Director, path: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    wait_until(format!("{what} (GET {path})"), async || {
        let body = admin_get(d, path).await;
        if done(&body) {
            Ok(body)
        } else {
            Err(format!("{body:#}"))
        }
    })
    .await
}

/// The live (not draining) backend `name` of cluster `c` as the API shows it.
fn api_backend<'a>(cluster: &'a Value, name: &str) -> Option<&'a Value> {
    cluster["backends"]
        .as_array()?
        .iter()
        .find(|b| b["name"] == name && b["draining"] == false)
}

/// Sends requests to `/` until `backend` answers one (at most 20); its answer must be 200.
async fn reaches(d: &Director, backend: &TestBackend) {
    let before = backend.hits();
    for _ in 0..20 {
        let r = get(&d.target(), "/").await;
        assert_eq!(r.status, 200, "{}", r.text());
        if backend.hits() > before {
            assert_eq!(r.text(), backend.name(), "the answer comes from the backend hit");
            return;
        }
    }
    panic!("no traffic reached {} in 20 requests", backend.name());
}

/// 1. An in-place edit adding a backend: traffic reaches it, and the unchanged backend keeps
/// its identity (same `Arc<Backend>`) and its counters.
#[tokio::test]
async fn in_place_edit_adds_a_backend_and_keeps_the_unchanged_one() {
    let (a, b) = (TestBackend::start("a").await, TestBackend::start("b").await);
    let dir = temp_dir("reload-in-place");
    let path = dir.path().join("config.yaml");
    write_in_place(&path, &config("", "", &[("a", a.url(), 0)]));
    let d = start_file(&path, options(true)).await;

    for _ in 0..5 {
        let r = get(&d.target(), "/").await;
        assert_eq!((r.status, r.text().as_str()), (200, "a"));
    }
    let a_before = d.backend("c", "a");
    let stats_before = a_before.stats.snapshot();
    assert_eq!(stats_before.responses[1], 5, "{stats_before:?}");

    write_in_place(&path, &config("", "", &[("a", a.url(), 0), ("b", b.url(), 0)]));
    eventually("the watcher adds b", || d.cluster("c").backend("b").is_some()).await;

    let a_after = d.backend("c", "a");
    assert!(
        Arc::ptr_eq(&a_before, &a_after),
        "a kept its Backend (actor, pool)"
    );
    assert_eq!(
        a_after.stats.snapshot(),
        stats_before,
        "a's counters are untouched"
    );
    reaches(&d, &b).await;
    reaches(&d, &a).await;
    assert_eq!(
        d.backend("c", "a").stats.snapshot().responses[1],
        a.hits(),
        "a's counters kept counting across the reload"
    );
    let s = status(&d).await;
    assert_eq!(s["last_reload"]["trigger"], "watch", "{s:#}");
    assert_eq!(s["last_reload"]["ok"], true, "{s:#}");
    d.settled("c").await;
    d.stop().await;
}

/// 2. Writing a temporary file and renaming it over `config.yaml` changes cluster settings.
#[tokio::test]
async fn rename_over_the_file_changes_cluster_settings() {
    let a = TestBackend::start("a").await;
    let dir = temp_dir("reload-rename");
    let path = dir.path().join("config.yaml");
    let backends = [("a", a.url(), 0)];
    write_in_place(
        &path,
        &config("", "max_retry_count: 3\nqueue_limit: 128", &backends),
    );
    let d = start_file(&path, options(true)).await;
    let before = admin_get(&d, "/api/v1/clusters/c").await;
    assert_eq!(
        (
            &before["settings"]["max_retry_count"],
            &before["settings"]["queue_limit"]
        ),
        (&json!(3), &json!(128)),
        "{before:#}"
    );
    let a_before = d.backend("c", "a");

    let tmp = dir.path().join("config.yaml.tmp");
    std::fs::write(&tmp, config("", "max_retry_count: 1\nqueue_limit: 7", &backends)).expect("write");
    std::fs::rename(&tmp, &path).expect("rename");

    let after = admin_until(&d, "/api/v1/clusters/c", "the new settings", |c| {
        c["settings"]["max_retry_count"] == 1
    })
    .await;
    assert_eq!(after["settings"]["queue_limit"], 7, "{after:#}");
    assert!(Arc::ptr_eq(&a_before, &d.backend("c", "a")), "a is unchanged");
    assert_eq!(get(&d.target(), "/").await.status, 200);
    d.stop().await;
}

/// 3. A Kubernetes ConfigMap update: `config.yaml -> ..data/config.yaml`, and the kubelet
/// swaps `..data` to a new timestamped directory with an atomic rename of a symlink.
#[tokio::test]
async fn configmap_symlink_swap_is_applied() {
    use std::os::unix::fs::symlink;

    let (a, b) = (TestBackend::start("a").await, TestBackend::start("b").await);
    let dir = temp_dir("reload-configmap");
    let generation = |name: &str, yaml: &str| {
        std::fs::create_dir(dir.path().join(name)).expect("generation dir");
        std::fs::write(dir.path().join(name).join("config.yaml"), yaml).expect("write");
    };
    generation("..2026_01_02_10_00_00.1", &config("", "", &[("a", a.url(), 0)]));
    symlink("..2026_01_02_10_00_00.1", dir.path().join("..data")).expect("..data");
    symlink("..data/config.yaml", dir.path().join("config.yaml")).expect("config.yaml");
    let d = start_file(&dir.path().join("config.yaml"), options(true)).await;
    assert_eq!(get(&d.target(), "/").await.text(), "a");

    generation(
        "..2026_01_02_10_05_00.2",
        &config("", "", &[("a", a.url(), 0), ("b", b.url(), 0)]),
    );
    symlink("..2026_01_02_10_05_00.2", dir.path().join("..data_tmp")).expect("..data_tmp");
    std::fs::rename(dir.path().join("..data_tmp"), dir.path().join("..data")).expect("swap ..data");
    std::fs::remove_dir_all(dir.path().join("..2026_01_02_10_00_00.1")).expect("old generation");

    eventually("the watcher adds b", || d.cluster("c").backend("b").is_some()).await;
    reaches(&d, &b).await;
    let s = status(&d).await;
    assert_eq!(
        (&s["last_reload"]["trigger"], &s["last_reload"]["ok"]),
        (&json!("watch"), &json!(true)),
        "{s:#}"
    );
    d.stop().await;
}

/// 4. Without the watcher an edit waits for `POST /api/v1/reload`, which applies it and bumps
/// the generation.
#[tokio::test]
async fn api_reload_applies_an_edit_and_bumps_the_generation() {
    let (a, b) = (TestBackend::start("a").await, TestBackend::start("b").await);
    let dir = temp_dir("reload-api");
    let path = dir.path().join("config.yaml");
    write_in_place(&path, &config("", "", &[("a", a.url(), 0)]));
    let d = start_file(&path, options(false)).await;
    let before = status(&d).await;
    let generation = before["generation"].as_u64().expect("generation");
    assert!(before["last_reload"].is_null(), "{before:#}");

    // A second director on the same file, with the watcher: once it has applied the edit, the
    // edit was there to be seen, and `d` (no watcher) must not have applied it.
    let watching = start_file(&path, options(true)).await;
    write_in_place(&path, &config("", "", &[("a", a.url(), 0), ("b", b.url(), 0)]));
    eventually("the watching director applies the edit", || {
        watching.cluster("c").backend("b").is_some()
    })
    .await;
    assert!(d.cluster("c").backend("b").is_none(), "applied without a reload");
    watching.stop().await;

    let (code, body) = admin(&d, "POST", "/api/v1/reload", None, None).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["ok"], true, "{body}");
    let reloaded = body["generation"].as_u64().expect("generation");
    assert!(reloaded > generation, "{generation} -> {reloaded}");
    let after = status(&d).await;
    assert_eq!(after["generation"], reloaded, "{after:#}");
    assert_eq!(
        (&after["last_reload"]["trigger"], &after["last_reload"]["ok"]),
        (&json!("api"), &json!(true)),
        "{after:#}"
    );
    // The cluster's mailbox runs the change before this query.
    let cluster = admin_get(&d, "/api/v1/clusters/c").await;
    assert!(api_backend(&cluster, "b").is_some(), "{cluster:#}");
    assert!(d.cluster("c").backend("b").is_some(), "b is published");
    reaches(&d, &b).await;
    d.stop().await;
}

/// `GET path` on the real binary's admin listener at `admin`; asserts 200.
async fn binary_admin_get(admin: SocketAddr, path: &str) -> Value {
    let host = admin.to_string();
    let target = Target::Tcp(admin);
    let r = support::request(&target, "GET", path, &[("host", &host)], bytes::Bytes::new()).await;
    assert_eq!(r.status, 200, "GET {path}: {}", r.text());
    serde_json::from_slice(&r.body).expect("JSON")
}

/// 5. SIGHUP makes the real binary reload: the status shows the `signal` trigger, and an edit
/// made just before the signal is in force once the signal's reload is logged.
#[tokio::test]
async fn sighup_reloads_the_real_binary() {
    let (a, b) = (TestBackend::start("a").await, TestBackend::start("b").await);
    let dir = temp_dir("reload-sighup");
    let path = dir.path().join("config.yaml");
    write_in_place(&path, &config("", "", &[("a", a.url(), 0)]));
    let bin = Binary::with_config(&path).await;
    let proxy = Target::Tcp(bin.listening("proxy").await);
    let admin = bin.listening("admin").await;
    assert_eq!(get(&proxy, "/").await.text(), "a");
    let before = binary_admin_get(admin, "/api/v1/status").await;
    assert!(before["last_reload"].is_null(), "{before:#}");
    let generation = before["generation"].as_u64().expect("generation");

    // The file is unchanged, so only the signal can cause this reload.
    let from = bin.log_len();
    bin.signal("-HUP");
    let after = wait_until("a reload with the signal trigger", async || {
        let s = binary_admin_get(admin, "/api/v1/status").await;
        if s["last_reload"]["trigger"] == "signal" {
            Ok(s)
        } else {
            Err(format!("{s:#}"))
        }
    })
    .await;
    assert_eq!(after["last_reload"]["ok"], true, "{after:#}");
    assert!(after["generation"].as_u64() > Some(generation), "{after:#}");
    assert!(bin.logged_since(from, &["SIGHUP: reloading the configuration"]));

    // Edit, then signal at once: the signal's reload reads the edited file.
    let from = bin.log_len();
    write_in_place(&path, &config("", "", &[("a", a.url(), 0), ("b", b.url(), 0)]));
    bin.signal("-HUP");
    eventually("the signal's reload is logged", || {
        bin.logged_since(from, &["configuration reloaded from", "(signal)"])
    })
    .await;
    let cluster = binary_admin_get(admin, "/api/v1/clusters/c").await;
    assert!(api_backend(&cluster, "b").is_some(), "{cluster:#}");
    let hits = b.hits();
    for _ in 0..4 {
        assert_eq!(get(&proxy, "/").await.status, 200);
    }
    assert!(b.hits() > hits, "traffic reaches b");
}

/// 6. An invalid edit keeps the last good configuration serving and reports every error with
/// its path; a fixed edit applies and clears them.
#[tokio::test]
async fn invalid_edit_keeps_the_last_good_config_and_reports_errors() {
    let (a, b) = (TestBackend::start("a").await, TestBackend::start("b").await);
    let dir = temp_dir("reload-invalid");
    let path = dir.path().join("config.yaml");
    write_in_place(&path, &config("", "", &[("a", a.url(), 0)]));
    let d = start_file(&path, options(true)).await;
    let generation = status(&d).await["generation"].clone();

    let invalid = config(
        "",
        "bogus_setting: 1",
        &[("a", a.url(), 0), ("b", "ftp://127.0.0.1:21".into(), 0)],
    );
    write_in_place(&path, &invalid);
    // Waits for the reload of the complete file (not a read racing the rewrite).
    let s = admin_until(&d, "/api/v1/status", "the failed reload", |s| {
        s["last_reload"]["ok"] == false && s.to_string().contains("clusters.c.bogus_setting")
    })
    .await;
    let errors = s["last_reload"]["errors"].as_array().expect("errors");
    let paths: Vec<&str> = errors.iter().filter_map(|e| e["path"].as_str()).collect();
    for expected in ["clusters.c.bogus_setting", "clusters.c.backends[1].url"] {
        assert!(paths.contains(&expected), "no error at {expected}: {s:#}");
    }
    assert!(
        errors
            .iter()
            .all(|e| e["message"].as_str().is_some_and(|m| !m.is_empty())),
        "{s:#}"
    );
    assert_eq!(s["last_reload"]["trigger"], "watch");
    assert_eq!(s["generation"], generation, "nothing was applied");
    for _ in 0..4 {
        let r = get(&d.target(), "/").await;
        assert_eq!((r.status, r.text().as_str()), (200, "a"), "the old config serves");
    }
    assert!(d.cluster("c").backend("b").is_none());

    write_in_place(&path, &config("", "", &[("a", a.url(), 0), ("b", b.url(), 0)]));
    let s = admin_until(&d, "/api/v1/status", "the fixed reload", |s| {
        s["last_reload"]["ok"] == true
    })
    .await;
    assert_eq!(s["last_reload"]["errors"], json!([]), "{s:#}");
    reaches(&d, &b).await;
    d.stop().await;
}

/// 7. A reload removing a backend with requests in flight lets them finish; the removed backend
/// gets no new requests and is gone once drained.
#[tokio::test]
async fn reload_removing_a_busy_backend_drains_it() {
    let (a, b) = (TestBackend::start("a").await, TestBackend::start("b").await);
    let dir = temp_dir("reload-drain");
    let path = dir.path().join("config.yaml");
    write_in_place(&path, &config("", "", &[("a", a.url(), 0)]));
    let d = start_file(&path, options(false)).await;

    let held: Vec<_> = (0..3)
        .map(|_| {
            let target = d.target();
            tokio::spawn(async move { get(&target, "/hold").await })
        })
        .collect();
    a.wait_current(3).await;

    write_in_place(&path, &config("", "", &[("b", b.url(), 0)]));
    let (code, body) = admin(&d, "POST", "/api/v1/reload", None, None).await;
    assert_eq!(code, 200, "{body}");
    // The cluster's mailbox runs the change before this query.
    let state = admin_get(&d, "/api/v1/clusters/c").await;
    let a_state = state["backends"]
        .as_array()
        .and_then(|list| list.iter().find(|b| b["name"] == "a"));
    assert_eq!(a_state.map(|a| &a["draining"]), Some(&json!(true)), "{state:#}");
    assert!(api_backend(&state, "b").is_some(), "{state:#}");
    let cluster = d.cluster("c");
    assert!(cluster.backend("a").is_none(), "a is no longer a member");

    for _ in 0..6 {
        let r = get(&d.target(), "/").await;
        assert_eq!((r.status, r.text().as_str()), (200, "b"), "new requests go to b");
    }
    assert_eq!(a.hits(), 3, "a got no new requests");
    assert!(held.iter().all(|h| !h.is_finished()), "held requests still wait");

    a.release_holds();
    for h in held {
        let r = h.await.expect("held request");
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, "a"),
            "the request in flight completed"
        );
    }
    eventually("a is drained and removed", || {
        cluster.statuses.load().iter().all(|s| s.name != "a")
    })
    .await;
    d.settled("c").await;
    assert_eq!(a.hits(), 3, "a got no new requests");
    d.stop().await;
}

/// 8. Runtime changes survive a restart through the state file; a backend `config.yaml` then
/// declares under the same name replaces the runtime one.
#[tokio::test]
async fn runtime_changes_persist_and_the_file_wins_for_a_backend_it_declares() {
    let (a, b, b2) = (
        TestBackend::start("a").await,
        TestBackend::start("b").await,
        TestBackend::start("b2").await,
    );
    let dir = temp_dir("reload-persist");
    let path = dir.path().join("config.yaml");
    let state = dir.path().join("state.json");
    let top = format!("state_file: \"{}\"\n", state.display());
    write_in_place(&path, &config(&top, "", &[("a", a.url(), 1)]));

    let d = start_file(&path, options(false)).await;
    let (code, body) = admin(
        &d,
        "POST",
        "/api/v1/clusters/c/backends",
        Some(json!({ "name": "b", "url": b.url(), "capacity": 3 })),
        None,
    )
    .await;
    assert_eq!(code, 201, "{body}");
    let (code, body) = admin(
        &d,
        "PATCH",
        "/api/v1/clusters/c/backends/a",
        Some(json!({ "capacity": 5 })),
        None,
    )
    .await;
    assert_eq!((code, &body["capacity"]), (200, &json!(5)), "{body}");
    assert!(state.exists(), "the state file is written");
    d.stop().await;

    // Restart from the same file: the runtime changes are back.
    let d = start_file(&path, options(false)).await;
    let cluster = admin_get(&d, "/api/v1/clusters/c").await;
    let rb = api_backend(&cluster, "b").unwrap_or_else(|| panic!("b restored: {cluster:#}"));
    assert_eq!(
        (&rb["url"], &rb["capacity"]),
        (&json!(b.url()), &json!(3)),
        "{rb:#}"
    );
    let ra = api_backend(&cluster, "a").expect("a");
    assert_eq!(ra["capacity"], 5, "the patched capacity holds: {ra:#}");
    let s = status(&d).await;
    assert!(s["state_file_error"].is_null(), "{s:#}");
    reaches(&d, &b).await;

    // config.yaml now declares b itself, elsewhere: the file's definition wins on reload.
    write_in_place(&path, &config(&top, "", &[("a", a.url(), 1), ("b", b2.url(), 2)]));
    let (code, body) = admin(&d, "POST", "/api/v1/reload", None, None).await;
    assert_eq!(code, 200, "{body}");
    let cluster = admin_get(&d, "/api/v1/clusters/c").await;
    let fb = api_backend(&cluster, "b").expect("b");
    assert_eq!(
        (&fb["url"], &fb["capacity"]),
        (&json!(b2.url()), &json!(2)),
        "{fb:#}"
    );
    let ra = api_backend(&cluster, "a").expect("a");
    assert_eq!(
        ra["capacity"], 5,
        "a, unchanged in the file, keeps its runtime capacity"
    );
    let old_b_hits = b.hits();
    reaches(&d, &b2).await;
    for _ in 0..4 {
        assert_eq!(get(&d.target(), "/").await.status, 200);
    }
    assert_eq!(
        b.hits(),
        old_b_hits,
        "the runtime b's address gets no more traffic"
    );
    d.settled("c").await;
    d.stop().await;

    // And that outcome is what the state file now holds.
    let d = start_file(&path, options(false)).await;
    let cluster = admin_get(&d, "/api/v1/clusters/c").await;
    assert_eq!(api_backend(&cluster, "b").expect("b")["url"], json!(b2.url()));
    assert_eq!(api_backend(&cluster, "a").expect("a")["capacity"], 5);
    d.stop().await;
}

/// 9. A corrupt state file is set aside: director serves `config.yaml`, reports the problem,
/// and the next runtime change writes a good state file again.
#[tokio::test]
async fn corrupt_state_file_is_set_aside() {
    let a = TestBackend::start("a").await;
    let dir = temp_dir("reload-corrupt");
    let path = dir.path().join("config.yaml");
    let state = dir.path().join("state.json");
    let garbage = b"{ \"clusters\": not json \x00\xff";
    std::fs::write(&state, garbage).expect("write garbage");
    let top = format!("state_file: \"{}\"\n", state.display());
    write_in_place(&path, &config(&top, "", &[("a", a.url(), 1)]));

    let d = start_file(&path, options(false)).await;
    let r = get(&d.target(), "/").await;
    assert_eq!((r.status, r.text().as_str()), (200, "a"), "config.yaml serves");
    let s = status(&d).await;
    let error = s["state_file_error"].as_str().unwrap_or_else(|| panic!("{s:#}"));
    assert!(
        error.contains("corrupt") && error.contains(&state.display().to_string()),
        "{error}"
    );
    let set_aside: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("state.json.corrupt-"))
        })
        .collect();
    assert_eq!(set_aside.len(), 1, "{set_aside:?}");
    assert_eq!(
        std::fs::read(&set_aside[0]).expect("read"),
        garbage,
        "kept as it was"
    );
    assert!(error.contains(&set_aside[0].display().to_string()), "{error}");
    assert!(!state.exists(), "the corrupt file was moved, not left in place");

    // The next runtime change writes a good state file and clears the error.
    let (code, body) = admin(
        &d,
        "PATCH",
        "/api/v1/clusters/c/backends/a",
        Some(json!({ "capacity": 2 })),
        None,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let s = status(&d).await;
    assert!(s["state_file_error"].is_null(), "{s:#}");
    let saved: Value =
        serde_json::from_slice(&std::fs::read(&state).expect("state file")).expect("the state file is JSON");
    assert!(saved["clusters"]["c"].is_object(), "{saved:#}");
    d.stop().await;
}
