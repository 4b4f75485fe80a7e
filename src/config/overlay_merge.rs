//! Concurrent runtime changes of several replicas (control plane, pure): when the shared
//! overlay (the runtime changes every replica lays over `config.yaml`) changed elsewhere while
//! this replica had changes of its own not yet shared, [`merge_concurrent`] lays this
//! replica's changes over the shared overlay — per cluster, per setting and per backend —
//! instead of one overwriting the other.
//!
//! The three versions are compared as documents (each overlay laid over the same
//! `config.yaml`), so overlays that differ only in how they were recorded (their `base`
//! after a reload) agree. For each cluster this replica changed since `known` (the shared
//! overlay its own was made from), the merged cluster is the three-way merge of
//! [`merge_cluster`] with `known` as base, the shared version as runtime and this replica's as
//! the side whose changes win: a setting or backend changed here takes this replica's
//! version, one changed only elsewhere keeps the shared one, a backend removed here goes, one
//! added elsewhere stays. A cluster created or deleted here is created or deleted. The route
//! list, one value, is this replica's when it changed it.

use std::collections::BTreeSet;

use serde_json::Value;

use super::overlay::{cluster_of, merge_cluster, routes_of, Overlay};

/// `theirs` with the changes `ours` made since `known` laid over it (see the module docs).
pub fn merge_concurrent(known: &Overlay, ours: &Overlay, theirs: &Overlay, yaml: &Value) -> Overlay {
    let (k, o, t) = (known.apply(yaml), ours.apply(yaml), theirs.apply(yaml));
    let mut out = theirs.clone();
    let mut names = BTreeSet::new();
    for doc in [&k, &o, &t] {
        if let Some(clusters) = doc.get("clusters").and_then(Value::as_object) {
            names.extend(clusters.keys().cloned());
        }
    }
    for name in names {
        let (kc, oc, tc) = (
            cluster_of(&k, &name),
            cluster_of(&o, &name),
            cluster_of(&t, &name),
        );
        if oc == kc {
            continue;
        }
        let merged = match (kc, oc, tc) {
            (Some(kc), Some(oc), Some(tc)) => Some(merge_cluster(&kc, &tc, &oc)),
            (_, oc, _) => oc,
        };
        out.record(&name, cluster_of(yaml, &name), merged);
    }
    if routes_of(&o) != routes_of(&k) {
        out.record_routes(routes_of(yaml), routes_of(&o));
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn b(name: &str, capacity: u32) -> Value {
        json!({ "name": name, "url": format!("http://{name}:80"), "capacity": capacity })
    }

    fn yaml() -> Value {
        json!({ "proxy": {}, "routes": [{ "path_prefix": "/", "cluster": "c" }],
                "clusters": { "c": { "queue_limit": 1, "backends": [b("a", 1), b("b", 1)] },
                              "d": { "backends": [b("x", 1)] } } })
    }

    /// The overlay after changing cluster `name` of `from` (laid over the file) with `edit`.
    fn changed(from: &Overlay, name: &str, edit: impl FnOnce(&mut Value)) -> Overlay {
        let yaml = yaml();
        let mut cluster = cluster_of(&from.apply(&yaml), name).unwrap_or(json!({}));
        edit(&mut cluster);
        let mut out = from.clone();
        out.record(name, cluster_of(&yaml, name), Some(cluster));
        out
    }

    #[test]
    fn without_changes_here_the_shared_overlay_is_taken_as_it_is() {
        let known = Overlay::default();
        let theirs = changed(&known, "c", |c| c["queue_limit"] = json!(9));
        assert_eq!(merge_concurrent(&known, &known, &theirs, &yaml()), theirs);
        // Ours recorded differently but the same in effect: still theirs.
        let mut ours = known.clone();
        ours.record("d", cluster_of(&yaml(), "d"), cluster_of(&yaml(), "d"));
        assert_eq!(merge_concurrent(&known, &ours, &theirs, &yaml()), theirs);
    }

    #[test]
    fn changes_to_different_settings_and_backends_both_survive() {
        let known = Overlay::default();
        // Here: backend a disabled, backend n added. Elsewhere: queue_limit, backend b removed.
        let ours = changed(&known, "c", |c| {
            c["backends"][0]["enabled"] = json!(false);
            c["backends"].as_array_mut().unwrap().push(b("n", 2));
        });
        let theirs = changed(&known, "c", |c| {
            c["queue_limit"] = json!(7);
            c["backends"].as_array_mut().unwrap().remove(1);
        });
        let merged = merge_concurrent(&known, &ours, &theirs, &yaml()).apply(&yaml());
        let mut a = b("a", 1);
        a["enabled"] = json!(false);
        assert_eq!(
            merged["clusters"]["c"],
            json!({ "queue_limit": 7, "backends": [a, b("n", 2)] })
        );
    }

    #[test]
    fn the_same_setting_changed_on_both_sides_takes_this_replicas_value() {
        let known = Overlay::default();
        let ours = changed(&known, "c", |c| c["queue_limit"] = json!(3));
        let theirs = changed(&known, "c", |c| c["queue_limit"] = json!(4));
        let merged = merge_concurrent(&known, &ours, &theirs, &yaml()).apply(&yaml());
        assert_eq!(merged["clusters"]["c"]["queue_limit"], 3);
    }

    #[test]
    fn created_deleted_clusters_and_routes() {
        let known = Overlay::default();
        let mut ours = known.clone();
        ours.record("new", None, Some(json!({ "backends": [b("m", 1)] })));
        ours.record("d", cluster_of(&yaml(), "d"), None);
        let routes = vec![json!({ "path_prefix": "/", "cluster": "new" })];
        ours.record_routes(routes_of(&yaml()), routes.clone());
        let theirs = changed(&known, "c", |c| c["queue_limit"] = json!(5));
        let merged = merge_concurrent(&known, &ours, &theirs, &yaml()).apply(&yaml());
        assert_eq!(merged["clusters"]["c"]["queue_limit"], 5);
        assert!(merged["clusters"].get("d").is_none());
        assert_eq!(merged["clusters"]["new"], json!({ "backends": [b("m", 1)] }));
        assert_eq!(routes_of(&merged), routes);
    }
}
