//! Tests of what a cluster says about its clients and backends beyond balancing: its `via`
//! pseudonym, `on_client_abort` and `upgrades`; a child of the loader tests, whose helpers it uses.

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

#[test]
fn upgrades_default_to_held_capacity_and_an_idle_timeout_of_a_minute() {
    let cluster = |upgrades: &str| format!("{MINIMAL}clusters:\n  c:\n    {upgrades}\n    backends: []\n");
    assert_eq!(ok(&cluster("")).clusters["c"].upgrades, UpgradesConfig::default());
    assert_eq!(
        UpgradesConfig::default(),
        UpgradesConfig {
            enabled: true,
            hold_capacity: true,
            idle_timeout: Duration::from_secs(60),
            max_lifetime: None,
        }
    );
    let set = ok(&cluster(
        "upgrades: { enabled: false, hold_capacity: false, idle_timeout: 5m, max_lifetime: 1h }",
    ));
    assert_eq!(
        set.clusters["c"].upgrades,
        UpgradesConfig {
            enabled: false,
            hold_capacity: false,
            idle_timeout: Duration::from_secs(300),
            max_lifetime: Some(Duration::from_secs(3600)),
        }
    );
    let unlimited = ok(&cluster("upgrades: { max_lifetime: 0s }"));
    assert_eq!(unlimited.clusters["c"].upgrades.max_lifetime, None);
    assert_eq!(
        one_error(&cluster("upgrades: { idle_timeout: 0s }")).0,
        "clusters.c.upgrades.idle_timeout"
    );
    assert_eq!(
        one_error(&cluster("upgrades: { timeout_tunnel: 1s }")).0,
        "clusters.c.upgrades.timeout_tunnel"
    );
}
