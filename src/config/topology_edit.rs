//! Runtime changes to the configuration's set of clusters and its route list (control plane,
//! pure): the admin API's create / delete of a cluster and add / change / move / delete of a
//! route, as edits of the whole configuration document. Like [`super::edit`]'s, the edited
//! document is then validated by the loader, so a route to an unknown cluster or with a bad
//! prefix is refused exactly as in `config.yaml`.
//!
//! Routes are addressed by their index in the list (the order is the match order).

use serde_json::{Map, Value};

use super::edit::{merge, EditError};

/// One change to the cluster set or the route list.
#[derive(Debug, Clone, PartialEq)]
pub enum TopologyEdit {
    /// Create cluster `name` with these settings (`backends`, `buckets` included).
    CreateCluster(String, Map<String, Value>),
    /// Delete a cluster no route points at.
    DeleteCluster(String),
    /// Insert a route at an index (`None`: at the end).
    AddRoute(Option<usize>, Value),
    /// Set keys of route `index`; `null` removes a key. Setting `cluster` drops `backend`
    /// and the other way round, so a route can be retargeted in one patch.
    PatchRoute(usize, Map<String, Value>),
    RemoveRoute(usize),
    /// Move the route at `from` so that it ends up at index `to`.
    MoveRoute {
        from: usize,
        to: usize,
    },
}

/// What an edit changes, for the runtime overlay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Touched {
    Cluster(String),
    Routes,
}

impl TopologyEdit {
    /// What this edit changes.
    pub fn touches(&self) -> Touched {
        match self {
            TopologyEdit::CreateCluster(name, _) | TopologyEdit::DeleteCluster(name) => {
                Touched::Cluster(name.clone())
            }
            _ => Touched::Routes,
        }
    }
}

/// Applies `edit` to the configuration document `document` (a map).
pub fn apply(document: &mut Value, edit: TopologyEdit) -> Result<(), EditError> {
    let root = document
        .as_object_mut()
        .ok_or_else(|| EditError::Invalid("the configuration is not a map".into()))?;
    match edit {
        TopologyEdit::CreateCluster(name, settings) => {
            let clusters = map_mut(root, "clusters");
            if clusters.contains_key(&name) {
                return Err(EditError::Conflict(format!("cluster `{name}` already exists")));
            }
            clusters.insert(name, Value::Object(settings));
            Ok(())
        }
        TopologyEdit::DeleteCluster(name) => {
            if !map_mut(root, "clusters").contains_key(&name) {
                return Err(EditError::NotFound(format!("no cluster `{name}`")));
            }
            let routed: Vec<String> = list_mut(root, "routes")
                .iter()
                .enumerate()
                .filter(|(_, r)| r.get("cluster").and_then(Value::as_str) == Some(&name))
                .map(|(i, _)| format!("routes[{i}]"))
                .collect();
            if !routed.is_empty() {
                return Err(EditError::Conflict(format!(
                    "cluster `{name}` is the target of {}; delete or retarget those routes first",
                    routed.join(", ")
                )));
            }
            let clusters = map_mut(root, "clusters");
            let protected = clusters
                .get(&name)
                .and_then(|c| c.get("backends"))
                .and_then(Value::as_array)
                .and_then(|list| {
                    list.iter()
                        .find(|b| b.get("terminate_protection") == Some(&Value::Bool(true)))
                })
                .map(|b| b.get("name").and_then(Value::as_str).unwrap_or("?").to_owned());
            if let Some(backend) = protected {
                return Err(EditError::Forbidden(format!(
                    "backend `{backend}` of cluster `{name}` has terminate_protection on; turn it off first"
                )));
            }
            clusters.remove(&name);
            Ok(())
        }
        TopologyEdit::AddRoute(index, route) => {
            if !route.is_object() {
                return Err(EditError::Invalid("a route must be an object".into()));
            }
            let routes = list_mut(root, "routes");
            let index = index.unwrap_or(routes.len());
            if index > routes.len() {
                return Err(EditError::Invalid(format!(
                    "index {index} is past the end of the route list ({} routes)",
                    routes.len()
                )));
            }
            routes.insert(index, route);
            Ok(())
        }
        TopologyEdit::PatchRoute(index, mut patch) => {
            let routes = list_mut(root, "routes");
            let route = route_mut(routes, index)?
                .as_object_mut()
                .ok_or_else(|| EditError::Invalid(format!("routes[{index}] is not a map")))?;
            for (set, other) in [("cluster", "backend"), ("backend", "cluster")] {
                if patch.get(set).is_some_and(|v| !v.is_null()) && !patch.contains_key(other) {
                    patch.insert(other.to_owned(), Value::Null);
                }
            }
            merge(route, patch);
            Ok(())
        }
        TopologyEdit::RemoveRoute(index) => {
            let routes = list_mut(root, "routes");
            route_mut(routes, index)?;
            routes.remove(index);
            Ok(())
        }
        TopologyEdit::MoveRoute { from, to } => {
            let routes = list_mut(root, "routes");
            route_mut(routes, from)?;
            if to >= routes.len() {
                return Err(EditError::Invalid(format!(
                    "`to` {to} is past the end of the route list ({} routes)",
                    routes.len()
                )));
            }
            let route = routes.remove(from);
            routes.insert(to, route);
            Ok(())
        }
    }
}

fn route_mut(routes: &mut [Value], index: usize) -> Result<&mut Value, EditError> {
    let count = routes.len();
    routes
        .get_mut(index)
        .ok_or_else(|| EditError::NotFound(format!("no route {index} (there are {count})")))
}

/// The map under `key`, created when absent (or `null`).
fn map_mut<'a>(root: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let slot = root.entry(key.to_owned()).or_insert(Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    match slot {
        Value::Object(map) => map,
        _ => unreachable!("just made a map"),
    }
}

/// The list under `key`, created when absent (or `null`).
fn list_mut<'a>(root: &'a mut Map<String, Value>, key: &str) -> &'a mut Vec<Value> {
    let slot = root.entry(key.to_owned()).or_insert(Value::Array(Vec::new()));
    if !slot.is_array() {
        *slot = Value::Array(Vec::new());
    }
    match slot {
        Value::Array(list) => list,
        _ => unreachable!("just made a list"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn doc() -> Value {
        json!({
            "routes": [
                { "path_prefix": "/a/", "cluster": "a" },
                { "path_prefix": "/", "cluster": "b" },
            ],
            "clusters": { "a": {}, "b": {}, "idle": { "backends": [{ "name": "x", "url": "http://x" }] } },
        })
    }

    fn prefixes(d: &Value) -> Vec<&str> {
        d["routes"]
            .as_array()
            .expect("routes")
            .iter()
            .map(|r| r["path_prefix"].as_str().unwrap_or("?"))
            .collect()
    }

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().expect("object")
    }

    #[test]
    fn clusters_are_created_once_and_deleted_only_when_no_route_points_at_them() {
        let mut d = doc();
        apply(
            &mut d,
            TopologyEdit::CreateCluster("new".into(), obj(json!({ "queue_limit": 2 }))),
        )
        .expect("created");
        assert_eq!(d["clusters"]["new"], json!({ "queue_limit": 2 }));
        let again = apply(&mut d, TopologyEdit::CreateCluster("new".into(), Map::new()));
        assert!(matches!(again, Err(EditError::Conflict(_))), "{again:?}");
        let routed = apply(&mut d, TopologyEdit::DeleteCluster("b".into()));
        assert!(
            matches!(&routed, Err(EditError::Conflict(m)) if m.contains("routes[1]")),
            "{routed:?}"
        );
        assert!(d["clusters"].get("b").is_some(), "nothing changed");
        apply(&mut d, TopologyEdit::DeleteCluster("idle".into())).expect("deleted");
        assert!(d["clusters"].get("idle").is_none());
        let gone = apply(&mut d, TopologyEdit::DeleteCluster("idle".into()));
        assert!(matches!(gone, Err(EditError::NotFound(_))), "{gone:?}");
        // Into a document without clusters.
        let mut empty = json!({});
        apply(&mut empty, TopologyEdit::CreateCluster("c".into(), Map::new())).expect("created");
        assert_eq!(empty, json!({ "clusters": { "c": {} } }));
    }

    #[test]
    fn a_cluster_with_a_protected_backend_is_not_deleted() {
        let mut d = json!({ "clusters": { "p": { "backends": [
            { "name": "x", "url": "http://x", "terminate_protection": true } ] } } });
        let refused = apply(&mut d, TopologyEdit::DeleteCluster("p".into()));
        assert!(matches!(refused, Err(EditError::Forbidden(_))), "{refused:?}");
    }

    #[test]
    fn routes_are_inserted_patched_moved_and_removed_by_index() {
        let mut d = doc();
        let route = json!({ "path_prefix": "/first/", "cluster": "a" });
        apply(&mut d, TopologyEdit::AddRoute(Some(0), route)).expect("inserted");
        apply(
            &mut d,
            TopologyEdit::AddRoute(None, json!({ "path_prefix": "/last/", "cluster": "a" })),
        )
        .expect("appended");
        assert_eq!(prefixes(&d), ["/first/", "/a/", "/", "/last/"]);
        let past = apply(&mut d, TopologyEdit::AddRoute(Some(9), json!({})));
        assert!(matches!(past, Err(EditError::Invalid(_))), "{past:?}");
        let not_a_map = apply(&mut d, TopologyEdit::AddRoute(None, json!("x")));
        assert!(matches!(not_a_map, Err(EditError::Invalid(_))), "{not_a_map:?}");

        apply(&mut d, TopologyEdit::MoveRoute { from: 3, to: 0 }).expect("moved");
        assert_eq!(prefixes(&d), ["/last/", "/first/", "/a/", "/"]);
        apply(&mut d, TopologyEdit::MoveRoute { from: 0, to: 3 }).expect("moved");
        assert_eq!(prefixes(&d), ["/first/", "/a/", "/", "/last/"]);
        let bad = apply(&mut d, TopologyEdit::MoveRoute { from: 0, to: 4 });
        assert!(matches!(bad, Err(EditError::Invalid(_))), "{bad:?}");
        let missing = apply(&mut d, TopologyEdit::MoveRoute { from: 4, to: 0 });
        assert!(matches!(missing, Err(EditError::NotFound(_))), "{missing:?}");

        // Retargeting to an address drops the cluster; `null` removes a key.
        let patch = obj(json!({ "backend": "http://127.0.0.1:9", "host": "x.example" }));
        apply(&mut d, TopologyEdit::PatchRoute(3, patch)).expect("patched");
        assert_eq!(
            d["routes"][3],
            json!({ "path_prefix": "/last/", "backend": "http://127.0.0.1:9", "host": "x.example" })
        );
        let patch = obj(json!({ "cluster": "b", "host": null }));
        apply(&mut d, TopologyEdit::PatchRoute(3, patch)).expect("patched");
        assert_eq!(d["routes"][3], json!({ "path_prefix": "/last/", "cluster": "b" }));

        apply(&mut d, TopologyEdit::RemoveRoute(0)).expect("removed");
        assert_eq!(prefixes(&d), ["/a/", "/", "/last/"]);
        let missing = apply(&mut d, TopologyEdit::RemoveRoute(3));
        assert!(matches!(missing, Err(EditError::NotFound(_))), "{missing:?}");
        let missing = apply(&mut d, TopologyEdit::PatchRoute(3, Map::new()));
        assert!(matches!(missing, Err(EditError::NotFound(_))), "{missing:?}");
    }
}
