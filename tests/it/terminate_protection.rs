//! `terminate_protection` on a backend: `DELETE` is refused with 403 and a clear message
//! until a `PATCH` turns it off, from `config.yaml` and from the API alike.

use crate::support;

use serde_json::json;
use support::backend::TestBackend;
use support::{admin, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protected_backend_is_deleted_only_after_protection_is_turned_off() {
    let (a, b) = (TestBackend::start("a").await, TestBackend::start("b").await);
    let yaml = format!(
        "proxy: {{ listen: \"127.0.0.1:0\", workers: 1 }}\nadmin: {{ listen: \"127.0.0.1:0\" }}\n\
         routes: [{{ cluster: c }}]\nclusters:\n  c:\n    backends:\n      \
         - {{ name: a, url: \"{}\", terminate_protection: true }}\n      - {{ name: b, url: \"{}\" }}\n",
        a.url(),
        b.url()
    );
    let d = start(&yaml).await;
    let backend = "/api/v1/clusters/c/backends/a";
    let (status, body) = admin(&d, "GET", backend, None, None).await;
    assert_eq!(
        (status, &body["terminate_protection"]),
        (200, &json!(true)),
        "{body}"
    );

    let (status, body) = admin(&d, "DELETE", backend, None, None).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "forbidden", "{body}");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("terminate_protection"), "{body}");
    let (status, _) = admin(&d, "GET", backend, None, None).await;
    assert_eq!(status, 200, "still there");

    // Set from the API too: protect `b`, and its DELETE is refused.
    let protect = json!({ "terminate_protection": true });
    let (status, body) = admin(&d, "PATCH", "/api/v1/clusters/c/backends/b", Some(protect), None).await;
    assert_eq!(
        (status, &body["terminate_protection"]),
        (200, &json!(true)),
        "{body}"
    );
    let (status, _) = admin(&d, "DELETE", "/api/v1/clusters/c/backends/b", None, None).await;
    assert_eq!(status, 403);

    // Off: the DELETE goes through.
    let off = json!({ "terminate_protection": false });
    let (status, body) = admin(&d, "PATCH", backend, Some(off), None).await;
    assert_eq!(
        (status, &body["terminate_protection"]),
        (200, &json!(false)),
        "{body}"
    );
    let (status, body) = admin(&d, "DELETE", backend, None, None).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = admin(&d, "GET", backend, None, None).await;
    assert_eq!(status, 404, "removed");

    // A bad value is refused like any bad input.
    let bad = json!({ "terminate_protection": "yes" });
    let (status, body) = admin(&d, "PATCH", "/api/v1/clusters/c/backends/b", Some(bad), None).await;
    assert_eq!(status, 400, "{body}");
    d.stop().await;
}
