//! How the Director actor works out its next configuration (control plane, off the worker):
//! restoring the state file at start, re-reading `config.yaml` on a reload, and applying a
//! runtime change ([`edited`] for one cluster's content, [`reshaped`] for the cluster set and
//! the route list); each validates the whole document with the config loader and records the
//! runtime overlay. These run on the blocking pool ([`off_worker`]): they read and write files
//! and validate whole documents, which the worker the Director shares with proxied requests
//! must not wait for.

use std::path::Path;

use serde_json::Value;

use crate::config::edit::{self, ClusterEdit, EditError};
use crate::config::overlay::{self, Overlay};
use crate::config::state_file::{self, StateFileError};
use crate::config::topology_edit::{self, TopologyEdit, Touched};
use crate::config::{self, Config, ConfigErrors};

/// Why a runtime change was refused (nothing changed).
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error("no cluster `{0}`")]
    UnknownCluster(String),
    #[error(transparent)]
    Edit(#[from] EditError),
    #[error("the change makes the configuration invalid:\n{0}")]
    Invalid(ConfigErrors),
    /// The blocking task validating and persisting it could not finish.
    #[error("the change was interrupted: {0}")]
    Interrupted(String),
}

/// A new state of the configuration, worked out (read, validated, persisted) on the blocking
/// pool and then adopted by the actor.
pub(super) struct NextConfig {
    /// A newly read `config.yaml` (a reload); `None` when it is unchanged (a runtime change).
    pub yaml: Option<Value>,
    pub document: Value,
    pub config: Config,
    pub overlay: Overlay,
}

/// Runs `work` on the blocking pool, off the worker thread the Director actor shares with
/// proxied requests; `Err` only when the task could not finish (the runtime is going down).
pub(super) async fn off_worker<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(work).await.map_err(|e| e.to_string())
}

/// Writes `overlay` to the state file, if there is one (file I/O: call it off the worker).
pub(super) fn save_state(state_file: Option<&Path>, overlay: &Overlay) -> Option<Result<(), StateFileError>> {
    state_file.map(|path| state_file::save(path, overlay))
}

/// Lays the runtime changes kept in the state file at `path` over `yaml` (file I/O: call it
/// off the worker). A state file that can't be read or no longer fits is logged and ignored;
/// the problem is the `Err`, for the status.
pub(super) fn restore(path: &Path, yaml: Value) -> Result<NextConfig, String> {
    let overlay = state_file::load(path).map_err(|e| {
        log::error!("{e}");
        e.to_string()
    })?;
    let merged = overlay.apply(&yaml);
    let config = config::load_value(merged.clone()).map_err(|errors| {
        let problem = format!(
            "the runtime changes in {} no longer fit config.yaml and are ignored:\n{errors}",
            path.display()
        );
        log::error!("{problem}");
        problem
    })?;
    if !overlay.is_empty() {
        log::info!(
            "state file {}: runtime changes of {} cluster(s){} restored",
            path.display(),
            overlay.clusters.len(),
            if overlay.routes.is_some() {
                " and of the routes"
            } else {
                ""
            }
        );
    }
    Ok(NextConfig {
        yaml: None,
        document: merged,
        config,
        overlay,
    })
}

/// Lays `merged` (the shared runtime changes, with this replica's unshared ones over them)
/// over `yaml` and validates the result; when only this replica's part makes it invalid,
/// `theirs` (the shared overlay alone) is tried. `Err`: neither fits, the last good state
/// stays. Validates whole documents: call it off the worker.
pub(super) fn shared_overlay(yaml: &Value, merged: Overlay, theirs: &Overlay) -> Result<NextConfig, String> {
    let document = merged.apply(yaml);
    let errors = match config::load_value(document.clone()) {
        Ok(config) => {
            return Ok(NextConfig {
                yaml: None,
                document,
                config,
                overlay: merged,
            })
        }
        Err(errors) => errors,
    };
    if &merged != theirs {
        log::warn!("this replica's runtime changes no longer fit the shared ones and are dropped:\n{errors}");
        let document = theirs.apply(yaml);
        if let Ok(config) = config::load_value(document.clone()) {
            return Ok(NextConfig {
                yaml: None,
                document,
                config,
                overlay: theirs.clone(),
            });
        }
    }
    let problem =
        format!("the runtime changes shared by the other replicas don't fit this config.yaml and are not applied:\n{errors}");
    log::error!("{problem}");
    Err(problem)
}

/// Reads `config.yaml` at `path` and lays `overlay` over it (file I/O: call it off the
/// worker). When only the runtime changes no longer fit the file, the file wins and they
/// are dropped.
pub(super) fn reread(path: &Path, mut overlay: Overlay) -> Result<NextConfig, ConfigErrors> {
    let yaml = config::read_file(path)?;
    let merged = overlay.apply(&yaml);
    let (document, config) = match config::load_value(merged.clone()) {
        Ok(config) => (merged, config),
        Err(errors) => {
            let config = config::load_value(yaml.clone())?;
            log::warn!("reload: runtime changes dropped, they no longer fit:\n{errors}");
            overlay = Overlay::default();
            (yaml.clone(), config)
        }
    };
    overlay.rebase(&yaml, &document);
    Ok(NextConfig {
        yaml: Some(yaml),
        document,
        config,
        overlay,
    })
}

/// Applies `edit` to cluster `cluster` of `document` and validates the whole result; records
/// the cluster's runtime state (against `base`, its definition in `config.yaml`) in `overlay`.
pub(super) fn edited(
    mut document: Value,
    cluster: &str,
    edit: ClusterEdit,
    base: Option<Value>,
    mut overlay: Overlay,
) -> Result<NextConfig, ChangeError> {
    let unknown = || ChangeError::UnknownCluster(cluster.to_owned());
    let section = document
        .get_mut("clusters")
        .and_then(|c| c.get_mut(cluster))
        .ok_or_else(unknown)?;
    if section.is_null() {
        *section = Value::Object(Default::default());
    }
    edit::apply(section, edit)?;
    let runtime = section.clone();
    let config = config::load_value(document.clone()).map_err(ChangeError::Invalid)?;
    overlay.record(cluster, base, Some(runtime));
    Ok(NextConfig {
        yaml: None,
        document,
        config,
        overlay,
    })
}

/// Applies `edit` to `document` and validates the whole result; records what it touched (a
/// cluster, or the route list) against its version in `yaml` in `overlay`.
pub(super) fn reshaped(
    mut document: Value,
    edit: TopologyEdit,
    yaml: &Value,
    mut overlay: Overlay,
) -> Result<NextConfig, ChangeError> {
    let touched = edit.touches();
    topology_edit::apply(&mut document, edit)?;
    let config = config::load_value(document.clone()).map_err(ChangeError::Invalid)?;
    match touched {
        Touched::Cluster(name) => overlay.record(
            &name,
            overlay::cluster_of(yaml, &name),
            overlay::cluster_of(&document, &name),
        ),
        Touched::Routes => overlay.record_routes(overlay::routes_of(yaml), overlay::routes_of(&document)),
    }
    Ok(NextConfig {
        yaml: None,
        document,
        config,
        overlay,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn yaml() -> Value {
        json!({ "proxy": { "listen": ["127.0.0.1:0"] },
                "routes": [{ "path_prefix": "/", "cluster": "c" }],
                "clusters": { "c": { "backends": [{ "name": "a", "url": "http://127.0.0.1:1" }] } } })
    }

    #[test]
    fn a_shared_overlay_that_does_not_fit_is_refused_and_this_replicas_part_dropped_first() {
        let yaml = yaml();
        // Valid: another replica's queue_limit.
        let mut theirs = Overlay::default();
        theirs.record(
            "c",
            overlay::cluster_of(&yaml, "c"),
            Some(json!({ "queue_limit": 5, "backends": [{ "name": "a", "url": "http://127.0.0.1:1" }] })),
        );
        // This replica's part routes to a cluster its file doesn't have.
        let mut merged = theirs.clone();
        merged.record_routes(
            overlay::routes_of(&yaml),
            vec![json!({ "path_prefix": "/", "cluster": "nowhere" })],
        );
        let next = shared_overlay(&yaml, merged.clone(), &theirs).expect("theirs fits");
        assert_eq!(next.overlay, theirs);
        assert_eq!(next.config.clusters["c"].queue_limit, 5);
        // Nothing fits: refused, with a reason for the status.
        let Err(problem) = shared_overlay(&yaml, merged.clone(), &merged) else {
            panic!("an overlay routing to a missing cluster was accepted");
        };
        assert!(problem.contains("nowhere"), "{problem}");
    }
}
