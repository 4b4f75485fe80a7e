//! The state file (control plane, file I/O): where runtime changes ([`Overlay`]) are kept
//! between restarts. Writes are atomic (a temporary file in the same directory, synced, then
//! renamed over the old one); a file that can't be parsed is set aside, never fatal.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::overlay::Overlay;

/// Why the state file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateFileError {
    #[error("cannot read the state file {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("the state file {path} is corrupt ({reason}); it was moved to {moved_to} and is ignored")]
    Corrupt {
        path: PathBuf,
        reason: String,
        moved_to: PathBuf,
    },
    #[error("cannot write the state file {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
}

/// Reads the overlay at `path`; a missing file is an empty overlay. A corrupt file is renamed
/// to `<path>.corrupt-<unix time>` and reported; the caller goes on without it.
pub fn load(path: &Path) -> Result<Overlay, StateFileError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Overlay::default()),
        Err(source) => {
            return Err(StateFileError::Read {
                path: path.to_owned(),
                source,
            })
        }
    };
    match serde_json::from_slice::<Overlay>(&bytes) {
        Ok(overlay) => Ok(overlay),
        Err(e) => {
            let stamp = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let mut moved_to = path.as_os_str().to_owned();
            moved_to.push(format!(".corrupt-{stamp}"));
            let moved_to = PathBuf::from(moved_to);
            if let Err(source) = std::fs::rename(path, &moved_to) {
                return Err(StateFileError::Write {
                    path: moved_to,
                    source,
                });
            }
            Err(StateFileError::Corrupt {
                path: path.to_owned(),
                reason: e.to_string(),
                moved_to,
            })
        }
    }
}

/// Writes `overlay` to `path` atomically.
pub fn save(path: &Path, overlay: &Overlay) -> Result<(), StateFileError> {
    let err = |source| StateFileError::Write {
        path: path.to_owned(),
        source,
    };
    let mut json = serde_json::to_vec_pretty(overlay).map_err(|e| err(io::Error::other(e)))?;
    json.push(b'\n');
    write_atomically(path, &json).map_err(err)
}

/// Replaces `path` with `bytes` atomically: a temporary file in the same directory, synced,
/// then renamed over it (and the rename synced). Blocking; off the worker threads.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let mut tmp_name = path.file_name().unwrap_or_default().to_owned();
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let write = || -> io::Result<()> {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // Make the rename itself durable.
        std::fs::File::open(&dir)?.sync_all()
    };
    write().inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::test_util::temp_dir;

    #[test]
    fn round_trip_and_missing_file() {
        let dir = temp_dir("state-round");
        let path = dir.path().join("state.json");
        assert_eq!(load(&path).expect("missing is empty"), Overlay::default());
        let mut overlay = Overlay::default();
        overlay.record(
            "c",
            Some(json!({ "backends": [] })),
            Some(json!({ "queue_limit": 3, "backends": [] })),
        );
        save(&path, &overlay).expect("saved");
        assert_eq!(load(&path).expect("loads"), overlay);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).expect("dir").collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left behind");
    }

    #[test]
    fn a_corrupt_file_is_set_aside() {
        let dir = temp_dir("state-corrupt");
        let path = dir.path().join("state.json");
        std::fs::write(&path, b"{ not json").expect("write");
        match load(&path) {
            Err(StateFileError::Corrupt { moved_to, .. }) => {
                assert!(moved_to.exists() && !path.exists());
                assert_eq!(std::fs::read(&moved_to).expect("kept"), b"{ not json");
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
        assert_eq!(load(&path).expect("now missing"), Overlay::default());
    }
}
