//! The live history's file (control plane, file I/O): the recorded samples survive a restart.
//!
//! The file sits beside the state file (`director-state.json` → `director-state.history.json`)
//! and holds the last [`KEPT_SECONDS`] one-second samples and every minute aggregate (a day),
//! at most [`MAX_BYTES`]: when a large topology makes it bigger, the oldest samples go first.
//! The collector writes it every [`SAVE_INTERVAL`] and at shutdown, through tokio's blocking
//! pool (atomically: a temporary file renamed over the old one); director reads it once at
//! start. A file that can't be read or parsed is logged and ignored: history is a convenience,
//! never a reason not to start.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};

use super::history::Sample;
use crate::config::state_file::write_atomically;

/// One-second samples written: the last 15 minutes (the minute aggregates cover the rest).
pub const KEPT_SECONDS: usize = 900;
/// The largest file written.
pub const MAX_BYTES: usize = 4 << 20;
/// How often the collector writes the file while running.
pub const SAVE_INTERVAL: Duration = Duration::from_secs(60);
/// The format's version; a file of another version is ignored.
const VERSION: u32 = 1;

/// Where the live history of a director with state file `state_file` is kept.
pub fn path_beside(state_file: &Path) -> PathBuf {
    state_file.with_extension("history.json")
}

/// The file's contents as read.
#[derive(Debug, Deserialize)]
pub struct Stored {
    version: u32,
    pub seconds: Vec<Sample>,
    pub minutes: Vec<Sample>,
}

/// The file's contents as written, borrowing the history's samples.
struct Storing<'a> {
    seconds: &'a [Arc<Sample>],
    minutes: &'a [Arc<Sample>],
}

impl Serialize for Storing<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Samples<'a>(&'a [Arc<Sample>]);
        impl Serialize for Samples<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_seq(self.0.iter().map(|s| &**s))
            }
        }
        let mut stored = serializer.serialize_struct("Stored", 3)?;
        stored.serialize_field("version", &VERSION)?;
        stored.serialize_field("seconds", &Samples(self.seconds))?;
        stored.serialize_field("minutes", &Samples(self.minutes))?;
        stored.end()
    }
}

/// The JSON to write for `seconds` and `minutes` (oldest first): the newest [`KEPT_SECONDS`]
/// seconds and all minutes, halved from the oldest end (seconds first) until it fits in
/// `max_bytes`.
pub fn encode(seconds: &[Arc<Sample>], minutes: &[Arc<Sample>], max_bytes: usize) -> io::Result<Vec<u8>> {
    let mut seconds = &seconds[seconds.len().saturating_sub(KEPT_SECONDS)..];
    let mut minutes = minutes;
    loop {
        let json = serde_json::to_vec(&Storing { seconds, minutes }).map_err(io::Error::other)?;
        if json.len() <= max_bytes || (seconds.is_empty() && minutes.is_empty()) {
            return Ok(json);
        }
        if seconds.is_empty() {
            minutes = &minutes[minutes.len().div_ceil(2)..];
        } else {
            seconds = &seconds[seconds.len().div_ceil(2)..];
        }
    }
}

/// Writes the history file at `path` (blocking).
pub fn save(path: &Path, seconds: &[Arc<Sample>], minutes: &[Arc<Sample>]) -> io::Result<()> {
    write_atomically(path, &encode(seconds, minutes, MAX_BYTES)?)
}

/// Reads the history file at `path` (blocking). `None` when there is none, or when it can't be
/// used (logged).
pub fn load(path: &Path) -> Option<Stored> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(e) => {
            log::warn!(
                "live history {}: cannot read it ({e}); starting without",
                path.display()
            );
            return None;
        }
    };
    match serde_json::from_slice::<Stored>(&bytes) {
        Ok(stored) if stored.version == VERSION => Some(stored),
        Ok(stored) => {
            log::warn!(
                "live history {}: format version {} is not {VERSION}; starting without",
                path.display(),
                stored.version
            );
            None
        }
        Err(e) => {
            log::warn!("live history {}: corrupt ({e}); starting without", path.display());
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::live::history::ClusterSample;
    use crate::test_util::temp_dir;

    fn sample(at: u64) -> Arc<Sample> {
        Arc::new(Sample {
            at,
            clusters: vec![ClusterSample {
                name: "shop".into(),
                rps: 1.5,
                ..ClusterSample::default()
            }],
        })
    }

    #[test]
    fn beside_the_state_file() {
        assert_eq!(
            path_beside(Path::new("/var/lib/director/director-state.json")),
            Path::new("/var/lib/director/director-state.history.json")
        );
        assert_eq!(path_beside(Path::new("state")), Path::new("state.history.json"));
    }

    #[test]
    fn round_trip_keeps_the_newest_seconds_and_every_minute() {
        let dir = temp_dir("live-history");
        let path = dir.path().join("h.json");
        let seconds: Vec<_> = (0..1000).map(sample).collect();
        let minutes: Vec<_> = (0..30).map(|m| sample(m * 60)).collect();
        save(&path, &seconds, &minutes).expect("saved");
        let stored = load(&path).expect("loads");
        assert_eq!(stored.seconds.len(), KEPT_SECONDS);
        assert_eq!(stored.seconds[0].at, 100);
        assert_eq!(stored.seconds.last().map(|s| s.at), Some(999));
        assert_eq!(stored.minutes.len(), 30);
        assert_eq!(stored.minutes[3], *minutes[3]);
        let leftovers = std::fs::read_dir(dir.path()).expect("dir").count();
        assert_eq!(leftovers, 1, "no temporary file left behind");
    }

    #[test]
    fn size_is_bounded_oldest_seconds_first() {
        let seconds: Vec<_> = (0..800).map(sample).collect();
        let minutes: Vec<_> = (0..100).map(|m| sample(m * 60)).collect();
        let whole = encode(&seconds, &minutes, usize::MAX).expect("json").len();
        let bounded = encode(&seconds, &minutes, whole / 2).expect("json");
        assert!(bounded.len() <= whole / 2);
        let stored: Stored = serde_json::from_slice(&bounded).expect("parses");
        assert_eq!(stored.minutes.len(), 100, "minutes kept while seconds can go");
        assert_eq!(
            stored.seconds.last().map(|s| s.at),
            Some(799),
            "the newest second kept"
        );
        let tiny = encode(&seconds, &minutes, 200).expect("json");
        assert!(tiny.len() <= 200, "{}", tiny.len());
    }

    #[test]
    fn a_corrupt_or_foreign_file_is_ignored() {
        let dir = temp_dir("live-history-bad");
        let path = dir.path().join("h.json");
        assert!(load(&path).is_none(), "missing");
        std::fs::write(&path, b"{ not json").expect("write");
        assert!(load(&path).is_none());
        std::fs::write(&path, br#"{"version": 99, "seconds": [], "minutes": []}"#).expect("write");
        assert!(load(&path).is_none());
    }
}
