//! The `director` binary: command line, logging, configuration, run.

use std::path::PathBuf;
use std::process::ExitCode;

use director::app::{self, StartOptions};

use director::config;

const USAGE: &str = "usage: director [--config PATH] [--check-config] [--demo] [--version]

  --config PATH    configuration file (default ./config.yaml)
  --demo           also start the sample backends the shipped config.yaml points at
  --check-config   validate the configuration, print every error, and exit
  --version        print the version and exit

Logging is controlled with RUST_LOG (e.g. RUST_LOG=info).";

struct Args {
    config: PathBuf,
    check_only: bool,
    demo: bool,
}

fn parse_args() -> Result<Option<Args>, String> {
    let mut args = Args {
        config: PathBuf::from("config.yaml"),
        check_only: false,
        demo: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--config" | "-c" => args.config = it.next().ok_or("--config needs a path")?.into(),
            "--check-config" => args.check_only = true,
            "--demo" => args.demo = true,
            "--version" | "-V" => {
                println!("director {}", env!("CARGO_PKG_VERSION"));
                return Ok(None);
            }
            "--help" | "-h" => {
                println!("{USAGE}");
                return Ok(None);
            }
            other => match other.strip_prefix("--config=") {
                Some(path) => args.config = path.into(),
                None => return Err(format!("unknown argument '{other}'")),
            },
        }
    }
    Ok(Some(args))
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = match parse_args() {
        Ok(Some(args)) => args,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("director: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let document = match config::Document::from_file(&args.config) {
        Ok(document) => document,
        Err(errors) => {
            eprintln!(
                "director: {} has {} error(s):",
                args.config.display(),
                errors.0.len()
            );
            for e in &errors.0 {
                eprintln!("  {e}");
            }
            return ExitCode::FAILURE;
        }
    };
    if args.check_only {
        println!("{}: ok", args.config.display());
        return ExitCode::SUCCESS;
    }
    if args.demo {
        if let Err(e) = director::demo::start() {
            eprintln!("director: cannot start the demo backends: {e}");
            return ExitCode::FAILURE;
        }
    }
    let options = StartOptions {
        handle_signals: true,
        watch_config: true,
    };
    let running = match app::start(document, options) {
        Ok(running) => running,
        Err(e) => {
            eprintln!("director: {e}");
            return ExitCode::FAILURE;
        }
    };
    for addr in &running.proxy_addrs {
        log::info!("proxy listening on {}", describe(addr));
    }
    if let Some(addr) = &running.admin_addr {
        log::info!(
            "admin (dashboard, /api/v1, /metrics) listening on {}",
            describe(addr)
        );
    }
    if args.demo {
        println!("director demo: try `curl http://127.0.0.1:8080/` (answers alternate between app01 and app02; app03 is a standby for overflow)");
    }
    match running.wait() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("director: {e}");
            ExitCode::FAILURE
        }
    }
}

fn describe(addr: &director::config::ListenAddr) -> String {
    match addr {
        director::config::ListenAddr::Tcp(sa) => format!("http://{sa}/"),
        director::config::ListenAddr::Unix(path) => format!("unix:{}", path.display()),
    }
}
