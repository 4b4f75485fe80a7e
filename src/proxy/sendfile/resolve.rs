//! Confinement: turns a backend's X-Sendfile target into an open regular file that lies beneath
//! one of the configured roots, or says why not.
//!
//! The target is matched to a root by its leading components (the root as configured, or
//! resolved), and the rest is opened beneath that root's open handle (`beneath`): nothing is
//! checked by name and opened later, so no swap of a directory for a symlink in between can
//! lead the open out of the root. `..` above the root and symlinks leading out of it (or
//! absolute ones) are refused; relative symlinks that stay inside are followed. Blocking: runs
//! on a blocking-pool thread.

use std::ffi::OsStr;
use std::fs::{self, File, Metadata};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use actix_web::http::StatusCode;

use super::beneath;
use super::roots::{self, RootDir};

/// Why a target is not served.
#[derive(Debug, thiserror::Error)]
pub enum SendfileError {
    #[error("no such file")]
    NotFound,
    #[error("the path contains a NUL byte")]
    ContainsNul,
    #[error("not an absolute path")]
    NotAbsolute,
    #[error("outside every sendfile root")]
    OutsideRoots,
    #[error("not a regular file")]
    NotRegularFile,
    #[error("unreadable: {0}")]
    Unreadable(#[source] io::Error),
}

impl SendfileError {
    /// The status the client gets: 404 for a missing file, 403 for everything refused.
    pub fn status(&self) -> StatusCode {
        match self {
            SendfileError::NotFound => StatusCode::NOT_FOUND,
            _ => StatusCode::FORBIDDEN,
        }
    }
}

/// A file that may be served, opened, with the metadata of what was opened.
#[derive(Debug)]
pub struct ConfinedFile {
    pub file: File,
    pub metadata: Metadata,
}

/// The target as a path (non-UTF-8 bytes are fine on unix; NUL is not).
pub fn target_path(target: &[u8]) -> Result<&Path, SendfileError> {
    if target.contains(&0) {
        return Err(SendfileError::ContainsNul);
    }
    let path = Path::new(OsStr::from_bytes(target));
    if !path.is_absolute() {
        return Err(SendfileError::NotAbsolute);
    }
    Ok(path)
}

/// Opens `path` if it is a regular file beneath one of `roots` (a root that doesn't exist
/// admits nothing). Whether something exists outside the roots is never revealed: a path that
/// leads out is refused before anything past the way out is looked at.
///
/// A path that starts with no root's path may still name a file under one through a symlink
/// outside every root (`/var/www/current/a.css` with the root `/var/www/releases`): it is
/// resolved by name only to find its root, and then opened beneath that root like any other.
pub fn open_within(path: &Path, roots: &[PathBuf]) -> Result<ConfinedFile, SendfileError> {
    let roots: Vec<Arc<RootDir>> = roots.iter().filter_map(|root| roots::handle(root)).collect();
    match open_by_prefix(path, &roots) {
        Some(opened) => opened,
        None => match fs::canonicalize(path) {
            Ok(resolved) => open_by_prefix(&resolved, &roots).unwrap_or(Err(SendfileError::OutsideRoots)),
            Err(_) => Err(SendfileError::OutsideRoots),
        },
    }
}

/// Opens `path` beneath the first of `roots` it starts with where that works; `None` if it
/// starts with none of them.
fn open_by_prefix(path: &Path, roots: &[Arc<RootDir>]) -> Option<Result<ConfinedFile, SendfileError>> {
    let mut outcome = None;
    for root in roots {
        for prefix in root.prefixes() {
            let Ok(rel) = path.strip_prefix(prefix) else {
                continue;
            };
            match open_beneath(root, rel) {
                Ok(confined) => return Some(Ok(confined)),
                // Nested roots: a way out of one is reported only if no other says more.
                Err(err) if matches!(outcome, None | Some(Err(SendfileError::OutsideRoots))) => {
                    outcome = Some(Err(err))
                }
                Err(_) => {}
            }
        }
    }
    outcome
}

/// Opens `rel` beneath `root` if it is a regular file there.
fn open_beneath(root: &RootDir, rel: &Path) -> Result<ConfinedFile, SendfileError> {
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    let file = beneath::open(root.dir(), rel).map_err(open_error)?;
    let metadata = file.metadata().map_err(SendfileError::Unreadable)?;
    if !metadata.is_file() {
        return Err(SendfileError::NotRegularFile);
    }
    Ok(ConfinedFile { file, metadata })
}

fn open_error(err: io::Error) -> SendfileError {
    match err.raw_os_error() {
        Some(libc::ENOENT | libc::ENOTDIR) => SendfileError::NotFound,
        Some(libc::EXDEV) => SendfileError::OutsideRoots,
        _ => SendfileError::Unreadable(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_must_be_absolute_and_free_of_nul() {
        assert!(matches!(
            target_path(b"relative/file"),
            Err(SendfileError::NotAbsolute)
        ));
        assert!(matches!(target_path(b""), Err(SendfileError::NotAbsolute)));
        assert!(matches!(
            target_path(b"/srv/a\0b"),
            Err(SendfileError::ContainsNul)
        ));
        assert_eq!(
            target_path(b"/srv/caf\xe9").ok(),
            Some(Path::new(OsStr::from_bytes(b"/srv/caf\xe9")))
        );
    }
}
