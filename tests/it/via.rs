//! A cluster's `via` pseudonym: the `Via` entry director adds to the request a backend sees,
//! to relayed and cached responses, and to its own answers for the cluster (default
//! `director`; answers for no cluster keep the default).

use crate::support;

use bytes::Bytes;
use support::backend::TestBackend;
use support::origin::Origin;
use support::{cluster_config, get, request, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clusters_pseudonym_is_its_via_entry() {
    let a = TestBackend::start("a").await;
    let origin = Origin::start().await;
    let mut yaml = cluster_config("via: edge-1", &[("a", a.url(), 0, "active")]);
    yaml = yaml.replace(
        "routes:\n  - { path_prefix: \"/\", cluster: c }\n",
        "routes:\n  - { path_prefix: \"/cached/\", cluster: cached }\n  - { path_prefix: \"/plain/\", cluster: plain }\n  \
         - { path_prefix: \"/\", cluster: c }\n",
    );
    yaml.push_str(&format!(
        "  cached:\n    via: cache-1\n    cache: {{ enabled: true }}\n    backends: [{{ name: o, url: \"{}\" }}]\n  \
         plain:\n    backends: [{{ name: off, url: \"{}\", enabled: false }}]\n",
        origin.url,
        a.url()
    ));
    yaml.push_str("admin: { listen: \"127.0.0.1:0\" }\n");
    let d = start(&yaml).await;

    // The request the backend sees, and the relayed response.
    let r = request(
        &d.target(),
        "GET",
        "/headers",
        &[("via", "1.0 fred")],
        Bytes::new(),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.text().contains("via: 1.0 fred, 1.1 edge-1"), "{}", r.text());
    assert_eq!(r.header("via"), Some("1.1 edge-1"));

    // A cached answer, from the store the second time.
    let path = "/cached/page?cc=max-age=60";
    for _ in 0..2 {
        let r = get(&d.target(), path).await;
        assert_eq!((r.status, r.header("via")), (200, Some("1.1 cache-1")));
    }
    assert_eq!(origin.hits(path), 1, "the second answer came from the cache");

    // director's own answer for a cluster: its pseudonym; for the default cluster, `director`.
    let (status, _) = support::admin(
        &d,
        "PATCH",
        "/api/v1/clusters/c/backends/a",
        Some(serde_json::json!({ "enabled": false })),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let r = get(&d.target(), "/anything").await;
    assert_eq!((r.status, r.header("via")), (503, Some("1.1 edge-1")));
    let r = get(&d.target(), "/plain/x").await;
    assert_eq!((r.status, r.header("via")), (503, Some("1.1 director")));
    d.stop().await;
}
