//! Tests of what a cluster says about its clients and backends beyond balancing: its `via`
//! pseudonym and `on_client_abort`; a child of the loader tests, whose helpers it uses.

use super::*;

#[test]
fn a_clusters_via_pseudonym_is_a_token() {
    let cluster = |via: &str| format!("{MINIMAL}clusters:\n  c:\n    via: {via}\n    backends: []\n");
    assert_eq!(
        ok(&cluster("edge-1.example_a")).clusters["c"].via,
        "edge-1.example_a"
    );
    let (path, message) = one_error(&cluster("\"two words\""));
    assert_eq!(path, "clusters.c.via");
    assert!(message.contains("pseudonym"), "{message}");
    assert_eq!(one_error(&cluster("\"\"")).0, "clusters.c.via");
}

#[test]
fn on_client_abort_is_one_of_three_modes() {
    let cluster =
        |mode: &str| format!("{MINIMAL}clusters:\n  c:\n    on_client_abort: {mode}\n    backends: []\n");
    assert_eq!(
        ok(&cluster("ignore")).clusters["c"].on_client_abort,
        OnClientAbort::Ignore
    );
    assert_eq!(
        ok(&cluster("notify")).clusters["c"].on_client_abort,
        OnClientAbort::Notify
    );
    let (path, message) = one_error(&cluster("sometimes"));
    assert_eq!(path, "clusters.c.on_client_abort");
    assert!(message.contains("close"), "{message}");
}
