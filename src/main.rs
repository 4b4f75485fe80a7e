//! The `director` binary: command line, logging, configuration, run — and, for container
//! health checks, a one-request HTTP probe (`--health-check URL`, through awc).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use director::app::{self, StartOptions};
use director::config::{self, Endpoint, ListenAddr};
use director::demo;
use director::listener::limits;
use director::transport::http_client::EndpointClient;

const USAGE: &str = "usage: director [--config PATH] [--check-config] [--demo] [--version]
       director --health-check URL
       director --hash-password < password.txt

  --config PATH        configuration file (default ./config.yaml)
  --demo               also start sample backends for the config's local backend addresses,
                       and send them a little traffic through the proxy
  --check-config       validate the configuration, print every error, and exit
  --health-check URL   GET an http:// URL (e.g. http://127.0.0.1:8081/haproxy/monitor) with
                       the token of DIRECTOR_ADMIN_TOKEN, if set; exit 0 on a 2xx answer, else 1
  --hash-password      read a password (its first line) from standard input and print its
                       Argon2id hash, for haproxy_compat.users[].password_hash
  --version            print the version and exit

Logging is controlled with RUST_LOG (e.g. RUST_LOG=info).";

/// What the command line asks for.
enum Command {
    Run {
        config: PathBuf,
        demo: bool,
    },
    CheckConfig {
        config: PathBuf,
    },
    HealthCheck {
        url: String,
    },
    HashPassword,
    /// `--version` or `--help`: the text to print.
    Print(String),
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let (mut config, mut check_only, mut demo, mut health_url) = (None, false, false, None);
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--config" | "-c" => config = Some(PathBuf::from(it.next().ok_or("--config needs a path")?)),
            "--check-config" => check_only = true,
            "--demo" => demo = true,
            "--health-check" => health_url = Some(it.next().ok_or("--health-check needs a URL")?),
            "--hash-password" => return Ok(Command::HashPassword),
            "--version" | "-V" => {
                return Ok(Command::Print(format!("director {}", env!("CARGO_PKG_VERSION"))))
            }
            "--help" | "-h" => return Ok(Command::Print(USAGE.to_owned())),
            other => match other.strip_prefix("--config=") {
                Some(path) => config = Some(path.into()),
                None => return Err(format!("unknown argument '{other}'")),
            },
        }
    }
    if let Some(url) = health_url {
        return Ok(Command::HealthCheck { url });
    }
    let config = config.unwrap_or_else(|| PathBuf::from("config.yaml"));
    Ok(match check_only {
        true => Command::CheckConfig { config },
        false => Command::Run { config, demo },
    })
}

fn main() -> ExitCode {
    init_logger();
    match parse_args(std::env::args().skip(1)) {
        Ok(Command::Print(text)) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Ok(Command::HealthCheck { url }) => health_check(&url),
        Ok(Command::HashPassword) => hash_password(),
        Ok(Command::CheckConfig { config }) => match load(&config) {
            Some(_) => {
                println!("{}: ok", config.display());
                ExitCode::SUCCESS
            }
            None => ExitCode::FAILURE,
        },
        Ok(Command::Run { config, demo }) => match load(&config) {
            Some(document) => run(document, demo),
            None => ExitCode::FAILURE,
        },
        Err(e) => {
            eprintln!("director: {e}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// `--hash-password`: the Argon2id PHC string of the first line of standard input.
fn hash_password() -> ExitCode {
    let mut line = String::new();
    if let Err(e) = std::io::stdin().read_line(&mut line) {
        eprintln!("director: cannot read the password from standard input: {e}");
        return ExitCode::FAILURE;
    }
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    match director::admin::basic_auth::hash_password(password) {
        Ok(hash) => {
            println!("{hash}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("director: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Reads and validates the configuration; prints every error.
fn load(path: &std::path::Path) -> Option<config::Document> {
    match config::Document::from_file(path) {
        Ok(document) => Some(document),
        Err(errors) => {
            eprintln!("director: {} has {} error(s):", path.display(), errors.0.len());
            for e in &errors.0 {
                eprintln!("  {e}");
            }
            None
        }
    }
}

/// Serves `document` until a signal stops director; with `with_demo`, the sample backends
/// start first and the demo's traffic once director serves.
fn run(mut document: config::Document, with_demo: bool) -> ExitCode {
    raise_open_file_limit();
    let demo = match with_demo {
        false => None,
        true => {
            let token = demo::ensure_admin_token(&mut document.config);
            match demo::start(&document.config) {
                Ok(running_demo) => Some((running_demo, token)),
                Err(e) => {
                    eprintln!("director: cannot start the demo backends: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    };
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
    if let Some((demo, token)) = &demo {
        demo.drive_traffic(&running.proxy_addrs);
        let admin = running.admin_addr.as_ref();
        println!("{}", demo::banner(demo, &running.proxy_addrs, admin, token));
    }
    let result = running.wait();
    // Removes the demo's sockets.
    drop(demo);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("director: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Raises the soft open-file limit to the hard one before any listener exists, so that the
/// proxy's connection limit (derived from it at start) is as high as the system allows.
fn raise_open_file_limit() {
    match limits::raise_nofile_limit() {
        Ok((before, after)) if after.soft != before.soft => log::info!(
            "open-file limit raised from {} to {} (hard limit {})",
            before.soft,
            after.soft,
            after.hard
        ),
        Ok((_, now)) => log::info!("open-file limit {} (hard limit {})", now.soft, now.hard),
        Err(e) => log::warn!("cannot raise the open-file limit: {e}"),
    }
}

fn describe(addr: &ListenAddr) -> String {
    match addr {
        ListenAddr::Tcp(sa) => format!("http://{sa}/"),
        ListenAddr::Unix(_) => addr.to_string(),
    }
}

/// `RUST_LOG` as env_logger reads it, `info` by default, with one rule before it: rustls logs
/// below `error` only when `RUST_LOG` names rustls. rustls warns about what a client sends
/// (an IP address as SNI, as wrk and many health checkers send it): a line per handshake that
/// any client could make director write.
fn init_logger() {
    let mut logger = env_logger::Builder::new();
    logger
        .filter_level(log::LevelFilter::Info)
        .filter_module("rustls", log::LevelFilter::Error);
    if let Ok(filters) = std::env::var("RUST_LOG") {
        logger.parse_filters(&filters);
    }
    if let Ok(style) = std::env::var("RUST_LOG_STYLE") {
        logger.parse_write_style(&style);
    }
    logger.init();
}

/// `--health-check URL`: exit 0 when `GET URL` answers 2xx, else 1 with the reason on stderr.
/// Needs no other tool in the container image.
fn health_check(url: &str) -> ExitCode {
    let token = std::env::var("DIRECTOR_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.is_empty());
    let status = match actix_rt::Runtime::new() {
        Ok(runtime) => runtime.block_on(probe(url, token.as_deref())),
        Err(e) => Err(format!("cannot start a runtime: {e}")),
    };
    match status {
        Ok(status) if (200..300).contains(&status) => ExitCode::SUCCESS,
        Ok(status) => {
            eprintln!("director: {url} answered {status}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("director: {url}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Sends `GET url` (`http://host[:port][/path]`) with an optional bearer token, within five
/// seconds; the status.
async fn probe(url: &str, token: Option<&str>) -> Result<u16, String> {
    const TIMEOUT: Duration = Duration::from_secs(5);
    if !url.starts_with("http://") {
        return Err("only http:// URLs are supported".to_owned());
    }
    let uri: awc::http::Uri = url.parse().map_err(|e| format!("not a URL: {e}"))?;
    let (Some(authority), Some(host)) = (uri.authority(), uri.host()) else {
        return Err("the URL names no host".to_owned());
    };
    let endpoint = Endpoint::Tcp {
        host: host.trim_start_matches('[').trim_end_matches(']').to_owned(),
        port: uri.port_u16().unwrap_or(80),
    };
    let path = uri.path_and_query().map_or("/", |pq| pq.as_str());
    let mut request =
        EndpointClient::new(&endpoint, None, TIMEOUT).get(path, authority.as_str(), "director-health-check");
    if let Some(token) = token {
        request = request.header("authorization", &format!("Bearer {token}"));
    }
    let response = request.send().await.map_err(|e| e.to_string())?;
    Ok(response.status().as_u16())
}
