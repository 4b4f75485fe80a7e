//! The live history survives a restart of the real binary: it is written beside the state file
//! at shutdown (SIGTERM) and read at start, so `/api/v1/history` answers with the earlier
//! run's samples; a corrupt history file is logged and ignored.

use crate::support;

use std::path::Path;

use bytes::Bytes;
use serde_json::Value;
use support::backend::TestBackend;
use support::binary::{Binary, Stream};
use support::{get, request, wait_until, Target};

fn config(dir: &Path, backend: &TestBackend) -> std::path::PathBuf {
    let yaml = format!(
        "proxy:\n  listen: [\"127.0.0.1:0\"]\n  workers: 1\n\
         admin:\n  listen: \"127.0.0.1:0\"\n\
         state_file: \"{}\"\n\
         routes:\n  - {{ cluster: c }}\n\
         clusters:\n  c:\n    backends:\n      - {{ name: a, url: \"{}\" }}\n",
        dir.join("state.json").display(),
        backend.url()
    );
    let path = dir.join("config.yaml");
    std::fs::write(&path, yaml).expect("write config");
    path
}

/// `GET /api/v1/history?window=15m` on the admin listener.
async fn history(admin: &Target) -> Value {
    let headers = [("host", "127.0.0.1")];
    let reply = request(admin, "GET", "/api/v1/history?window=15m", &headers, Bytes::new()).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    serde_json::from_slice(&reply.body).expect("JSON")
}

/// The times of the samples in which cluster `c` served requests.
fn busy_seconds(history: &Value) -> Vec<u64> {
    history["samples"]
        .as_array()
        .expect("samples")
        .iter()
        .filter(|s| s["clusters"][0]["rps"].as_f64().is_some_and(|r| r > 0.0))
        .filter_map(|s| s["at"].as_u64())
        .collect()
}

async fn start(config: &Path) -> (Binary, Target, Target) {
    let binary = Binary::with_config(config).await;
    let proxy = Target::Tcp(binary.listening("proxy").await);
    let admin = Target::Tcp(binary.listening("admin").await);
    (binary, proxy, admin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_survives_a_restart_and_a_corrupt_file_is_ignored() {
    let backend = TestBackend::start("a").await;
    let dir = support::temp_dir("live-history");
    let config = config(dir.path(), &backend);
    let file = dir.path().join("state.history.json");

    let (mut first, proxy, admin) = start(&config).await;
    let busy = wait_until("a sample with traffic", async || {
        assert_eq!(get(&proxy, "/").await.status, 200);
        let busy = busy_seconds(&history(&admin).await);
        (!busy.is_empty()).then_some(busy)
    })
    .await;
    first.signal("-TERM");
    assert!(first.exited().await.success());
    assert!(file.exists(), "written at shutdown");

    // The second run starts with the first run's samples.
    let (mut second, _proxy, admin) = start(&config).await;
    let restored = busy_seconds(&history(&admin).await);
    for at in &busy {
        assert!(
            restored.contains(at),
            "sample {at} of the first run restored: {restored:?}"
        );
    }
    second.signal("-TERM");
    assert!(second.exited().await.success());

    // A corrupt file: logged, ignored, and director serves.
    std::fs::write(&file, b"{\"version\": 1, \"seconds\": [tru").expect("corrupt it");
    let (third, proxy, admin) = start(&config).await;
    third
        .line("the corrupt history logged", Stream::Stderr, |l| {
            (l.contains("live history") && l.contains("corrupt")).then_some(())
        })
        .await;
    assert!(
        busy_seconds(&history(&admin).await).is_empty(),
        "nothing restored"
    );
    assert_eq!(get(&proxy, "/").await.status, 200);
}
