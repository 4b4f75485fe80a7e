//! Probes for the optional tools the integration tests drive, so that a test needing a missing
//! one is reported as ignored, with the reason, instead of passing without doing anything:
//!
//! - php-fpm (`php-fpm8.2` on PATH or in /usr/sbin, else `php-fpm` on PATH): sets
//!   `cfg(has_php_fpm)` and `DIRECTOR_TEST_PHP_FPM` (its path) for the tests;
//! - Chromium (/usr/bin/chromium) and chromedriver (on PATH or in /usr/bin): sets
//!   `cfg(has_chromium)`, `DIRECTOR_TEST_CHROMIUM` and `DIRECTOR_TEST_CHROMEDRIVER`;
//! - Prometheus' haproxy_exporter (`prometheus-haproxy-exporter` on PATH), a real HAProxy CSV
//!   consumer: sets `cfg(has_haproxy_exporter)` and `DIRECTOR_TEST_HAPROXY_EXPORTER`;
//! - etcd (`etcd` on PATH or /usr/bin/etcd, Debian's `etcd-server`), for the replicas sharing
//!   runtime state: sets `cfg(has_etcd)` and `DIRECTOR_TEST_ETCD`.
//! - dnsmasq (on PATH or in /usr/sbin), the DNS server of the discovery tests: sets
//!   `cfg(has_dnsmasq)` and `DIRECTOR_TEST_DNSMASQ`.
//!
//! With `DIRECTOR_REQUIRE_ALL` set (to anything but empty or `0`; CI sets it), a missing tool
//! fails the build instead. `DIRECTOR_TESTS_WITHOUT` (e.g. `php-fpm,chromium`) pretends the
//! named tools are missing, to see what a machine without them reports.
//!
//! The probe runs again when a directory it looks in changes (installing or removing a tool),
//! when PATH changes, or when either variable changes.

use std::env;
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=PATH");
    println!("cargo::rerun-if-env-changed=DIRECTOR_REQUIRE_ALL");
    println!("cargo::rerun-if-env-changed=DIRECTOR_TESTS_WITHOUT");
    println!("cargo::rustc-check-cfg=cfg(has_php_fpm)");
    println!("cargo::rustc-check-cfg=cfg(has_chromium)");
    println!("cargo::rustc-check-cfg=cfg(has_haproxy_exporter)");
    println!("cargo::rustc-check-cfg=cfg(has_etcd)");
    println!("cargo::rustc-check-cfg=cfg(has_dnsmasq)");

    let path_dirs: Vec<PathBuf> = env::var_os("PATH")
        .map(|p| env::split_paths(&p).collect())
        .unwrap_or_default();
    let mut watched: Vec<PathBuf> = path_dirs.clone();
    watched.extend([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")]);
    watched.sort();
    watched.dedup();
    for dir in watched.iter().filter(|d| d.is_dir()) {
        println!("cargo::rerun-if-changed={}", dir.display());
    }

    let hidden = env::var("DIRECTOR_TESTS_WITHOUT").unwrap_or_default();
    let hidden = |tool: &str| hidden.split([',', ' ']).any(|t| t == tool);
    let on_path = |name: &str| path_dirs.iter().map(|d| d.join(name)).find(|p| p.is_file());
    let file = |path: &str| Some(PathBuf::from(path)).filter(|p| p.is_file());

    let php_fpm = on_path("php-fpm8.2")
        .or_else(|| file("/usr/sbin/php-fpm8.2"))
        .or_else(|| on_path("php-fpm"))
        .filter(|_| !hidden("php-fpm"));
    let chromium = file("/usr/bin/chromium").filter(|_| !hidden("chromium"));
    let chromedriver = on_path("chromedriver")
        .or_else(|| file("/usr/bin/chromedriver"))
        .filter(|_| !hidden("chromium"));
    let haproxy_exporter = on_path("prometheus-haproxy-exporter").filter(|_| !hidden("haproxy-exporter"));
    let etcd = on_path("etcd")
        .or_else(|| file("/usr/bin/etcd"))
        .filter(|_| !hidden("etcd"));
    let dnsmasq = on_path("dnsmasq")
        .or_else(|| file("/usr/sbin/dnsmasq"))
        .filter(|_| !hidden("dnsmasq"));

    let mut missing = Vec::new();
    match &php_fpm {
        Some(bin) => found("has_php_fpm", &[("DIRECTOR_TEST_PHP_FPM", bin)]),
        None => missing.push("php-fpm (apt-get install php8.2-fpm)"),
    }
    match (&chromium, &chromedriver) {
        (Some(browser), Some(driver)) => found(
            "has_chromium",
            &[
                ("DIRECTOR_TEST_CHROMIUM", browser),
                ("DIRECTOR_TEST_CHROMEDRIVER", driver),
            ],
        ),
        _ => missing.push("chromium and chromedriver (apt-get install chromium chromium-driver)"),
    }
    match &haproxy_exporter {
        Some(bin) => found("has_haproxy_exporter", &[("DIRECTOR_TEST_HAPROXY_EXPORTER", bin)]),
        None => missing.push("haproxy_exporter (apt-get install prometheus-haproxy-exporter)"),
    }
    match &etcd {
        Some(bin) => found("has_etcd", &[("DIRECTOR_TEST_ETCD", bin)]),
        None => missing.push("etcd (apt-get install etcd-server)"),
    }
    match &dnsmasq {
        Some(bin) => found("has_dnsmasq", &[("DIRECTOR_TEST_DNSMASQ", bin)]),
        None => missing.push("dnsmasq (apt-get install dnsmasq)"),
    }

    let required = env::var("DIRECTOR_REQUIRE_ALL").is_ok_and(|v| !v.is_empty() && v != "0");
    if required && !missing.is_empty() {
        panic!(
            "DIRECTOR_REQUIRE_ALL is set, and the tests need what is not installed: {}",
            missing.join("; ")
        );
    }
    for tool in &missing {
        println!("cargo::warning=the tests that need {tool} will be ignored: not installed");
    }
}

/// Sets `cfg(flag)` and the environment variables naming where the tool is.
fn found(flag: &str, paths: &[(&str, &Path)]) {
    println!("cargo::rustc-cfg={flag}");
    for (name, path) in paths {
        println!("cargo::rustc-env={name}={}", path.display());
    }
}
