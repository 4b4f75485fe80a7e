//! Test fixture: the real `director` binary as a child process.
//!
//! [`Binary::spawn`] starts it with piped output; two threads collect its stdout and stderr
//! line by line (so it never blocks on a full pipe), and the test waits for a line with
//! [`Binary::line`] (its listeners with [`Binary::listening`]). Dropping a [`Binary`] kills the
//! process. [`command`] is for one-shot runs (`--version`, `--check-config`).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};

use super::wait_until;

/// The binary cargo built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_director");

/// A command running the binary, for runs that end by themselves (`.output()`).
pub fn command() -> Command {
    Command::new(BIN)
}

/// The lines of one output stream so far, and whether it has ended.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<(Vec<String>, bool)>>);

impl Lines {
    fn collect(stream: impl Read + Send + 'static) -> Lines {
        let lines = Lines::default();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                sink.0.lock().unwrap().0.push(line);
            }
            sink.0.lock().unwrap().1 = true;
        });
        lines
    }

    fn len(&self) -> usize {
        self.0.lock().unwrap().0.len()
    }

    fn text(&self) -> String {
        self.0.lock().unwrap().0.join("\n")
    }

    /// The first line after the first `from` for which `pick` answers `Some`; `Err` says
    /// whether the stream has ended.
    fn find<T>(&self, from: usize, pick: &impl Fn(&str) -> Option<T>) -> Result<T, bool> {
        let state = self.0.lock().unwrap();
        state.0.iter().skip(from).find_map(|l| pick(l)).ok_or(state.1)
    }
}

/// Which output stream to look at.
#[derive(Clone, Copy, Debug)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// A running `director`, killed when dropped.
pub struct Binary {
    child: Child,
    stdout: Lines,
    stderr: Lines,
}

impl Binary {
    /// Runs the binary with what `configure` adds (arguments, environment, directory); stdin
    /// is closed, stdout and stderr collected.
    pub fn spawn(configure: impl FnOnce(&mut Command)) -> Binary {
        let mut command = command();
        configure(&mut command);
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn director");
        let stdout = Lines::collect(child.stdout.take().expect("stdout"));
        let stderr = Lines::collect(child.stderr.take().expect("stderr"));
        Binary {
            child,
            stdout,
            stderr,
        }
    }

    /// Runs `director --config <config>` with `RUST_LOG=info` and waits until it logs its
    /// proxy listener.
    pub async fn with_config(config: &std::path::Path) -> Binary {
        let binary = Binary::spawn(|c| {
            c.arg("--config").arg(config).env("RUST_LOG", "info");
        });
        binary.listening("proxy").await;
        binary
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn lines(&self, stream: Stream) -> &Lines {
        match stream {
            Stream::Stdout => &self.stdout,
            Stream::Stderr => &self.stderr,
        }
    }

    /// Everything it wrote to `stream` so far.
    pub fn output(&self, stream: Stream) -> String {
        self.lines(stream).text()
    }

    /// How many lines it logged (to stderr) so far: a mark for [`Binary::logged_since`].
    pub fn log_len(&self) -> usize {
        self.stderr.len()
    }

    /// Whether a log line after the first `from` contains every one of `parts`.
    pub fn logged_since(&self, from: usize, parts: &[&str]) -> bool {
        self.stderr
            .find(from, &|l| parts.iter().all(|p| l.contains(p)).then_some(()))
            .is_ok()
    }

    /// Waits for the first line of `stream` for which `pick` answers `Some`; that answer.
    /// Fails at once when the stream ends without one (the process exited).
    pub async fn line<T>(&self, what: &str, stream: Stream, pick: impl Fn(&str) -> Option<T>) -> T {
        let lines = self.lines(stream);
        wait_until(what, async || match lines.find(0, &pick) {
            Ok(found) => Some(found),
            Err(ended) => {
                assert!(
                    !ended,
                    "director's {stream:?} ended before {what}:\n{}\nstderr:\n{}",
                    lines.text(),
                    self.stderr.text()
                );
                None
            }
        })
        .await
    }

    /// The address of the listener it logged as `<which> ... listening on http://ADDR/`
    /// (`which`: `proxy` or `admin`).
    pub async fn listening(&self, which: &str) -> SocketAddr {
        self.line(&format!("the {which} listener"), Stream::Stderr, |line| {
            let (before, after) = line.split_once("listening on http://")?;
            before.contains(which).then_some(())?;
            after.trim().trim_end_matches('/').parse().ok()
        })
        .await
    }

    /// Sends `signal` (`-TERM`, `-HUP`) with kill(1).
    pub fn signal(&self, signal: &str) {
        let kill = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(kill.success(), "kill {signal} failed");
    }

    /// Its exit status, if it has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }

    /// Waits (up to [`super::WAIT`]) until it exits; its exit status.
    pub async fn exited(&mut self) -> ExitStatus {
        let child = &mut self.child;
        let stderr = &self.stderr;
        wait_until("director to exit", async || {
            child.try_wait().expect("try_wait").ok_or_else(|| stderr.text())
        })
        .await
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
