//! A cluster's `fastcgi:` script mapping (also allowed on a backend) and its `x_sendfile:`
//! section in `config.yaml` (control plane); a child of `load`.
//!
//! Rules:
//! - `fastcgi`: absent or `null` for none, else `{ document_root, script }`. `document_root` is
//!   required and absolute; `script` (optional, the front controller) is absolute or relative to
//!   the document root and is stored joined. Every FastCGI backend needs a mapping, its own or
//!   its cluster's.
//! - `x_sendfile`: absent or `null` = disabled; `{ enabled, roots }` with `enabled` default
//!   false and `roots` a list of absolute directories, at least one when enabled.

use std::path::{Component, Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::super::model::{FastCgiConfig, XSendfileConfig};
use super::MISSING;
use super::{index_path, key_path, kind, Loader};

const FASTCGI_KEYS: &[&str] = &["document_root", "script"];
const X_SENDFILE_KEYS: &[&str] = &["enabled", "roots"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFastCgi {
    document_root: Option<String>,
    script: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawXSendfile {
    enabled: Option<bool>,
    /// A list of paths; checked element by element.
    roots: Option<Value>,
}

/// Why `path` is not a usable absolute path, if it is not.
pub(super) fn absolute_path_problem(path: &str) -> Option<String> {
    if path.is_empty() {
        return Some("must not be empty".to_owned());
    }
    if !path.starts_with('/') {
        return Some(format!("`{path}` must be an absolute path"));
    }
    if path.contains('\0') {
        return Some("must not contain a NUL byte".to_owned());
    }
    if Path::new(path).components().any(|c| c == Component::ParentDir) {
        return Some(format!("`{path}` must not contain `..`"));
    }
    None
}

impl Loader<'_> {
    /// A `fastcgi:` mapping (optional) at `path`; `Some(None)` when there is none.
    pub(super) fn fastcgi(&mut self, value: Option<Value>, path: &str) -> Option<Option<FastCgiConfig>> {
        let value = match value {
            None | Some(Value::Null) => return Some(None),
            Some(value) => value,
        };
        let raw: RawFastCgi = self.piece(Some(value), path, FASTCGI_KEYS, "`{ document_root, script }`")?;
        let root_path = key_path(path, "document_root");
        let document_root = match raw.document_root {
            None => {
                self.error(root_path, MISSING);
                None
            }
            Some(root) => match absolute_path_problem(&root) {
                Some(problem) => {
                    self.error(root_path, problem);
                    None
                }
                None => Some(PathBuf::from(root)),
            },
        };
        let script = match raw.script.as_deref() {
            None => Some(None),
            Some(script) if script.is_empty() || script.contains('\0') => {
                self.error(key_path(path, "script"), "must be a file name or path");
                None
            }
            Some(script) if Path::new(script).components().any(|c| c == Component::ParentDir) => {
                self.error(
                    key_path(path, "script"),
                    format!("`{script}` must not contain `..`"),
                );
                None
            }
            Some(script) => Some(Some(PathBuf::from(script))),
        };
        let document_root = document_root?;
        let script = script?.map(|s| document_root.join(s));
        Some(Some(FastCgiConfig {
            document_root,
            script,
        }))
    }

    /// A cluster's `x_sendfile:` (optional) at `path`.
    pub(super) fn x_sendfile(&mut self, value: Option<Value>, path: &str) -> Option<XSendfileConfig> {
        let value = match value {
            None | Some(Value::Null) => return Some(XSendfileConfig::default()),
            Some(value) => value,
        };
        let raw: RawXSendfile = self.piece(Some(value), path, X_SENDFILE_KEYS, "`{ enabled, roots }`")?;
        let enabled = raw.enabled.unwrap_or(false);
        let roots_path = key_path(path, "roots");
        let items = match raw.roots {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items,
            Some(other) => {
                let found = kind(&other);
                self.error(
                    roots_path,
                    format!("expected a list of directories, found {found}"),
                );
                return None;
            }
        };
        let mut roots = Some(Vec::with_capacity(items.len()));
        for (i, item) in items.into_iter().enumerate() {
            let problem = match &item {
                Value::String(root) => absolute_path_problem(root),
                other => Some(format!("expected a directory path, found {}", kind(other))),
            };
            match (problem, item) {
                (None, Value::String(root)) => roots.iter_mut().for_each(|r| r.push(PathBuf::from(&root))),
                (problem, _) => {
                    self.error(index_path(&roots_path, i), problem.unwrap_or_default());
                    roots = None;
                }
            }
        }
        let roots = roots?;
        if enabled && roots.is_empty() {
            self.error(roots_path, "list at least one directory files may be served from");
            return None;
        }
        Some(XSendfileConfig { enabled, roots })
    }
}
