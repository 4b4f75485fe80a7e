//! Reloading TLS certificates when their files change (control plane): one config-file
//! watcher ([`ConfigWatcher`], which also follows Kubernetes secret symlink swaps) per
//! distinct certificate or key file; a settled change reloads every store that uses the file,
//! on the watcher's thread ([`CertStore::reload`] keeps the old certificates when the new ones
//! are bad).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::config::watcher::ConfigWatcher;

use super::tls::CertStore;

/// The running watchers; dropping them stops watching.
pub struct CertWatchers {
    _watchers: Vec<ConfigWatcher>,
}

/// Watches every certificate and key file of `stores`.
pub fn watch(stores: &[Arc<CertStore>], poll_interval: Duration, debounce: Duration) -> CertWatchers {
    let mut users: BTreeMap<PathBuf, Vec<Arc<CertStore>>> = BTreeMap::new();
    for store in stores {
        for files in store.files() {
            for path in [&files.cert, &files.key] {
                let list = users.entry(path.clone()).or_default();
                if !list.iter().any(|s| Arc::ptr_eq(s, store)) {
                    list.push(store.clone());
                }
            }
        }
    }
    let mut watchers = Vec::with_capacity(users.len());
    for (path, stores) in users {
        let on_change = move || {
            for store in &stores {
                // The outcome is logged and kept for the status by the store.
                let _ = store.reload();
            }
        };
        match ConfigWatcher::start(&path, poll_interval, debounce, on_change) {
            Ok(watcher) => watchers.push(watcher),
            Err(e) => log::warn!(
                "tls: cannot watch {} ({e}); its certificate reloads only with a restart",
                path.display()
            ),
        }
    }
    CertWatchers { _watchers: watchers }
}
