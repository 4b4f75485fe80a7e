//! Test fixture: Debian's dnsmasq as a real DNS server on a loopback port, for the discovery
//! tests.
//!
//! [`Dnsmasq::start`] runs `dnsmasq --no-daemon` on `127.0.0.1:<free port>` (UDP and TCP),
//! answering only from its own records: A records from a hosts file ([`Dnsmasq::set_hosts`]
//! rewrites it and sends SIGHUP, which makes dnsmasq re-read it and empty its cache) and
//! whatever extra options a test gives (`--srv-host=...`, `--host-record=...`), all with TTL
//! 1 s (`--local-ttl`). It waits until dnsmasq has read the hosts file (it binds its sockets
//! before that). Dropping the fixture kills dnsmasq; [`Dnsmasq::stop`] does so mid-test.
//!
//! build.rs finds dnsmasq; a test that starts it carries
//! `#[cfg_attr(not(has_dnsmasq), ignore = ...)]` (see [`IGNORE`]).
#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::{free_port, temp_dir, wait_until};

/// Why a dnsmasq test is ignored when dnsmasq is missing (the text of its `ignore`).
pub const IGNORE: &str = "dnsmasq not installed (apt-get install dnsmasq-base)";

/// The dnsmasq binary build.rs found.
pub fn binary() -> PathBuf {
    match option_env!("DIRECTOR_TEST_DNSMASQ") {
        Some(path) => PathBuf::from(path),
        None => panic!("{IGNORE}: this test should have been ignored"),
    }
}

/// A running dnsmasq.
pub struct Dnsmasq {
    child: Option<Child>,
    dir: tempfile::TempDir,
    port: u16,
}

impl Dnsmasq {
    /// Starts dnsmasq serving `hosts` (`(address, name)` lines of its hosts file) and `extra`
    /// options.
    pub async fn start(hosts: &[(&str, &str)], extra: &[String]) -> Dnsmasq {
        // A free TCP port may be taken (or its UDP twin be in use): try a few.
        let mut last_log = String::new();
        for _ in 0..5 {
            match Self::try_start(hosts, extra).await {
                Ok(dns) => return dns,
                Err(log) => last_log = log,
            }
        }
        panic!("dnsmasq did not start:\n{last_log}");
    }

    async fn try_start(hosts: &[(&str, &str)], extra: &[String]) -> Result<Dnsmasq, String> {
        let mut dns = Dnsmasq {
            child: None,
            dir: temp_dir("dnsmasq"),
            port: free_port(),
        };
        fs::write(dns.hosts_path(), hosts_file(hosts)).expect("write hosts file");
        let log = fs::File::create(dns.log_path()).expect("create dnsmasq log");
        let mut cmd = Command::new(binary());
        cmd.arg("--no-daemon")
            .arg(format!("--port={}", dns.port))
            .arg("--listen-address=127.0.0.1")
            .arg("--bind-interfaces")
            .arg("--no-resolv")
            .arg("--no-hosts")
            .arg(format!("--addn-hosts={}", dns.hosts_path().display()))
            .arg("--local-ttl=1")
            .arg("--pid-file=")
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log);
        // As root dnsmasq would drop to `nobody`, who can't read the private temp dir.
        if fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0) {
            cmd.arg("--user=root");
        }
        dns.child = Some(cmd.spawn().expect("spawn dnsmasq"));
        // It binds its sockets before it reads the hosts file.
        let marker = format!("read {}", dns.hosts_path().display());
        let started = wait_until("dnsmasq to read its hosts file", async || {
            if dns.log().contains(&marker) {
                return Ok(Ok(()));
            }
            match dns.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                Some(exit) => Ok(Err(format!("exit: {exit}\n{}", dns.log()))),
                None => Err(dns.log()),
            }
        })
        .await;
        started.map(|()| dns)
    }

    /// `127.0.0.1:PORT`, for `resolver.nameservers`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Replaces the hosts file with `hosts` and waits until dnsmasq has re-read it.
    pub async fn set_hosts(&self, hosts: &[(&str, &str)]) {
        let marker = format!("read {}", self.hosts_path().display());
        let before = self.log().matches(&marker).count();
        fs::write(self.hosts_path(), hosts_file(hosts)).expect("write hosts file");
        let pid = self.child.as_ref().expect("dnsmasq running").id();
        let status = Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -HUP dnsmasq");
        wait_until("dnsmasq to re-read its hosts file", async || {
            let log = self.log();
            if log.matches(&marker).count() > before {
                Ok(())
            } else {
                Err(log)
            }
        })
        .await;
    }

    /// Stops dnsmasq: the nameserver stops answering.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// What dnsmasq wrote.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn hosts_path(&self) -> PathBuf {
        self.dir.path().join("hosts")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("dnsmasq.log")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        self.stop();
    }
}

fn hosts_file(hosts: &[(&str, &str)]) -> String {
    hosts.iter().map(|(ip, name)| format!("{ip} {name}\n")).collect()
}
