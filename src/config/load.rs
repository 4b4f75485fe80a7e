//! Loading `config.yaml` into a validated [`Config`] (control plane).
//!
//! Owns reading the file (through the `config` crate), `${VAR}` expansion, piece-wise
//! deserialization and error collection. The document is taken apart piece by piece (the
//! `proxy` section, `access_log`, each route, each cluster's settings, each backend) and a piece
//! with a bad field is re-checked with that field blanked, so *every* problem is reported at
//! once, each with its path (`clusters.shop.backends[1].url`). A [`Config`] is returned only
//! when nothing is wrong. What each section means (raw shapes, defaults, checks) is in the child
//! modules under `load/`: `sections`, except a cluster's `backends` list (`backends`), its
//! bucket tree (`buckets`), its health checks and client routing (`health`), its `cache` and
//! its `fastcgi` and `x_sendfile` (`fastcgi`), the TLS settings of `https://` backends
//! (`backend_tls`), a backend entry's `discover:` and the `resolver` section (`discovery`), the
//! `admin` section, `haproxy_compat` and `cluster_state`; the tests are in `tests` and its
//! children.
//!
//! Conventions: an explicit `null` (`key:` with no value) means "use the default"; keys are
//! case-sensitive; a map key that is not a plain word is quoted in paths
//! (`clusters."api.v2".scheduler`).

use std::collections::BTreeSet;
use std::env::VarError;
use std::path::Path;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use serde_path_to_error::Segment;

use super::duration::DurationValue;
use super::model::{Config, Role};

pub(super) mod admin;
mod backend_tls;
mod backends;
mod buckets;
mod cache;
mod cluster_state;
mod discovery;
mod fastcgi;
pub(super) mod haproxy_compat;
mod health;
mod sections;
#[cfg(test)]
mod tests;
mod tls;
mod tracing;
mod upgrades;

/// One problem in a configuration, located by its path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[error("{}", render(.path, .message))]
pub struct ConfigError {
    /// Where: `clusters.shop.backends[1].url`, `routes[0].cluster`, `proxy.listen[2]`; the file
    /// name (empty for [`load_str`]) when the file itself cannot be read or parsed.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// Every problem found in one configuration, in document order by section; never empty.
///
/// Displays one `path: message` line per problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render_all(.0))]
pub struct ConfigErrors(pub Vec<ConfigError>);

/// `path: message`, or just the message when there is no path.
fn render(path: &str, message: &str) -> String {
    if path.is_empty() {
        message.to_owned()
    } else {
        format!("{path}: {message}")
    }
}

fn render_all(errors: &[ConfigError]) -> String {
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    lines.join("\n")
}

/// Reads and validates the YAML file at `path` (any extension).
///
/// A missing, unreadable or syntactically invalid file is a single error whose path is the
/// file name.
pub fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
    load_value(read_file(path)?)
}

/// Validates a configuration document already parsed into a JSON tree (`${VAR}` references
/// still unexpanded): the form runtime changes and the state file work on.
pub fn load_value(root: Value) -> Result<Config, ConfigErrors> {
    Loader::new(&env_var).load(root)
}

/// Reads the YAML file at `path` into a JSON tree, without validating it.
pub fn read_file(path: &Path) -> Result<Value, ConfigErrors> {
    let origin = path.display().to_string();
    // Check the exact file first: when it is missing, the `config` crate would silently try
    // other extensions (`director.conf` -> `director.yaml`).
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => {}
        Ok(_) => return Err(single(origin, "not a regular file".to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(single(origin, "file not found".to_owned()))
        }
        Err(e) => return Err(single(origin, format!("cannot read: {e}"))),
    }
    let source = ::config::File::from(path).format(::config::FileFormat::Yaml);
    read_source(source, &origin)
}

/// Validates YAML text; errors that concern the whole text have an empty path.
pub fn load_str(yaml: &str) -> Result<Config, ConfigErrors> {
    load_str_with_env(yaml, &env_var)
}

/// A validated configuration with the document it came from (the JSON tree of the YAML,
/// `${VAR}` references unexpanded) and the file, if any: what runtime changes edit and
/// reloads re-read.
#[derive(Debug, Clone)]
pub struct Document {
    pub raw: Value,
    pub config: Config,
    pub path: Option<std::path::PathBuf>,
}

impl Document {
    /// Reads and validates the file at `path`.
    pub fn from_file(path: &Path) -> Result<Document, ConfigErrors> {
        let raw = read_file(path)?;
        let config = load_value(raw.clone())?;
        Ok(Document {
            raw,
            config,
            path: Some(path.to_owned()),
        })
    }

    /// Validates YAML text (no file: reloads are not possible).
    pub fn from_yaml(yaml: &str) -> Result<Document, ConfigErrors> {
        let source = ::config::File::from_str(yaml, ::config::FileFormat::Yaml);
        let raw = read_source(source, "")?;
        let config = load_value(raw.clone())?;
        Ok(Document {
            raw,
            config,
            path: None,
        })
    }
}

/// Looks `${NAME}` up in the process environment.
fn env_var(name: &str) -> Result<String, VarError> {
    std::env::var(name)
}

/// [`load_str`] with an injected environment, for tests.
fn load_str_with_env(yaml: &str, env: &EnvLookup<'_>) -> Result<Config, ConfigErrors> {
    let source = ::config::File::from_str(yaml, ::config::FileFormat::Yaml);
    let root = read_source(source, "")?;
    Loader::new(env).load(root)
}

type EnvLookup<'a> = dyn Fn(&str) -> Result<String, VarError> + 'a;

fn single(path: String, message: String) -> ConfigErrors {
    ConfigErrors(vec![ConfigError { path, message }])
}

/// Parses one YAML source into a generic JSON tree (ints, floats, bools, null, maps, lists).
fn read_source<S>(source: S, origin: &str) -> Result<Value, ConfigErrors>
where
    S: ::config::Source + Send + Sync + 'static,
{
    let built = ::config::Config::builder()
        .add_source(source)
        .build()
        .map_err(|e| {
            let message = match e {
                // Valid YAML whose top level is not a map comes back as a nested type error.
                ::config::ConfigError::FileParse { cause, .. }
                    if cause.is::<Box<::config::ConfigError>>() || cause.is::<::config::ConfigError>() =>
                {
                    format!("the top level must be a map of sections: {cause}")
                }
                ::config::ConfigError::FileParse { cause, .. } => format!("invalid YAML: {cause}"),
                ::config::ConfigError::Foreign(cause) => format!("cannot read: {cause}"),
                other => other.to_string(),
            };
            single(origin.to_owned(), message)
        })?;
    built
        .try_deserialize::<Value>()
        .map_err(|e| single(origin.to_owned(), e.to_string()))
}

/// The top-level keys.
const TOP_KEYS: &[&str] = &[
    "proxy",
    "admin",
    "state_file",
    "access_log",
    "routes",
    "clusters",
    "haproxy_compat",
    "cluster_state",
    "resolver",
];

// ---- names and shared messages ----------------------------------------------------------------

/// `role:` values of a backend or discovery entry.
const ROLES: &[(&str, Role)] = &[
    ("active", Role::Active),
    ("standby", Role::Standby),
    ("backup", Role::Backup),
];

/// The message for an absent required key.
const MISSING: &str = "required key is missing";

/// Names of clusters, backends and buckets: `[A-Za-z0-9_.-]+`.
fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// A route's or bucket rule's `host`: a DNS name / IPv4 address, or a bracketed IPv6 literal;
/// no port.
fn is_valid_host(host: &str) -> bool {
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6.parse::<std::net::Ipv6Addr>().is_ok();
    }
    is_valid_name(host)
}

// ---- paths -------------------------------------------------------------------------------------

/// `base.key`; keys that are not plain words are quoted so that paths stay unambiguous.
fn key_path(base: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let key = if plain { key.to_owned() } else { format!("{key:?}") };
    if base.is_empty() {
        key
    } else {
        format!("{base}.{key}")
    }
}

/// `base[index]`.
fn index_path(base: &str, index: usize) -> String {
    format!("{base}[{index}]")
}

/// Whether `path` is `outer` or lies inside it.
fn is_within(path: &str, outer: &str) -> bool {
    path.strip_prefix(outer)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
}

/// What a value is, for "expected X, found Y" messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

// ---- ${VAR} expansion --------------------------------------------------------------------------

/// Expands `${NAME}` from the environment; `$${` is a literal `${`, any other `$` is kept.
fn expand_vars(text: &str, env: &EnvLookup<'_>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix("${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('{') {
            let end = tail
                .find('}')
                .ok_or_else(|| "unterminated `${` (write `$${` for a literal `${`)".to_owned())?;
            // `${NAME:-default}`: the default when NAME is unset.
            let (name, default) = match tail[..end].split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (&tail[..end], None),
            };
            let valid = name.chars().next().is_some_and(|c| !c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(format!("`${{{name}}}` is not a valid variable reference"));
            }
            match env(name) {
                Ok(value) => out.push_str(&value),
                Err(VarError::NotPresent) if default.is_some() => out.push_str(default.unwrap_or_default()),
                Err(VarError::NotPresent) => return Err(format!("environment variable `{name}` is not set")),
                Err(VarError::NotUnicode(_)) => {
                    return Err(format!("environment variable `{name}` is not valid UTF-8"))
                }
            }
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

// ---- the loader --------------------------------------------------------------------------------

/// Collects errors while walking the document.
struct Loader<'e> {
    env: &'e EnvLookup<'e>,
    errors: Vec<ConfigError>,
}

impl<'e> Loader<'e> {
    fn new(env: &'e EnvLookup<'e>) -> Self {
        Loader {
            env,
            errors: Vec::new(),
        }
    }

    /// Records an error, unless one was already reported at this path or at an enclosing one:
    /// a value that failed once (e.g. an unset `${VAR}`) is not reported again by later checks.
    fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        let path = path.into();
        if self.errors.iter().any(|e| is_within(&path, &e.path)) {
            return;
        }
        self.errors.push(ConfigError {
            path,
            message: message.into(),
        });
    }

    /// Whether an error was reported at exactly `path`.
    fn has_error_at(&self, path: &str) -> bool {
        self.errors.iter().any(|e| e.path == path)
    }

    /// Whether an error was reported at `path` or beneath it.
    fn has_error_under(&self, path: &str) -> bool {
        self.errors.iter().any(|e| is_within(&e.path, path))
    }

    /// Checks the whole document: unknown top-level keys, then each section in turn.
    fn load(mut self, root: Value) -> Result<Config, ConfigErrors> {
        let mut root = match root {
            Value::Object(map) => map,
            other => {
                let found = kind(&other);
                self.error("", format!("expected a map at the top level, found {found}"));
                return Err(ConfigErrors(self.errors));
            }
        };
        self.drop_unknown(&mut root, "", TOP_KEYS);
        let clusters = root.remove("clusters");
        let cluster_names: BTreeSet<String> = match &clusters {
            Some(Value::Object(map)) => map.keys().cloned().collect(),
            _ => BTreeSet::new(),
        };
        let proxy = match root.remove("proxy") {
            Some(value) => self.proxy(value),
            None => {
                self.error("proxy", "required section is missing");
                None
            }
        };
        let admin = self.admin(root.remove("admin"));
        let state_file = self.state_file(root.remove("state_file"));
        let access_log = self.access_log(root.remove("access_log"));
        let routes = self.routes(root.remove("routes"), &cluster_names);
        let clusters = self.clusters(clusters);
        let haproxy_compat = self.haproxy_compat(root.remove("haproxy_compat"));
        let cluster_state = self.cluster_state(root.remove("cluster_state"));
        let resolver = self.resolver(root.remove("resolver"));

        if !self.errors.is_empty() {
            return Err(ConfigErrors(self.errors));
        }
        match (
            proxy,
            admin,
            state_file,
            access_log,
            routes,
            clusters,
            haproxy_compat,
            cluster_state,
            resolver,
        ) {
            (
                Some(proxy),
                Some(admin),
                Some(state_file),
                Some(access_log),
                Some(routes),
                Some(clusters),
                Some(haproxy_compat),
                Some(cluster_state),
                Some(resolver),
            ) => Ok(Config {
                proxy,
                admin,
                state_file,
                access_log,
                routes,
                clusters,
                haproxy_compat,
                cluster_state,
                resolver,
            }),
            _ => Err(single(
                String::new(),
                "internal error: a part of the configuration failed without an error".to_owned(),
            )),
        }
    }

    /// Removes and reports keys that are not in `known`.
    fn drop_unknown(&mut self, map: &mut Map<String, Value>, path: &str, known: &[&str]) {
        let unknown: Vec<String> = map
            .keys()
            .filter(|k| !known.contains(&k.as_str()))
            .cloned()
            .collect();
        for key in unknown {
            map.remove(&key);
            let expected = known.join(", ");
            self.error(
                key_path(path, &key),
                format!("unknown key (expected one of: {expected})"),
            );
        }
    }

    /// Replaces `${VAR}` in every string below `value`; a failure is reported at its path and
    /// leaves the string as written.
    fn expand(&mut self, value: &mut Value, path: &str) {
        match value {
            Value::String(s) if s.contains('$') => match expand_vars(s, self.env) {
                Ok(expanded) => *s = expanded,
                Err(message) => self.error(path, message),
            },
            Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    self.expand(item, &index_path(path, i));
                }
            }
            Value::Object(map) => {
                for (key, item) in map.iter_mut() {
                    self.expand(item, &key_path(path, key));
                }
            }
            _ => {}
        }
    }

    /// Deserializes one map-shaped piece at `path` into `T`, reporting unknown keys and every
    /// badly typed field: a failing field is blanked (null = default) and the piece retried.
    /// Returns `None` only when the piece is not a map at all.
    fn piece<T: DeserializeOwned>(
        &mut self,
        value: Option<Value>,
        path: &str,
        known: &[&str],
        what: &str,
    ) -> Option<T> {
        let mut map = match value {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(map)) => map,
            Some(other) => {
                let found = kind(&other);
                self.error(path, format!("expected {what} (a map), found {found}"));
                return None;
            }
        };
        self.drop_unknown(&mut map, path, known);
        for (key, item) in map.iter_mut() {
            self.expand(item, &key_path(path, key));
        }
        let mut value = Value::Object(map);
        loop {
            let err = match serde_path_to_error::deserialize::<_, T>(&value) {
                Ok(piece) => return Some(piece),
                Err(err) => err,
            };
            let mut at = path.to_owned();
            for segment in err.path().iter() {
                at = match segment {
                    Segment::Seq { index } => index_path(&at, *index),
                    Segment::Map { key } | Segment::Enum { variant: key } => key_path(&at, key),
                    Segment::Unknown => at,
                };
            }
            self.error(at, err.inner().to_string());
            let field = match err.path().iter().next() {
                Some(Segment::Map { key }) => key.clone(),
                _ => return None,
            };
            match value.get_mut(&field) {
                Some(slot) if !slot.is_null() => *slot = Value::Null,
                _ => return None,
            }
        }
    }

    /// Picks one of `options` by name; `None` gives `default`.
    fn choice<T: Copy>(
        &mut self,
        path: String,
        value: Option<String>,
        default: T,
        options: &[(&str, T)],
        what: &str,
    ) -> Option<T> {
        let Some(name) = value else {
            return Some(default);
        };
        if let Some((_, v)) = options.iter().find(|(n, _)| *n == name) {
            return Some(*v);
        }
        let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
        let names = names.join(", ");
        self.error(
            path,
            format!("unknown {what} `{name}` (expected one of: {names})"),
        );
        None
    }

    /// A duration that must be greater than zero.
    fn positive(&mut self, path: String, value: Option<DurationValue>, default: Duration) -> Duration {
        let value = value.map_or(default, |d| d.0);
        if value.is_zero() {
            self.error(path, "must be greater than 0");
        }
        value
    }
}
