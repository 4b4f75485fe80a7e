//! The sendfile roots' directory handles: each root is opened once and its handle shared by
//! every request of the process (a small map keyed by the configured path), so files are
//! opened beneath a handle instead of by name.
//!
//! A handle is checked against what its path names now on each use (one `stat`): when the path
//! names another directory — a root given through a `current` symlink that a deploy switched,
//! a directory recreated — the root is opened again, as a root resolved per request would be.
//! Roots that a reload dropped stay open until the map holds [`MAX_OPEN_ROOTS`], then it starts
//! over. Blocking (`stat`, `open`): call from a blocking-pool thread.

use std::collections::HashMap;
use std::fs::{self, File};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use parking_lot::Mutex;

use super::beneath::DIR_FLAGS;

/// How many roots stay open at most before the map is emptied (far more than any
/// configuration names; the bound only matters across many reloads that change the roots).
pub const MAX_OPEN_ROOTS: usize = 64;

/// An open sendfile root.
#[derive(Debug)]
pub struct RootDir {
    /// The path as configured.
    pub configured: PathBuf,
    /// The path with symlinks resolved when it was opened (targets may name either).
    pub canonical: PathBuf,
    /// Device and inode of the directory the handle is.
    identity: (u64, u64),
    dir: OwnedFd,
}

impl RootDir {
    /// The directory's handle.
    pub fn dir(&self) -> BorrowedFd<'_> {
        self.dir.as_fd()
    }

    /// The paths a target may start with to lie under this root: as configured, and resolved
    /// if that differs.
    pub fn prefixes(&self) -> impl Iterator<Item = &Path> {
        let resolved = (self.canonical != self.configured).then_some(self.canonical.as_path());
        std::iter::once(self.configured.as_path()).chain(resolved)
    }

    fn open(path: &Path) -> Option<RootDir> {
        let handle = File::options().read(true).custom_flags(DIR_FLAGS).open(path);
        let handle = match handle {
            Ok(handle) => handle,
            Err(err) => {
                log::debug!("x-sendfile root {}: {err}", path.display());
                return None;
            }
        };
        let metadata = handle.metadata().ok()?;
        Some(RootDir {
            configured: path.to_path_buf(),
            canonical: fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()),
            identity: (metadata.dev(), metadata.ino()),
            dir: handle.into(),
        })
    }
}

static OPEN_ROOTS: LazyLock<Mutex<HashMap<PathBuf, Arc<RootDir>>>> = LazyLock::new(Default::default);

/// The open handle of `root` as its path names it now; `None` when that is no directory (a
/// missing root admits nothing).
pub fn handle(root: &Path) -> Option<Arc<RootDir>> {
    let now = fs::metadata(root).ok().filter(fs::Metadata::is_dir)?;
    let identity = (now.dev(), now.ino());
    if let Some(open) = OPEN_ROOTS.lock().get(root) {
        if open.identity == identity {
            return Some(open.clone());
        }
    }
    // Opened outside the lock: an open may wait on the disk.
    let opened = Arc::new(RootDir::open(root)?);
    let mut open_roots = OPEN_ROOTS.lock();
    if open_roots.len() >= MAX_OPEN_ROOTS && !open_roots.contains_key(root) {
        open_roots.clear();
    }
    open_roots.insert(root.to_path_buf(), opened.clone());
    Some(opened)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_root_is_opened_once_and_again_when_its_path_names_another_directory() {
        let temp = crate::test_util::temp_dir("roots");
        let base = temp.path();
        for dir in ["v1", "v2"] {
            fs::create_dir_all(base.join(dir)).expect("mkdir");
        }
        let current = base.join("current");
        std::os::unix::fs::symlink("v1", &current).expect("symlink");

        let first = handle(&current).expect("a root");
        let again = handle(&current).expect("a root");
        assert!(Arc::ptr_eq(&first, &again), "the open handle is reused");
        assert_eq!(
            first.canonical,
            fs::canonicalize(base.join("v1")).expect("canonical")
        );
        assert_eq!(first.prefixes().count(), 2);

        // A deploy switches `current` to v2: the root follows.
        let next = base.join("current.next");
        std::os::unix::fs::symlink("v2", &next).expect("symlink");
        fs::rename(&next, &current).expect("switch");
        let switched = handle(&current).expect("a root");
        assert!(!Arc::ptr_eq(&first, &switched));
        assert_eq!(
            switched.canonical,
            fs::canonicalize(base.join("v2")).expect("canonical")
        );

        assert!(handle(&base.join("missing")).is_none());
        assert!(handle(&base.join("v1/..").join("current/../missing")).is_none());
    }
}
