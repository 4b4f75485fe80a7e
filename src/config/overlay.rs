//! Runtime changes laid over `config.yaml` (control plane, pure): the content of the state
//! file and the three-way merge that decides, per cluster, per cluster setting, per backend
//! and for the route list, whether the runtime version or the file's version wins.
//!
//! For each cluster changed, created or deleted at runtime the overlay keeps `base` (the
//! cluster as `config.yaml` declared it when the change was made; absent when the file had no
//! such cluster) and `runtime` (the cluster as changed; absent when deleted at runtime). Laid
//! over the current file (`yaml`):
//! - a cluster changed at runtime that the file no longer declares is gone (the file removed
//!   it); one it still declares is merged setting by setting:
//!   - a setting (any key but `backends`) the file changed since `base` takes the file's
//!     value, otherwise the runtime value;
//!   - a backend the file newly declares or changed since `base` takes the file's definition
//!     ("a backend that config.yaml newly declares under the same name replaces the runtime
//!     one"); one the file no longer declares but did in `base` is gone; otherwise the runtime
//!     version (added, changed, or removed at runtime) stays;
//! - a cluster created at runtime stays, unless the file now declares one of the same name:
//!   then the file's definition wins;
//! - a cluster deleted at runtime stays deleted while the file's definition is the one it was
//!   deleted from; when the file changes that definition, the file's cluster comes back.
//!
//! The route list is one value: the overlay keeps `base` (the file's `routes` when the list
//! was last changed at runtime) and `runtime` (the list as changed). If the file's routes
//! changed since `base`, the file's list wins, otherwise the runtime list.
//!
//! When the merged document is not valid (say, a runtime route names a cluster the file has
//! since removed), the Director drops the runtime changes and runs on the file alone.
//!
//! Documents are the JSON trees of the YAML, before `${VAR}` expansion.
//!
//! State file format: version 2 added created and deleted clusters (`base` or `runtime`
//! absent) and `routes`; a version 1 file (every entry with both) reads unchanged.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// The state file's content: runtime changes by cluster name, and of the route list.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overlay {
    /// Format version of the state file.
    pub version: u32,
    pub clusters: BTreeMap<String, ClusterOverlay>,
    /// The route list as changed at runtime, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routes: Option<RoutesOverlay>,
}

/// One cluster's runtime version and the file version it was made from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterOverlay {
    /// The file's definition when the change was made; `None`: the file had no such cluster
    /// (created at runtime).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub base: Option<Value>,
    /// The cluster as changed; `None`: deleted at runtime.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub runtime: Option<Value>,
}

/// The route list as changed at runtime and the file's list it was changed from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutesOverlay {
    pub base: Vec<Value>,
    pub runtime: Vec<Value>,
}

/// A key that is present is `Some`, even when it is `null` (a YAML cluster `name:` with no
/// settings); only an absent key is `None`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// The state file format written by this version.
pub const VERSION: u32 = 2;

/// The cluster `name` of `document`, if it declares one.
pub fn cluster_of(document: &Value, name: &str) -> Option<Value> {
    document.get("clusters")?.get(name).cloned()
}

/// The route list of `document` (absent or `null`: none).
pub fn routes_of(document: &Value) -> Vec<Value> {
    document
        .get("routes")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

impl Overlay {
    /// Records that cluster `name` is now `runtime` (`None`: deleted), made from the file's
    /// `base` (`None`: the file has no such cluster).
    pub fn record(&mut self, name: &str, base: Option<Value>, runtime: Option<Value>) {
        self.version = VERSION;
        if base == runtime {
            self.clusters.remove(name);
        } else {
            self.clusters
                .insert(name.to_owned(), ClusterOverlay { base, runtime });
        }
    }

    /// Records that the route list is now `runtime`, changed from the file's `base`.
    pub fn record_routes(&mut self, base: Vec<Value>, runtime: Vec<Value>) {
        self.version = VERSION;
        self.routes = (base != runtime).then_some(RoutesOverlay { base, runtime });
    }

    /// Whether there are no runtime changes at all.
    pub fn is_empty(&self) -> bool {
        self.clusters.is_empty() && self.routes.is_none()
    }

    /// The document `yaml` with the runtime changes laid over it (see the module docs).
    pub fn apply(&self, yaml: &Value) -> Value {
        let mut doc = yaml.clone();
        let Some(root) = doc.as_object_mut() else {
            return doc;
        };
        if let Some(routes) = &self.routes {
            if routes_of(yaml) == routes.base {
                root.insert("routes".to_owned(), Value::Array(routes.runtime.clone()));
            }
        }
        if self.clusters.is_empty() {
            return doc;
        }
        let slot = root
            .entry("clusters")
            .or_insert_with(|| Value::Object(Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        let Some(clusters) = slot.as_object_mut() else {
            return doc;
        };
        for (name, change) in &self.clusters {
            let merged = merge_entry(change.base.as_ref(), change.runtime.as_ref(), clusters.get(name));
            match merged {
                Some(cluster) => clusters.insert(name.clone(), cluster),
                None => clusters.remove(name),
            };
        }
        doc
    }

    /// After a reload: every entry's base becomes the file's current version and its runtime
    /// the merged result, so the next merge starts from here. Entries that no longer differ
    /// (such as clusters the file removed) are dropped.
    pub fn rebase(&mut self, yaml: &Value, merged: &Value) {
        let names: Vec<String> = self.clusters.keys().cloned().collect();
        for name in names {
            self.record(&name, cluster_of(yaml, &name), cluster_of(merged, &name));
        }
        if self.routes.is_some() {
            self.record_routes(routes_of(yaml), routes_of(merged));
        }
    }
}

/// One cluster after the merge, from its `base`, `runtime` and current file (`yaml`)
/// versions, each `None` where there is no such cluster (see the module docs).
fn merge_entry(base: Option<&Value>, runtime: Option<&Value>, yaml: Option<&Value>) -> Option<Value> {
    match (base, runtime, yaml) {
        // Changed at runtime and still in the file: merged.
        (Some(b), Some(r), Some(y)) => Some(merge_cluster(b, r, y)),
        // The file removed it since.
        (Some(_), _, None) => None,
        // Deleted at runtime: stays deleted unless the file changed its definition since.
        (Some(b), None, Some(y)) => (y != b).then(|| y.clone()),
        // Created at runtime; once the file declares one of that name, the file's wins.
        (None, _, Some(y)) => Some(y.clone()),
        (None, r, None) => r.cloned(),
    }
}

/// The three-way merge of one cluster (see the module docs).
pub fn merge_cluster(base: &Value, runtime: &Value, yaml: &Value) -> Value {
    let empty = Map::new();
    let (b, r, y) = (
        base.as_object().unwrap_or(&empty),
        runtime.as_object().unwrap_or(&empty),
        yaml.as_object().unwrap_or(&empty),
    );
    let mut out = Map::new();
    let keys = y.keys().chain(r.keys()).filter(|k| *k != "backends");
    for key in keys {
        if out.contains_key(key) {
            continue;
        }
        let value = if y.get(key) != b.get(key) {
            y.get(key)
        } else {
            r.get(key)
        };
        if let Some(v) = value {
            out.insert(key.clone(), v.clone());
        }
    }
    let backends = merge_backends(list(b), list(r), list(y));
    if !backends.is_empty() || y.contains_key("backends") || r.contains_key("backends") {
        out.insert("backends".to_owned(), Value::Array(backends));
    }
    Value::Object(out)
}

fn list(cluster: &Map<String, Value>) -> &[Value] {
    cluster
        .get("backends")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn name_of(backend: &Value) -> Option<&str> {
    backend.get("name").and_then(Value::as_str)
}

fn find<'a>(list: &'a [Value], name: &str) -> Option<&'a Value> {
    list.iter().find(|b| name_of(b) == Some(name))
}

/// Backends in runtime order, then the file's new ones in file order.
fn merge_backends(base: &[Value], runtime: &[Value], yaml: &[Value]) -> Vec<Value> {
    let mut out = Vec::new();
    for r in runtime {
        let Some(name) = name_of(r) else { continue };
        match (find(yaml, name), find(base, name)) {
            // Unchanged in the file since the change: the runtime version stays.
            (Some(y), Some(b)) if y == b => out.push(r.clone()),
            // Newly declared or changed in the file: the file wins.
            (Some(y), _) => out.push(y.clone()),
            // Removed from the file.
            (None, Some(_)) => {}
            // Added at runtime.
            (None, None) => out.push(r.clone()),
        }
    }
    for y in yaml {
        let Some(name) = name_of(y) else { continue };
        if find(runtime, name).is_some() {
            continue;
        }
        // Absent at runtime: removed at runtime (and unchanged in the file), or new in the file.
        if find(base, name) != Some(y) {
            out.push(y.clone());
        }
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

    #[test]
    fn runtime_changes_survive_an_unchanged_file() {
        let base = json!({ "queue_limit": 10, "backends": [b("a", 1), b("b", 1)] });
        let runtime = json!({ "queue_limit": 20, "backends": [b("a", 5), b("c", 2)] });
        assert_eq!(merge_cluster(&base, &runtime, &base), runtime);
    }

    #[test]
    fn the_file_wins_where_it_changed() {
        let base = json!({ "queue_limit": 10, "retry_after": 5, "backends": [b("a", 1), b("b", 1)] });
        let runtime = json!({ "queue_limit": 20, "retry_after": 5, "backends": [b("a", 5), b("c", 2)] });
        // The file changes queue_limit, redefines a, declares c itself and adds d.
        let yaml = json!({ "queue_limit": 30, "retry_after": 5,
                           "backends": [b("a", 9), b("b", 1), b("c", 7), b("d", 1)] });
        let merged = merge_cluster(&base, &runtime, &yaml);
        assert_eq!(
            merged,
            json!({ "queue_limit": 30, "retry_after": 5, "backends": [b("a", 9), b("c", 7), b("d", 1)] })
        );
    }

    #[test]
    fn a_backend_removed_from_the_file_goes_even_if_changed_at_runtime() {
        let base = json!({ "backends": [b("a", 1), b("b", 1)] });
        let runtime = json!({ "backends": [b("a", 1), b("b", 3)] });
        let yaml = json!({ "backends": [b("a", 1)] });
        assert_eq!(
            merge_cluster(&base, &runtime, &yaml),
            json!({ "backends": [b("a", 1)] })
        );
    }

    #[test]
    fn keys_added_at_runtime_or_in_the_file() {
        let base = json!({ "backends": [] });
        let runtime = json!({ "sticky_offline": true, "backends": [] });
        let yaml = json!({ "debug_headers": true, "backends": [] });
        assert_eq!(
            merge_cluster(&base, &runtime, &yaml),
            json!({ "debug_headers": true, "sticky_offline": true, "backends": [] })
        );
    }

    #[test]
    fn overlay_apply_record_and_rebase() {
        let yaml = json!({ "proxy": {}, "clusters": { "c": { "backends": [b("a", 1)] }, "d": {} } });
        let mut overlay = Overlay::default();
        let runtime = json!({ "backends": [b("a", 4)] });
        overlay.record(
            "c",
            Some(json!({ "backends": [b("a", 1)] })),
            Some(runtime.clone()),
        );
        overlay.record("gone", Some(json!({})), Some(json!({ "x": 1 })));
        let merged = overlay.apply(&yaml);
        assert_eq!(merged["clusters"]["c"], runtime);
        assert_eq!(merged["clusters"]["d"], json!({}));
        assert!(
            merged["clusters"].get("gone").is_none(),
            "a cluster the file removed stays gone"
        );
        overlay.rebase(&yaml, &merged);
        assert_eq!(overlay.clusters.keys().collect::<Vec<_>>(), ["c"]);
        // Recording a cluster equal to its base drops the entry.
        overlay.record("c", Some(runtime.clone()), Some(runtime));
        assert!(overlay.clusters.is_empty());
    }

    fn file(clusters: Value, routes: Value) -> Value {
        json!({ "proxy": {}, "routes": routes, "clusters": clusters })
    }

    #[test]
    fn a_cluster_created_at_runtime_stays_until_the_file_declares_one_of_that_name() {
        let mut overlay = Overlay::default();
        let created = json!({ "backends": [b("n", 1)] });
        overlay.record("new", None, Some(created.clone()));
        let yaml = file(json!({ "c": {} }), json!([]));
        let merged = overlay.apply(&yaml);
        assert_eq!(merged["clusters"]["new"], created);
        overlay.rebase(&yaml, &merged);
        assert_eq!(overlay.clusters.len(), 1, "still a runtime creation");
        // The file now declares `new` itself: the file wins and the entry goes.
        let declared = json!({ "backends": [b("f", 2)] });
        let yaml = file(json!({ "c": {}, "new": declared.clone() }), json!([]));
        let merged = overlay.apply(&yaml);
        assert_eq!(merged["clusters"]["new"], declared);
        overlay.rebase(&yaml, &merged);
        assert!(overlay.is_empty());
        // Created in a file without any `clusters` section.
        overlay.record("new", None, Some(created.clone()));
        let merged = overlay.apply(&json!({ "proxy": {} }));
        assert_eq!(merged["clusters"]["new"], created);
    }

    #[test]
    fn a_cluster_deleted_at_runtime_comes_back_only_when_the_file_changes_it() {
        let c = json!({ "backends": [b("a", 1)] });
        let mut overlay = Overlay::default();
        overlay.record("c", Some(c.clone()), None);
        let yaml = file(json!({ "c": c.clone(), "d": {} }), json!([]));
        let merged = overlay.apply(&yaml);
        assert!(merged["clusters"].get("c").is_none(), "stays deleted");
        assert_eq!(merged["clusters"]["d"], json!({}));
        overlay.rebase(&yaml, &merged);
        assert_eq!(overlay.clusters["c"].runtime, None, "still a runtime deletion");
        let changed = json!({ "backends": [b("a", 3)] });
        let yaml = file(json!({ "c": changed.clone(), "d": {} }), json!([]));
        let merged = overlay.apply(&yaml);
        assert_eq!(merged["clusters"]["c"], changed, "the file's new definition");
        overlay.rebase(&yaml, &merged);
        assert!(overlay.is_empty());
        // Created and deleted again: nothing left to remember.
        overlay.record("x", None, None);
        assert!(overlay.is_empty());
    }

    #[test]
    fn the_runtime_route_list_stays_until_the_file_changes_its_routes() {
        let file_routes = json!([{ "path_prefix": "/", "cluster": "c" }]);
        let runtime = vec![
            json!({ "path_prefix": "/new/", "cluster": "d" }),
            json!({ "path_prefix": "/", "cluster": "c" }),
        ];
        let mut overlay = Overlay::default();
        overlay.record_routes(
            routes_of(&json!({ "routes": file_routes.clone() })),
            runtime.clone(),
        );
        let yaml = file(json!({ "c": {}, "d": {} }), file_routes);
        let merged = overlay.apply(&yaml);
        assert_eq!(routes_of(&merged), runtime);
        overlay.rebase(&yaml, &merged);
        assert!(overlay.routes.is_some());
        // The file changes its routes: the file's list wins.
        let edited = json!([{ "path_prefix": "/other/", "cluster": "c" }]);
        let yaml = file(json!({ "c": {}, "d": {} }), edited.clone());
        let merged = overlay.apply(&yaml);
        assert_eq!(merged["routes"], edited);
        overlay.rebase(&yaml, &merged);
        assert!(overlay.routes.is_none());
        // A list equal to the file's is no change.
        overlay.record_routes(vec![], vec![]);
        assert!(overlay.is_empty());
    }

    #[test]
    fn a_version_1_state_file_reads_and_keeps_a_null_base() {
        let v1 = json!({ "version": 1, "clusters": {
            "c": { "base": { "backends": [] }, "runtime": { "queue_limit": 3, "backends": [] } },
            "n": { "base": null, "runtime": { "queue_limit": 4 } } } });
        let overlay: Overlay = serde_json::from_value(v1).expect("reads");
        assert_eq!(overlay.clusters["c"].base, Some(json!({ "backends": [] })));
        assert_eq!(
            overlay.clusters["n"].base,
            Some(Value::Null),
            "a YAML cluster without settings, not a runtime creation"
        );
        assert!(overlay.routes.is_none());
        let mut v2 = Overlay::default();
        v2.record("new", None, Some(json!({})));
        v2.record("old", Some(json!({})), None);
        v2.record_routes(vec![], vec![json!({ "cluster": "new" })]);
        let text = serde_json::to_value(&v2).expect("writes");
        assert_eq!(text["version"], 2);
        assert_eq!(text["clusters"]["new"], json!({ "runtime": {} }));
        assert_eq!(text["clusters"]["old"], json!({ "base": {} }));
        assert_eq!(serde_json::from_value::<Overlay>(text).expect("reads"), v2);
    }
}
