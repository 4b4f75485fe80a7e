//! Config file watcher (control plane): notices when the content of `config.yaml` changes.
//!
//! [`ConfigWatcher`] owns one background thread that decides *when* a reload is due; what a
//! reload does is up to its caller. It watches the file's directory rather than the file, so it
//! survives editors that rename a new file over the old one and the Kubernetes ConfigMap swap
//! (`config.yaml -> ..data/config.yaml`, `..data` atomically re-pointed at a new timestamped
//! directory). File system events only make a check a candidate: after a quiet period
//! (`debounce`) the file is read through its symlinks and its hash decides whether the content
//! really changed. A poll of the resolved file's metadata covers file systems that send no events
//! and the time before the event watch is in place.

use std::collections::HashSet;
use std::ffi::OsString;
use std::hash::{DefaultHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};
use std::{fs, io};

use log::{debug, warn};
use notify::{Event, RecommendedWatcher, RecursiveMode, Watcher};

/// Symlink chains longer than this are not followed when working out which names matter.
const MAX_SYMLINK_HOPS: usize = 16;
/// A zero poll interval would spin; polling never runs more often than this.
const MIN_POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Watches a config file and calls back once per settled change of its content; stops on drop.
pub struct ConfigWatcher {
    /// Dropped first on drop, so no more file system events are queued for the worker.
    fs_events: Option<RecommendedWatcher>,
    stop: Sender<Signal>,
    worker: Option<JoinHandle<()>>,
}

/// Where the worker learns that something may have changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChangeSources {
    FsEventsAndPolling,
    /// Tests use this to exercise the fallback for file systems that send no events.
    #[cfg_attr(not(test), allow(dead_code))]
    PollingOnly,
}

/// What the worker thread receives: a file system event (access events are already dropped) or
/// the end of its life.
enum Signal {
    FsEvent(notify::Result<Event>),
    Stop,
}

impl ConfigWatcher {
    /// Calls `on_change` (from a background thread) once per settled change of the content at
    /// `path`: after file system events for it have been quiet for `debounce`, or after a poll
    /// every `poll_interval` saw its metadata change, and only if the bytes now differ from the
    /// last ones seen. If the event watch cannot be set up the watcher logs a warning and polls.
    pub fn start(
        path: &Path,
        poll_interval: Duration,
        debounce: Duration,
        on_change: impl Fn() + Send + 'static,
    ) -> io::Result<ConfigWatcher> {
        Self::start_with(
            path,
            poll_interval,
            debounce,
            ChangeSources::FsEventsAndPolling,
            on_change,
        )
    }

    fn start_with(
        path: &Path,
        poll_interval: Duration,
        debounce: Duration,
        sources: ChangeSources,
        on_change: impl Fn() + Send + 'static,
    ) -> io::Result<ConfigWatcher> {
        let path = std::path::absolute(path)?;
        let dir = path.parent().unwrap_or(Path::new("/")).to_path_buf();
        // The baseline is taken before the event watch exists; a change in between shows up in
        // the metadata at the first poll.
        let worker = Worker {
            relevant_names: names_affecting(&path, &dir),
            last_hash: content_hash(&path).ok(),
            last_stamp: FileStamp::of(&path),
            poll_interval: poll_interval.max(MIN_POLL_INTERVAL),
            debounce,
            on_change,
            path,
            dir,
        };
        let (signals_tx, signals_rx) = mpsc::channel();
        let fs_events = match sources {
            ChangeSources::FsEventsAndPolling => watch_dir(&worker.dir, signals_tx.clone())
                .map_err(|err| {
                    warn!(
                        "config watcher: cannot watch {} for changes ({err}); polling every {:?} instead",
                        worker.dir.display(),
                        worker.poll_interval
                    )
                })
                .ok(),
            ChangeSources::PollingOnly => None,
        };
        let worker = thread::Builder::new()
            .name("config-watcher".into())
            .spawn(move || worker.run(signals_rx))?;
        Ok(ConfigWatcher {
            fs_events,
            stop: signals_tx,
            worker: Some(worker),
        })
    }
}

impl Drop for ConfigWatcher {
    fn drop(&mut self) {
        drop(self.fs_events.take());
        // The worker may already have ended (a panicking callback); nothing is left to stop then.
        let _ = self.stop.send(Signal::Stop);
        if let Some(worker) = self.worker.take() {
            // Dropped from inside `on_change`: joining our own thread would deadlock, and the
            // worker ends by itself once it reads `Stop`.
            if worker.thread().id() != thread::current().id() {
                let _ = worker.join();
            }
        }
    }
}

/// Watches `dir` (not the file, which editors and Kubernetes replace) and forwards its events.
fn watch_dir(dir: &Path, signals: Sender<Signal>) -> notify::Result<RecommendedWatcher> {
    let mut watcher = notify::recommended_watcher(move |result: notify::Result<Event>| {
        // Our own reads of the file cause access events; they must never wake the worker.
        if !matches!(&result, Ok(event) if event.kind.is_access()) {
            let _ = signals.send(Signal::FsEvent(result));
        }
    })?;
    watcher.watch(dir, RecursiveMode::NonRecursive)?;
    Ok(watcher)
}

/// What the poll compares: a changed stamp makes the content hash worth computing.
#[derive(Debug, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    #[cfg(unix)]
    device_and_inode: (u64, u64),
}

impl FileStamp {
    /// The stamp of the file `path` finally resolves to; `None` while it is missing.
    fn of(path: &Path) -> Option<FileStamp> {
        let metadata = fs::metadata(path).ok()?;
        Some(FileStamp {
            modified: metadata.modified().ok(),
            len: metadata.len(),
            #[cfg(unix)]
            device_and_inode: {
                use std::os::unix::fs::MetadataExt;
                (metadata.dev(), metadata.ino())
            },
        })
    }
}

/// The thread-side state: what was last seen, and when the next check is due.
struct Worker<F> {
    path: PathBuf,
    dir: PathBuf,
    poll_interval: Duration,
    debounce: Duration,
    on_change: F,
    /// Entries of `dir` whose events are candidates; refreshed after every check.
    relevant_names: HashSet<OsString>,
    last_hash: Option<u64>,
    last_stamp: Option<FileStamp>,
}

impl<F: Fn()> Worker<F> {
    fn run(mut self, signals: Receiver<Signal>) {
        let mut check_due: Option<Instant> = None;
        let mut next_poll = Instant::now() + self.poll_interval;
        loop {
            let wake_at = check_due.map_or(next_poll, |due| due.min(next_poll));
            match signals.recv_timeout(wake_at.saturating_duration_since(Instant::now())) {
                Ok(Signal::FsEvent(result)) => {
                    if let Some(trigger) = self.candidate_trigger(&result) {
                        debug!(
                            "config watcher: {trigger}; checking {} when it settles",
                            self.path.display()
                        );
                        check_due = Some(Instant::now() + self.debounce);
                    }
                }
                Ok(Signal::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                Err(RecvTimeoutError::Timeout) => {}
            }
            let now = Instant::now();
            if next_poll <= now {
                next_poll = now + self.poll_interval;
                let stamp = FileStamp::of(&self.path);
                if stamp != self.last_stamp {
                    debug!(
                        "config watcher: poll saw new metadata for {}",
                        self.path.display()
                    );
                    self.last_stamp = stamp;
                    check_due = Some(now + self.debounce);
                }
            }
            if check_due.is_some_and(|due| due <= now) {
                check_due = None;
                self.check_content();
            }
        }
    }

    /// Why `result` could mean the config changed, or `None` if it cannot.
    fn candidate_trigger(&self, result: &notify::Result<Event>) -> Option<String> {
        let event = match result {
            Err(err) => return Some(format!("watch error ({err})")),
            Ok(event) => event,
        };
        if event.need_rescan() || event.paths.is_empty() {
            return Some(format!("{:?} event asks for a rescan", event.kind));
        }
        let affects_config = |path: &&PathBuf| {
            *path == &self.dir
                || path
                    .file_name()
                    .is_some_and(|name| self.relevant_names.contains(name))
        };
        let path = event.paths.iter().find(affects_config)?;
        Some(format!("{:?} event on {}", event.kind, path.display()))
    }

    fn check_content(&mut self) {
        self.relevant_names = names_affecting(&self.path, &self.dir);
        // Stamp before reading: a write racing the read leaves a newer stamp for the next poll.
        self.last_stamp = FileStamp::of(&self.path);
        match content_hash(&self.path) {
            Ok(hash) if self.last_hash == Some(hash) => {
                debug!("config watcher: content of {} is unchanged", self.path.display())
            }
            Ok(hash) => {
                self.last_hash = Some(hash);
                (self.on_change)();
            }
            // Mid-replace or deleted: the next event or poll brings us back.
            Err(err) => debug!("config watcher: cannot read {} yet: {err}", self.path.display()),
        }
    }
}

/// A hash of the bytes `path` resolves to (through symlinks), to ignore rewrites of the same text.
fn content_hash(path: &Path) -> io::Result<u64> {
    let mut hasher = DefaultHasher::new();
    hasher.write(&fs::read(path)?);
    Ok(hasher.finish())
}

/// Names in `dir` whose replacement could change what `path` resolves to: the file itself and
/// every entry of `dir` its symlink chain passes through (Kubernetes' `..data` and the
/// timestamped directory behind it).
fn names_affecting(path: &Path, dir: &Path) -> HashSet<OsString> {
    let canonical_dir = fs::canonicalize(dir).ok();
    let mut names = HashSet::new();
    let mut add_entries_of_dir = |chain_path: &Path| {
        for ancestor in chain_path.ancestors() {
            let parent = ancestor.parent();
            if parent == Some(dir) || (parent.is_some() && parent == canonical_dir.as_deref()) {
                names.extend(ancestor.file_name().map(OsString::from));
            }
        }
    };
    let mut current = path.to_path_buf();
    add_entries_of_dir(&current);
    for _ in 0..MAX_SYMLINK_HOPS {
        let Ok(target) = fs::read_link(&current) else {
            break;
        };
        current = current.parent().unwrap_or(dir).join(target);
        add_entries_of_dir(&current);
    }
    if let Ok(resolved) = fs::canonicalize(path) {
        add_entries_of_dir(&resolved);
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    const DEBOUNCE: Duration = Duration::from_millis(50);
    const POLL_INTERVAL: Duration = Duration::from_millis(100);
    /// Generous, so a loaded CI machine still passes; a passing test never waits this long.
    const NOTIFICATION_TIMEOUT: Duration = Duration::from_secs(5);
    /// Bounded wait when asserting that NO notification comes: several debounce and poll periods.
    const QUIET_PERIOD: Duration = Duration::from_millis(400);

    /// A fresh directory under the system temp dir, removed when the test ends.
    struct TempDir(tempfile::TempDir);

    impl TempDir {
        fn new(test: &str) -> TempDir {
            TempDir(crate::test_util::temp_dir(&format!("config-watcher-{test}")))
        }

        fn path(&self) -> &Path {
            self.0.path()
        }

        fn join(&self, name: &str) -> PathBuf {
            self.path().join(name)
        }

        /// Writes a ConfigMap generation the way the kubelet does: `..<generation>/config.yaml`.
        fn add_configmap_generation(&self, generation: &str, content: &str) {
            fs::create_dir(self.join(generation)).unwrap();
            fs::write(self.join(generation).join("config.yaml"), content).unwrap();
        }
    }

    /// Starts a watcher whose callback sends the content it finds at `path`.
    fn watch(path: &Path, sources: ChangeSources) -> (ConfigWatcher, Receiver<String>) {
        let (tx, rx) = mpsc::channel();
        let read_path = path.to_path_buf();
        let on_change = move || {
            let _ = tx.send(fs::read_to_string(&read_path).unwrap_or_default());
        };
        let watcher = ConfigWatcher::start_with(path, POLL_INTERVAL, DEBOUNCE, sources, on_change)
            .expect("start watcher");
        (watcher, rx)
    }

    /// A directory holding `config.yaml` with `content`, already watched with events and polling.
    fn watched_config(test: &str, content: &str) -> (TempDir, PathBuf, ConfigWatcher, Receiver<String>) {
        let dir = TempDir::new(test);
        let config = dir.join("config.yaml");
        fs::write(&config, content).unwrap();
        let (watcher, notifications) = watch(&config, ChangeSources::FsEventsAndPolling);
        (dir, config, watcher, notifications)
    }

    fn expect_one_notification(notifications: &Receiver<String>, expected_content: &str) {
        let content = notifications.recv_timeout(NOTIFICATION_TIMEOUT);
        assert_eq!(content.as_deref(), Ok(expected_content));
        expect_no_notification(notifications);
    }

    /// Waits the bounded QUIET_PERIOD: nothing may arrive in it.
    fn expect_no_notification(notifications: &Receiver<String>) {
        let unexpected = notifications.recv_timeout(QUIET_PERIOD);
        assert_eq!(
            unexpected,
            Err(RecvTimeoutError::Timeout),
            "no notification expected"
        );
    }

    #[test]
    fn quick_in_place_writes_notify_once() {
        let (_dir, config, _watcher, notifications) = watched_config("in-place", "version: 0\n");
        for version in 1..=3 {
            fs::write(&config, format!("version: {version}\n")).unwrap();
        }
        expect_one_notification(&notifications, "version: 3\n");
    }

    #[test]
    fn rename_over_the_file_notifies_once() {
        let (dir, config, _watcher, notifications) = watched_config("rename", "a: 1\n");
        fs::write(dir.join(".config.yaml.swp"), "a: 2\n").unwrap();
        fs::rename(dir.join(".config.yaml.swp"), &config).unwrap();
        expect_one_notification(&notifications, "a: 2\n");
    }

    #[test]
    fn kubernetes_symlink_swap_notifies_once() {
        let dir = TempDir::new("configmap");
        dir.add_configmap_generation("..2026_11_26_a", "generation: a\n");
        symlink("..2026_11_26_a", dir.join("..data")).unwrap();
        symlink("..data/config.yaml", dir.join("config.yaml")).unwrap();
        let (_watcher, notifications) = watch(&dir.join("config.yaml"), ChangeSources::FsEventsAndPolling);

        dir.add_configmap_generation("..2026_11_26_b", "generation: b\n");
        symlink("..2026_11_26_b", dir.join("..data_tmp")).unwrap();
        fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
        fs::remove_dir_all(dir.join("..2026_11_26_a")).unwrap();
        expect_one_notification(&notifications, "generation: b\n");
    }

    #[test]
    fn rewriting_identical_content_does_not_notify() {
        let (_dir, config, _watcher, notifications) = watched_config("identical", "same: true\n");
        fs::write(&config, "same: true\n").unwrap();
        expect_no_notification(&notifications);
    }

    #[test]
    fn other_files_in_the_directory_do_not_notify() {
        let (dir, _config, _watcher, notifications) = watched_config("other-file", "a: 1\n");
        fs::write(dir.join("director-state.json"), "{}").unwrap();
        fs::write(dir.join("notes.txt"), "unrelated").unwrap();
        expect_no_notification(&notifications);
    }

    #[test]
    fn polling_alone_sees_an_in_place_change() {
        let dir = TempDir::new("polling");
        let config = dir.join("config.yaml");
        fs::write(&config, "a: 1\n").unwrap();
        let (_watcher, notifications) = watch(&config, ChangeSources::PollingOnly);
        fs::write(&config, "a: 22\n").unwrap();
        expect_one_notification(&notifications, "a: 22\n");
    }

    #[test]
    fn dropping_the_watcher_ends_its_thread() {
        let (_dir, config, watcher, notifications) = watched_config("drop", "a: 1\n");
        drop(watcher);
        fs::write(&config, "a: 2\n").unwrap();
        // The callback (and its sender) is dropped only when the worker thread has ended.
        let after_drop = notifications.recv_timeout(NOTIFICATION_TIMEOUT);
        assert_eq!(after_drop, Err(RecvTimeoutError::Disconnected));
    }

    #[test]
    fn names_affecting_follow_the_configmap_symlinks() {
        let dir = TempDir::new("names");
        dir.add_configmap_generation("..2026_11_26_a", "a: 1\n");
        symlink("..2026_11_26_a", dir.join("..data")).unwrap();
        symlink("..data/config.yaml", dir.join("config.yaml")).unwrap();
        let names = names_affecting(&dir.join("config.yaml"), dir.path());
        let expected = ["config.yaml", "..data", "..2026_11_26_a"].map(OsString::from);
        assert_eq!(names, HashSet::from(expected));
    }
}
