//! Runtime changes to one cluster, as edits of its configuration document (control plane,
//! pure): the admin API's add / update / remove of backends and buckets and its cluster
//! patches. The edited document is then validated by the loader like `config.yaml` itself, so
//! a runtime change can never produce a configuration the file could not.

use serde_json::{Map, Value};

/// One change to a cluster.
#[derive(Debug, Clone, PartialEq)]
pub enum ClusterEdit {
    /// Set cluster keys (not `backends` or `buckets`); `null` removes a key (its default applies).
    Patch(Map<String, Value>),
    AddBackend(Value),
    /// Set keys of backend `name` (not `name`); `null` removes a key.
    PatchBackend(String, Map<String, Value>),
    RemoveBackend(String),
    /// Add a bucket under `parent` (the root when `None`).
    AddBucket(Option<String>, Value),
    PatchBucket(String, Map<String, Value>),
    RemoveBucket(String),
}

impl ClusterEdit {
    /// The backend whose `enabled` this edit sets to `true` or `false`, if any: an operator's
    /// decision, applied even when the configuration said so already.
    pub fn sets_enabled(&self) -> Option<&str> {
        match self {
            ClusterEdit::PatchBackend(name, patch) if patch.get("enabled").is_some_and(Value::is_boolean) => {
                Some(name)
            }
            _ => None,
        }
    }
}

/// Why an edit can't be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    /// Refused by a setting of the target (`terminate_protection`).
    #[error("{0}")]
    Forbidden(String),
}

/// Applies `edit` to the cluster document `cluster` (a map).
pub fn apply(cluster: &mut Value, edit: ClusterEdit) -> Result<(), EditError> {
    let map = cluster
        .as_object_mut()
        .ok_or_else(|| EditError::Invalid("the cluster is not a map".into()))?;
    match edit {
        ClusterEdit::Patch(patch) => {
            for key in ["backends", "buckets"] {
                if patch.contains_key(key) {
                    return Err(EditError::Invalid(format!(
                        "`{key}` can't be patched here; use the {key} endpoints"
                    )));
                }
            }
            merge(map, patch);
            Ok(())
        }
        ClusterEdit::AddBackend(backend) => {
            let name = name_of(&backend)?;
            let list = list_mut(map, "backends");
            if list
                .iter()
                .any(|b| b.get("name").and_then(Value::as_str) == Some(&name))
            {
                return Err(EditError::Conflict(format!("backend `{name}` already exists")));
            }
            list.push(backend);
            Ok(())
        }
        ClusterEdit::PatchBackend(name, patch) => {
            if patch.contains_key("name") {
                return Err(EditError::Invalid("a backend can't be renamed".into()));
            }
            let backend = list_mut(map, "backends")
                .iter_mut()
                .find(|b| b.get("name").and_then(Value::as_str) == Some(&name))
                .and_then(Value::as_object_mut)
                .ok_or_else(|| EditError::NotFound(format!("no backend `{name}`")))?;
            merge(backend, patch);
            Ok(())
        }
        ClusterEdit::RemoveBackend(name) => {
            let list = list_mut(map, "backends");
            let protected = list.iter().any(|b| {
                b.get("name").and_then(Value::as_str) == Some(&name)
                    && b.get("terminate_protection") == Some(&Value::Bool(true))
            });
            if protected {
                return Err(EditError::Forbidden(format!(
                    "backend `{name}` has terminate_protection on; turn it off first \
                     (PATCH {{\"terminate_protection\": false}})"
                )));
            }
            let before = list.len();
            list.retain(|b| b.get("name").and_then(Value::as_str) != Some(&name));
            if list.len() == before {
                return Err(EditError::NotFound(format!("no backend `{name}`")));
            }
            Ok(())
        }
        ClusterEdit::AddBucket(parent, bucket) => {
            let name = name_of(&bucket)?;
            if find_bucket(list_mut(map, "buckets"), &name).is_some() {
                return Err(EditError::Conflict(format!("bucket `{name}` already exists")));
            }
            let siblings = match &parent {
                None => list_mut(map, "buckets"),
                Some(parent) => {
                    let p = find_bucket(list_mut(map, "buckets"), parent)
                        .and_then(Value::as_object_mut)
                        .ok_or_else(|| EditError::NotFound(format!("no bucket `{parent}`")))?;
                    list_mut(p, "buckets")
                }
            };
            siblings.push(bucket);
            Ok(())
        }
        ClusterEdit::PatchBucket(name, patch) => {
            if patch.contains_key("name") || patch.contains_key("buckets") {
                return Err(EditError::Invalid(
                    "a bucket's name and children can't be patched".into(),
                ));
            }
            let bucket = find_bucket(list_mut(map, "buckets"), &name)
                .and_then(Value::as_object_mut)
                .ok_or_else(|| EditError::NotFound(format!("no bucket `{name}`")))?;
            merge(bucket, patch);
            Ok(())
        }
        ClusterEdit::RemoveBucket(name) => {
            if !remove_bucket(list_mut(map, "buckets"), &name) {
                return Err(EditError::NotFound(format!("no bucket `{name}`")));
            }
            // A default bucket that went with it falls back to the root.
            let default = map
                .get("default_bucket")
                .and_then(Value::as_str)
                .map(str::to_owned);
            if let Some(default) = default {
                if find_bucket(list_mut(map, "buckets"), &default).is_none() {
                    map.remove("default_bucket");
                }
            }
            Ok(())
        }
    }
}

/// Sets each key of `patch` in `target`; `null` removes the key.
/// JSON merge patch (RFC 7396): maps merge key by key, `null` removes a key, anything else
/// replaces it.
pub(super) fn merge(target: &mut Map<String, Value>, patch: Map<String, Value>) {
    for (key, value) in patch {
        match (target.get_mut(&key), value) {
            (_, Value::Null) => {
                target.remove(&key);
            }
            (Some(Value::Object(inner)), Value::Object(patch)) => merge(inner, patch),
            (_, value) => {
                target.insert(key, value);
            }
        }
    }
}

fn name_of(item: &Value) -> Result<String, EditError> {
    match item.get("name") {
        Some(Value::String(name)) => Ok(name.clone()),
        Some(_) => Err(EditError::Invalid("`name` must be a string".into())),
        None if item.is_object() => Err(EditError::Invalid("`name` is required".into())),
        None => Err(EditError::Invalid("expected an object".into())),
    }
}

/// The list under `key`, created when absent (or `null`).
fn list_mut<'a>(map: &'a mut Map<String, Value>, key: &str) -> &'a mut Vec<Value> {
    let slot = map.entry(key.to_owned()).or_insert(Value::Array(Vec::new()));
    if !slot.is_array() {
        *slot = Value::Array(Vec::new());
    }
    match slot {
        Value::Array(list) => list,
        _ => unreachable!("just made an array"),
    }
}

fn find_bucket<'a>(list: &'a mut [Value], name: &str) -> Option<&'a mut Value> {
    for bucket in list {
        if bucket.get("name").and_then(Value::as_str) == Some(name) {
            return Some(bucket);
        }
        if let Some(children) = bucket.get_mut("buckets").and_then(Value::as_array_mut) {
            if let Some(found) = find_bucket(children, name) {
                return Some(found);
            }
        }
    }
    None
}

fn remove_bucket(list: &mut Vec<Value>, name: &str) -> bool {
    let before = list.len();
    list.retain(|b| b.get("name").and_then(Value::as_str) != Some(name));
    if list.len() != before {
        return true;
    }
    list.iter_mut().any(|b| {
        b.get_mut("buckets")
            .and_then(Value::as_array_mut)
            .is_some_and(|children| remove_bucket(children, name))
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().expect("object")
    }

    #[test]
    fn only_a_boolean_enabled_in_a_backend_patch_is_an_operators_decision() {
        let patch = |v: Value| ClusterEdit::PatchBackend("a".into(), obj(v));
        assert_eq!(patch(json!({ "enabled": true })).sets_enabled(), Some("a"));
        assert_eq!(
            patch(json!({ "enabled": false, "capacity": 2 })).sets_enabled(),
            Some("a")
        );
        assert_eq!(patch(json!({ "enabled": null })).sets_enabled(), None);
        assert_eq!(patch(json!({ "capacity": 2 })).sets_enabled(), None);
        assert_eq!(
            ClusterEdit::Patch(obj(json!({ "enabled": true }))).sets_enabled(),
            None
        );
    }

    #[test]
    fn a_protected_backend_is_not_removed_until_protection_is_off() {
        let mut c = json!({ "backends": [{ "name": "a", "url": "http://a", "terminate_protection": true }] });
        let refused = apply(&mut c, ClusterEdit::RemoveBackend("a".into()));
        assert!(
            matches!(&refused, Err(EditError::Forbidden(m)) if m.contains("terminate_protection")),
            "{refused:?}"
        );
        assert_eq!(c["backends"].as_array().map(Vec::len), Some(1), "nothing changed");
        let off = obj(json!({ "terminate_protection": false }));
        apply(&mut c, ClusterEdit::PatchBackend("a".into(), off)).expect("patched");
        apply(&mut c, ClusterEdit::RemoveBackend("a".into())).expect("removed");
    }

    #[test]
    fn backends() {
        let mut c = json!({ "backends": [{ "name": "a", "url": "http://a", "capacity": 1 }] });
        let add = json!({ "name": "b", "url": "http://b" });
        apply(&mut c, ClusterEdit::AddBackend(add.clone())).expect("added");
        assert_eq!(
            apply(&mut c, ClusterEdit::AddBackend(add)),
            Err(EditError::Conflict("backend `b` already exists".into()))
        );
        let patch = obj(json!({ "capacity": 4, "enabled": false }));
        apply(&mut c, ClusterEdit::PatchBackend("a".into(), patch)).expect("patched");
        assert_eq!(c["backends"][0]["capacity"], 4);
        assert_eq!(c["backends"][0]["enabled"], false);
        let clear = obj(json!({ "enabled": null }));
        apply(&mut c, ClusterEdit::PatchBackend("a".into(), clear)).expect("patched");
        assert!(c["backends"][0].get("enabled").is_none());
        apply(&mut c, ClusterEdit::RemoveBackend("a".into())).expect("removed");
        assert_eq!(c["backends"].as_array().map(Vec::len), Some(1));
        assert!(matches!(
            apply(&mut c, ClusterEdit::RemoveBackend("a".into())),
            Err(EditError::NotFound(_))
        ));
        let rename = obj(json!({ "name": "x" }));
        assert!(matches!(
            apply(&mut c, ClusterEdit::PatchBackend("b".into(), rename)),
            Err(EditError::Invalid(_))
        ));
        assert!(matches!(
            apply(&mut c, ClusterEdit::AddBackend(json!({ "url": "http://x" }))),
            Err(EditError::Invalid(_))
        ));
    }

    #[test]
    fn buckets_and_patch() {
        let mut c =
            json!({ "default_bucket": "kid", "buckets": [{ "name": "top", "rate": 0.5, "ceil": 1 }] });
        let kid = json!({ "name": "kid", "rate": 0.1, "ceil": 0.2 });
        apply(&mut c, ClusterEdit::AddBucket(Some("top".into()), kid)).expect("added");
        assert_eq!(c["buckets"][0]["buckets"][0]["name"], "kid");
        let patch = obj(json!({ "ceil": 0.3 }));
        apply(&mut c, ClusterEdit::PatchBucket("kid".into(), patch)).expect("patched");
        assert_eq!(c["buckets"][0]["buckets"][0]["ceil"], 0.3);
        apply(&mut c, ClusterEdit::RemoveBucket("top".into())).expect("removed");
        assert_eq!(c["buckets"], json!([]));
        assert!(
            c.get("default_bucket").is_none(),
            "the default went with its bucket"
        );
        apply(&mut c, ClusterEdit::Patch(obj(json!({ "queue_limit": 5 })))).expect("patched");
        assert_eq!(c["queue_limit"], 5);
        assert!(matches!(
            apply(&mut c, ClusterEdit::Patch(obj(json!({ "backends": [] })))),
            Err(EditError::Invalid(_))
        ));
    }
}
