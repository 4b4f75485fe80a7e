//! Runtime changes laid over `config.yaml` (control plane, pure): the content of the state
//! file and the three-way merge that decides, per cluster setting and per backend, whether the
//! runtime version or the file's version wins.
//!
//! For each cluster changed at runtime the overlay keeps `base` (the cluster as `config.yaml`
//! declared it when the change was made) and `runtime` (the cluster as changed). Laid over the
//! current file (`yaml`):
//! - a setting (any key but `backends`) the file changed since `base` takes the file's value,
//!   otherwise the runtime value;
//! - a backend the file newly declares or changed since `base` takes the file's definition
//!   ("a backend that config.yaml newly declares under the same name replaces the runtime one");
//!   one the file no longer declares but did in `base` is gone; otherwise the runtime version
//!   (added, changed, or removed at runtime) stays.
//!
//! Documents are the JSON trees of the YAML, before `${VAR}` expansion.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The state file's content: runtime changes by cluster name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overlay {
    /// Format version of the state file.
    pub version: u32,
    pub clusters: BTreeMap<String, ClusterOverlay>,
}

/// One cluster's runtime version and the file version it was made from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterOverlay {
    pub base: Value,
    pub runtime: Value,
}

/// The state file format written by this version.
pub const VERSION: u32 = 1;

impl Overlay {
    /// Records that cluster `name` is now `runtime`, made from the file's `base`.
    pub fn record(&mut self, name: &str, base: Value, runtime: Value) {
        self.version = VERSION;
        if base == runtime {
            self.clusters.remove(name);
        } else {
            self.clusters
                .insert(name.to_owned(), ClusterOverlay { base, runtime });
        }
    }

    /// The document `yaml` with the runtime changes laid over it. Clusters the file no longer
    /// declares are dropped from the overlay's effect (and from `self` on the next
    /// [`rebase`](Self::rebase)).
    pub fn apply(&self, yaml: &Value) -> Value {
        let mut doc = yaml.clone();
        let Some(clusters) = doc.get_mut("clusters").and_then(Value::as_object_mut) else {
            return doc;
        };
        for (name, change) in &self.clusters {
            if let Some(current) = clusters.get_mut(name) {
                *current = merge_cluster(&change.base, &change.runtime, current);
            }
        }
        doc
    }

    /// After a reload: every entry's base becomes the file's current cluster and its runtime
    /// the merged result, so the next merge starts from here. Entries of clusters the file no
    /// longer has, or that no longer differ, are dropped.
    pub fn rebase(&mut self, yaml: &Value, merged: &Value) {
        let names: Vec<String> = self.clusters.keys().cloned().collect();
        for name in names {
            let base = yaml.get("clusters").and_then(|c| c.get(&name)).cloned();
            let runtime = merged.get("clusters").and_then(|c| c.get(&name)).cloned();
            match (base, runtime) {
                (Some(base), Some(runtime)) => self.record(&name, base, runtime),
                _ => {
                    self.clusters.remove(&name);
                }
            }
        }
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
        overlay.record("c", json!({ "backends": [b("a", 1)] }), runtime.clone());
        overlay.record("gone", json!({}), json!({ "x": 1 }));
        let merged = overlay.apply(&yaml);
        assert_eq!(merged["clusters"]["c"], runtime);
        assert_eq!(merged["clusters"]["d"], json!({}));
        assert!(
            merged["clusters"].get("gone").is_none(),
            "clusters are not created by the overlay"
        );
        overlay.rebase(&yaml, &merged);
        assert_eq!(overlay.clusters.keys().collect::<Vec<_>>(), ["c"]);
        // Recording a cluster equal to its base drops the entry.
        overlay.record("c", runtime.clone(), runtime);
        assert!(overlay.clusters.is_empty());
    }
}
