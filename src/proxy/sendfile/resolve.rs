//! Confinement: turns a backend's X-Sendfile target into an open regular file that lies under one
//! of the configured roots, or says why not.
//!
//! Both the roots and the target are canonicalized, so `..` and symlinks that lead outside every
//! root are refused while symlinks that stay inside are followed.

use std::ffi::OsStr;
use std::fs::{self, File, Metadata};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use actix_web::http::StatusCode;

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

/// Opens `path` if it is a regular file under one of `roots` (a root that doesn't exist admits
/// nothing).
pub fn open_within(path: &Path, roots: &[PathBuf]) -> Result<ConfinedFile, SendfileError> {
    let canonical = match fs::canonicalize(path) {
        Ok(canonical) => canonical,
        Err(err) if is_missing(&err) => {
            // Say 404 only inside the roots: existence elsewhere is none of the client's business.
            return Err(if lexically_within(path, roots) {
                SendfileError::NotFound
            } else {
                SendfileError::OutsideRoots
            });
        }
        Err(err) => return Err(SendfileError::Unreadable(err)),
    };
    if !roots
        .iter()
        .filter_map(|root| fs::canonicalize(root).ok())
        .any(|root| canonical.starts_with(root))
    {
        return Err(SendfileError::OutsideRoots);
    }
    // Look before opening: opening a FIFO for reading would block the worker.
    let metadata = fs::metadata(&canonical).map_err(open_error)?;
    if !metadata.is_file() {
        return Err(SendfileError::NotRegularFile);
    }
    let file = File::open(&canonical).map_err(open_error)?;
    // What was opened may have been swapped since the look.
    let metadata = file.metadata().map_err(SendfileError::Unreadable)?;
    if !metadata.is_file() {
        return Err(SendfileError::NotRegularFile);
    }
    Ok(ConfinedFile { file, metadata })
}

fn is_missing(err: &io::Error) -> bool {
    matches!(err.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory)
}

fn open_error(err: io::Error) -> SendfileError {
    if is_missing(&err) {
        SendfileError::NotFound
    } else {
        SendfileError::Unreadable(err)
    }
}

/// Whether `path`, with `.` and `..` resolved textually, lies under a root as configured or as
/// canonicalized.
fn lexically_within(path: &Path, roots: &[PathBuf]) -> bool {
    let path = lexically_normal(path);
    roots.iter().any(|root| {
        let configured = std::path::absolute(root).map(|root| lexically_normal(&root));
        configured.is_ok_and(|root| path.starts_with(root))
            || fs::canonicalize(root).is_ok_and(|root| path.starts_with(root))
    })
}

fn lexically_normal(path: &Path) -> PathBuf {
    let mut normal = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                normal.pop();
            }
            other => normal.push(other),
        }
    }
    normal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexical_normalization_resolves_dots() {
        assert_eq!(lexically_normal(Path::new("/a/./b/../c")), Path::new("/a/c"));
        assert_eq!(lexically_normal(Path::new("/../../etc")), Path::new("/etc"));
    }

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
