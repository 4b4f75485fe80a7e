//! Test fixture: a real php-fpm pool serving the scripts in `tests/php/`.
//!
//! [`PhpFpm::start`] runs `php-fpm8.2 --nodaemonize -n --fpm-config <tmp>/php-fpm.conf` (plus
//! `-R` when running as root) in its own process group from a fresh temp dir, with one static
//! pool listening on a UNIX socket or on `127.0.0.1:<free port>`, and waits until the socket
//! accepts connections. Dropping the fixture kills the whole process group (master and
//! children) and removes the temp dir; [`PhpFpm::kill`] does the same mid-test.
//!
//! build.rs finds php-fpm when the tests are built; a test that starts it carries
//! `#[cfg_attr(not(has_php_fpm), ignore = ...)]` (see [`IGNORE`]), so without php-fpm it is
//! reported as ignored, not passed.
#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use md5::{Digest, Md5};

use super::{free_port, temp_dir, wait_until};

/// Why a php-fpm test is ignored when php-fpm is missing (the text of its `ignore`).
pub const IGNORE: &str = "php-fpm not installed (apt-get install php8.2-fpm)";

/// Where php-fpm listens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listen {
    /// `127.0.0.1:<free port>`; the URL is `fastcgi://127.0.0.1:PORT`.
    Tcp,
    /// `<tmp>/php.sock`; the URL is `fastcgi+unix://<tmp>/php.sock`.
    Unix,
}

impl Listen {
    /// Both transports, for tests that run over each.
    pub const BOTH: [Listen; 2] = [Listen::Unix, Listen::Tcp];
}

/// A running php-fpm master with one pool.
pub struct PhpFpm {
    child: Option<Child>,
    dir: tempfile::TempDir,
    listen: Listen,
    /// `127.0.0.1:PORT` or the socket path.
    address: String,
}

/// The php-fpm binary build.rs found: `php-fpm8.2` on PATH or in /usr/sbin, else `php-fpm`
/// on PATH.
pub fn binary() -> PathBuf {
    match option_env!("DIRECTOR_TEST_PHP_FPM") {
        Some(path) => PathBuf::from(path),
        None => panic!("{IGNORE}: this test should have been ignored"),
    }
}

/// The directory of the test scripts (`tests/php`), absolute.
pub fn docroot() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("php")
}

fn running_as_root() -> bool {
    fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

impl PhpFpm {
    /// Starts php-fpm with `children` static workers listening as `listen`.
    pub async fn start(listen: Listen, children: u32) -> PhpFpm {
        let bin = binary();
        // A free TCP port may be taken between probing and php-fpm's bind: try a few.
        let mut last_log = String::new();
        for _ in 0..5 {
            match Self::try_start(&bin, listen, children).await {
                Ok(fpm) => return fpm,
                Err(log) => last_log = log,
            }
        }
        panic!("php-fpm did not start:\n{last_log}");
    }

    async fn try_start(bin: &Path, listen: Listen, children: u32) -> Result<PhpFpm, String> {
        let dir = temp_dir("php");
        let address = match listen {
            Listen::Tcp => format!("127.0.0.1:{}", free_port()),
            Listen::Unix => dir.path().join("php.sock").display().to_string(),
        };
        let conf = dir.path().join("php-fpm.conf");
        fs::write(&conf, pool_config(dir.path(), &address, children)).expect("write php-fpm.conf");
        let out = fs::File::create(dir.path().join("stdout.log")).expect("create stdout.log");
        let mut cmd = Command::new(bin);
        cmd.arg("--nodaemonize")
            .arg("-n")
            .arg("--fpm-config")
            .arg(&conf)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup log"))
            .stderr(out)
            // Its own process group, so that kill() reaches the workers too.
            .process_group(0);
        if running_as_root() {
            cmd.arg("-R");
        }
        let child = cmd.spawn().map_err(|e| format!("spawn {}: {e}", bin.display()))?;
        let mut fpm = PhpFpm {
            child: Some(child),
            dir,
            listen,
            address,
        };
        let started = wait_until("php-fpm to accept connections", async || {
            if fpm.accepts().await {
                return Ok(Ok(()));
            }
            match fpm.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                Some(exit) => Ok(Err(exit)),
                None => Err(format!("{}\n{}", fpm.log(), fpm.stdout_log())),
            }
        })
        .await;
        match started {
            Ok(()) => Ok(fpm),
            Err(exit) => {
                let log = format!("exit: {exit}\n{}\n{}", fpm.log(), fpm.stdout_log());
                fpm.kill();
                Err(log)
            }
        }
    }

    /// Whether the listening socket accepts a connection right now.
    pub async fn accepts(&self) -> bool {
        match self.listen {
            Listen::Tcp => tokio::net::TcpStream::connect(&self.address).await.is_ok(),
            Listen::Unix => tokio::net::UnixStream::connect(&self.address).await.is_ok(),
        }
    }

    /// `fastcgi://127.0.0.1:PORT` or `fastcgi+unix:///tmp/.../php.sock`.
    pub fn url(&self) -> String {
        match self.listen {
            Listen::Tcp => format!("fastcgi://{}", self.address),
            Listen::Unix => format!("fastcgi+unix://{}", self.address),
        }
    }

    pub fn listen(&self) -> Listen {
        self.listen
    }

    /// `127.0.0.1:PORT` or the socket path.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The document root the scripts live in (`tests/php`).
    pub fn docroot(&self) -> PathBuf {
        docroot()
    }

    /// The absolute path of script `name` in the document root.
    pub fn script(&self, name: &str) -> PathBuf {
        docroot().join(name)
    }

    /// This instance's temp dir (config, socket, logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// This instance's name (its temp dir's), which the scripts see as env
    /// `DIRECTOR_TEST_FPM`: tells which php-fpm answered.
    pub fn id(&self) -> String {
        instance_id(self.dir.path())
    }

    /// The master's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The php-fpm error log (master messages and, with `catch_workers_output`, whatever the
    /// workers write to stdout/stderr).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("php-fpm.log")).unwrap_or_default()
    }

    fn stdout_log(&self) -> String {
        fs::read_to_string(self.dir.path().join("stdout.log")).unwrap_or_default()
    }

    /// Kills the master and every worker (SIGKILL to the process group), reaps the master and
    /// waits (up to 5 s) until no worker holds the listening socket any more, so the next
    /// connection is refused. The UNIX socket file stays behind, as after a crash.
    pub fn kill(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let group = format!("-{}", child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = child.kill();
        let _ = child.wait();
        // The workers die asynchronously; each holds the listening socket until it is gone.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while self.accepts_blocking() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn accepts_blocking(&self) -> bool {
        match self.listen {
            Listen::Tcp => std::net::TcpStream::connect(&self.address).is_ok(),
            Listen::Unix => std::os::unix::net::UnixStream::connect(&self.address).is_ok(),
        }
    }
}

impl Drop for PhpFpm {
    fn drop(&mut self) {
        self.kill();
    }
}

fn instance_id(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The php-fpm configuration: global section plus one static pool named `test`.
fn pool_config(dir: &Path, address: &str, children: u32) -> String {
    let id = instance_id(dir);
    let dir = dir.display();
    format!(
        "[global]
pid = {dir}/php-fpm.pid
error_log = {dir}/php-fpm.log
log_level = notice
daemonize = no

[test]
listen = {address}
listen.mode = 0666
listen.backlog = 511
pm = static
pm.max_children = {children}
pm.status_path = /fpm-status
catch_workers_output = yes
decorate_workers_output = no
clear_env = yes
request_terminate_timeout = 120s
security.limit_extensions = .php
php_admin_value[upload_max_filesize] = 64M
php_admin_value[post_max_size] = 64M
php_admin_value[memory_limit] = 256M
php_admin_value[output_buffering] = 0
php_admin_value[max_execution_time] = 120
php_admin_flag[display_errors] = off
php_admin_flag[log_errors] = on
env[DIRECTOR_TEST_FPM] = {id}
"
    )
}

/// MD5 of `data` as 32 lowercase hex digits, to compare with PHP's `md5()`.
pub fn md5_hex(data: &[u8]) -> String {
    Md5::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}
