//! A cluster's active health checks (`health:`) and its `client_routing:` in `config.yaml`
//! (control plane).
//!
//! A child of `load`, like `sections` and `buckets`; the cluster takes both keys out of its
//! settings and hands them here, so a bad health setting does not hide problems elsewhere in
//! the cluster (nor the other way round). Every bad key is reported at once, each at its path.
//!
//! Rules:
//! - `health` absent or `null` (`health:` with no value): no active checks (`None`); a map,
//!   even `{}`, enables them and every missing key takes its default.
//! - `health.mode`: `lazy`, `opportunistic` or `paranoid` (default). `initial`: `online`
//!   (default) or `offline`.
//! - `health.interval` (2s), `health.timeout` (1s): durations greater than 0.
//! - `health.rise` (2), `health.fall` (3): integers, at least 1.
//! - `health.path` (`/`): starts with `/`, printable ASCII only (no spaces, control or non-ASCII
//!   characters: percent-encode them), no fragment (`#`); a query is allowed.
//! - `health.host` (default: the backend's address): `NAME` or `NAME:PORT`, where `NAME` is a
//!   host name, an IPv4 address or a bracketed IPv6 literal.
//! - `health.expect` (default `[]` = 2xx and 3xx): a list of distinct integers in 100..=599.
//! - `client_routing`: absent or `null` for none, else exactly one of `{ cookie: NAME }` (an
//!   RFC 6265 cookie name) or `{ header: NAME }` (an RFC 7230 header name); both are tokens.
//! - `health.fcgi_script_filename` (default: the cluster's script mapping of `path`): an
//!   absolute path, the `SCRIPT_FILENAME` of probes sent to FastCGI backends.
//! - `passive_health` (absent or `null`: the defaults): `max_fails` (3; 0 = never) failed
//!   requests within `fail_timeout` (10s, a duration greater than 0) take a backend out.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::super::duration::DurationValue;
use super::super::model::{ClientRouting, HealthConfig, HealthMode, InitialHealth, PassiveHealthConfig};
use super::buckets::is_token;
use super::fastcgi::absolute_path_problem;
use super::is_valid_host;
use super::{index_path, key_path, kind, Loader};

const HEALTH_KEYS: &[&str] = &[
    "mode",
    "interval",
    "timeout",
    "rise",
    "fall",
    "path",
    "host",
    "expect",
    "initial",
    "fcgi_script_filename",
];
const CLIENT_ROUTING_KEYS: &[&str] = &["cookie", "header"];
const PASSIVE_HEALTH_KEYS: &[&str] = &["max_fails", "fail_timeout"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPassiveHealth {
    max_fails: Option<u32>,
    fail_timeout: Option<DurationValue>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    mode: Option<String>,
    interval: Option<DurationValue>,
    timeout: Option<DurationValue>,
    rise: Option<u32>,
    fall: Option<u32>,
    path: Option<String>,
    host: Option<String>,
    /// A list of status codes; checked element by element.
    expect: Option<Value>,
    initial: Option<String>,
    fcgi_script_filename: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClientRouting {
    cookie: Option<String>,
    header: Option<String>,
}

const DEFAULT_INTERVAL: Duration = Duration::from_secs(2);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
const DEFAULT_RISE: u32 = 2;
const DEFAULT_FALL: u32 = 3;
const DEFAULT_PATH: &str = "/";

const MODES: &[(&str, HealthMode)] = &[
    ("lazy", HealthMode::Lazy),
    ("opportunistic", HealthMode::Opportunistic),
    ("paranoid", HealthMode::Paranoid),
];
const INITIALS: &[(&str, InitialHealth)] = &[
    ("online", InitialHealth::Online),
    ("offline", InitialHealth::Offline),
];

/// The characters of an RFC 7230 / RFC 6265 token besides letters and digits, for messages.
const TOKEN_SYMBOLS: &str = "!#$%&'*+-.^_`|~";

/// Why `path` cannot be the target of a probe request, if it cannot.
fn probe_path_problem(path: &str) -> Option<String> {
    if !path.starts_with('/') {
        return Some(format!("must start with \"/\" (got `{path}`)"));
    }
    if let Some(c) = path.chars().find(|c| !c.is_ascii_graphic()) {
        return Some(format!(
            "{path:?} contains {c:?}: spaces, control and non-ASCII characters are not allowed \
             (percent-encode them)"
        ));
    }
    if path.contains('#') {
        return Some(format!(
            "{path:?} contains a fragment (`#`), which is never sent in a request"
        ));
    }
    None
}

/// Why `host` cannot be the `Host` header of a probe, if it cannot.
fn probe_host_problem(host: &str) -> Option<String> {
    if host.is_empty() {
        return Some("must not be empty (leave `host` out to send the backend's address)".to_owned());
    }
    let bad = || {
        Some(format!(
            "`{host}` is not a host name with an optional port (e.g. example.com or example.com:8080)"
        ))
    };
    // `[v6]` or `[v6]:port`; else `name` or `name:port`.
    let (name, port) = if host.starts_with('[') {
        let Some(end) = host.find(']') else {
            return bad();
        };
        let (name, rest) = host.split_at(end + 1);
        if rest.is_empty() {
            (name, None)
        } else {
            let Some(port) = rest.strip_prefix(':') else {
                return bad();
            };
            (name, Some(port))
        }
    } else {
        match host.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        }
    };
    let port_ok = port.is_none_or(|p| p.chars().all(|c| c.is_ascii_digit()) && p.parse::<u16>().is_ok());
    if is_valid_host(name) && port_ok {
        None
    } else {
        bad()
    }
}

/// Why `name` cannot be the cookie or header (`what`) named by `client_routing`, if it cannot.
fn routing_name_problem(name: &str, what: &str, rfc: &str) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty".to_owned());
    }
    if !is_token(name) {
        return Some(format!(
            "`{name}` is not a valid {what} name (an {rfc} token: letters, digits and {TOKEN_SYMBOLS})"
        ));
    }
    None
}

impl Loader<'_> {
    /// `passive_health:` of a cluster; absent or `null` gives the defaults.
    pub(super) fn passive_health(&mut self, value: Option<Value>, path: &str) -> Option<PassiveHealthConfig> {
        let defaults = PassiveHealthConfig::default();
        let raw: RawPassiveHealth =
            self.piece(value, path, PASSIVE_HEALTH_KEYS, "`{ max_fails, fail_timeout }`")?;
        let fail_timeout = self.positive(
            key_path(path, "fail_timeout"),
            raw.fail_timeout,
            defaults.fail_timeout,
        );
        Some(PassiveHealthConfig {
            max_fails: raw.max_fails.unwrap_or(defaults.max_fails),
            fail_timeout,
        })
    }

    /// A cluster's `health:` (optional) at `path`; `Some(None)` when there is none.
    pub(super) fn health(&mut self, value: Option<Value>, path: &str) -> Option<Option<HealthConfig>> {
        let value = match value {
            None | Some(Value::Null) => return Some(None),
            Some(value) => value,
        };
        let raw: RawHealth = self.piece(Some(value), path, HEALTH_KEYS, "the health settings")?;
        let mut valid = true;
        let mode = self.choice(
            key_path(path, "mode"),
            raw.mode,
            HealthMode::Paranoid,
            MODES,
            "health mode",
        );
        let interval = self.positive(key_path(path, "interval"), raw.interval, DEFAULT_INTERVAL);
        let timeout = self.positive(key_path(path, "timeout"), raw.timeout, DEFAULT_TIMEOUT);
        let rise = self.at_least_one(raw.rise, &key_path(path, "rise"), DEFAULT_RISE);
        let fall = self.at_least_one(raw.fall, &key_path(path, "fall"), DEFAULT_FALL);
        let probe_path = raw.path.unwrap_or_else(|| DEFAULT_PATH.to_owned());
        if let Some(problem) = probe_path_problem(&probe_path) {
            self.error(key_path(path, "path"), problem);
            valid = false;
        }
        if let Some(problem) = raw.host.as_deref().and_then(probe_host_problem) {
            self.error(key_path(path, "host"), problem);
            valid = false;
        }
        let expect = self.status_codes(raw.expect, &key_path(path, "expect"));
        let script = raw.fcgi_script_filename;
        if let Some(problem) = script.as_deref().and_then(absolute_path_problem) {
            self.error(key_path(path, "fcgi_script_filename"), problem);
            valid = false;
        }
        let initial = self.choice(
            key_path(path, "initial"),
            raw.initial,
            InitialHealth::Online,
            INITIALS,
            "initial health",
        );
        let health = HealthConfig {
            mode: mode?,
            interval,
            timeout,
            rise: rise?,
            fall: fall?,
            path: probe_path,
            host: raw.host,
            expect: expect?,
            initial: initial?,
            fcgi_script_filename: script.map(PathBuf::from),
        };
        let durations_ok = !interval.is_zero() && !timeout.is_zero();
        (valid && durations_ok).then_some(Some(health))
    }

    /// `rise` or `fall`: an integer of at least 1; `None` gives `default`.
    fn at_least_one(&mut self, value: Option<u32>, path: &str, default: u32) -> Option<u32> {
        match value.unwrap_or(default) {
            0 => {
                self.error(path, "must be at least 1");
                None
            }
            n => Some(n),
        }
    }

    /// `health.expect`: a list of distinct status codes; `null` is the empty list.
    fn status_codes(&mut self, value: Option<Value>, path: &str) -> Option<Vec<u16>> {
        let list = match value {
            None | Some(Value::Null) => return Some(Vec::new()),
            Some(Value::Array(list)) => list,
            Some(other) => {
                let found = kind(&other);
                self.error(
                    path,
                    format!("expected a list of status codes (e.g. [200, 204]), found {found}"),
                );
                return None;
            }
        };
        let mut seen: HashMap<u16, String> = HashMap::new();
        let mut out = Some(Vec::with_capacity(list.len()));
        for (i, item) in list.iter().enumerate() {
            let at = index_path(path, i);
            let code = match item {
                Value::Number(n) if n.is_f64() => {
                    Err(format!("expected an integer status code, found `{n}`"))
                }
                Value::Number(n) => match n.as_u64().and_then(|c| u16::try_from(c).ok()) {
                    Some(code) if (100..=599).contains(&code) => Ok(code),
                    _ => Err(format!("status code {n} is not between 100 and 599")),
                },
                other => Err(format!(
                    "expected a status code (an integer from 100 to 599), found {}",
                    kind(other)
                )),
            };
            match code {
                Ok(code) => match seen.get(&code) {
                    Some(first) => {
                        let message = format!("duplicate status code {code} (also at {first})");
                        self.error(at, message);
                        out = None;
                    }
                    None => {
                        seen.insert(code, at);
                        if let Some(out) = out.as_mut() {
                            out.push(code);
                        }
                    }
                },
                Err(message) => {
                    self.error(at, message);
                    out = None;
                }
            }
        }
        out
    }

    /// A cluster's `client_routing:` (optional) at `path`; `Some(None)` when there is none.
    pub(super) fn client_routing(
        &mut self,
        value: Option<Value>,
        path: &str,
    ) -> Option<Option<ClientRouting>> {
        let value = match value {
            None | Some(Value::Null) => return Some(None),
            Some(value) => value,
        };
        let raw: RawClientRouting = self.piece(
            Some(value),
            path,
            CLIENT_ROUTING_KEYS,
            "`{ cookie: NAME }` or `{ header: NAME }`",
        )?;
        let cookie_path = key_path(path, "cookie");
        let header_path = key_path(path, "header");
        type Make = fn(String) -> ClientRouting;
        let (name, name_path, what, rfc, make) = match (raw.cookie, raw.header) {
            (Some(name), None) => (
                name,
                cookie_path,
                "cookie",
                "RFC 6265",
                ClientRouting::Cookie as Make,
            ),
            (None, Some(name)) => (
                name,
                header_path,
                "header",
                "RFC 7230",
                ClientRouting::Header as Make,
            ),
            (Some(_), Some(_)) => {
                self.error(path, "set either `cookie` or `header`, not both");
                return None;
            }
            (None, None) => {
                // Not when one of them was present but unusable (already reported).
                if !self.has_error_at(&cookie_path) && !self.has_error_at(&header_path) {
                    self.error(
                        path,
                        "set `cookie` or `header` to the name that carries the backend \
                         (e.g. { cookie: X-Backend })",
                    );
                }
                return None;
            }
        };
        if let Some(problem) = routing_name_problem(&name, what, rfc) {
            self.error(name_path, problem);
            return None;
        }
        Some(Some(make(name)))
    }
}
