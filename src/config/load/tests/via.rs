//! Tests of a cluster's `via` pseudonym; a child of the loader tests, whose helpers it uses.

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
