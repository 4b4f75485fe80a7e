//! The `haproxy_compat:` section of `config.yaml` (control plane); a child of `load`.
//!
//! Rules:
//! - Absent or `null`: the defaults — `stats_uri: /haproxy?stats`, `monitor_uri:
//!   /haproxy/monitor`, `listeners: [admin]`, `monitor_fail: never`, realm `HAProxy
//!   Statistics`, no users.
//! - `stats_uri` and `monitor_uri` start with `/`, hold no space or control character, and
//!   differ. A request target that starts with `stats_uri` is a stats request (HAProxy's
//!   prefix match; `;csv` after it asks for the CSV); one equal to `monitor_uri` is a monitor
//!   request (checked first, as HAProxy does).
//! - `listeners`: a non-empty list of `admin` and `proxy`, each at most once.
//! - `monitor_fail`: `never` or `no_backend`.
//! - `users`: `{user, password_hash}` maps; a user name is non-empty, unique and holds no `:`
//!   (HTTP Basic splits there); `password_hash` is an Argon2 PHC string
//!   (`director --hash-password` makes one). Serving the stats on the proxy listener needs at
//!   least one user: the proxy listener faces every client.

use std::sync::Arc;

use arc_swap::ArcSwap;
use serde::Deserialize;
use serde_json::Value;

use super::super::model::{HaproxyCompatConfig, MonitorFail, StatsUser};
use super::{index_path, key_path, Loader};

const KEYS: &[&str] = &[
    "stats_uri",
    "monitor_uri",
    "listeners",
    "monitor_fail",
    "realm",
    "users",
];

/// HAProxy's `stats uri` default.
pub const DEFAULT_STATS_URI: &str = "/haproxy?stats";
/// director's monitor URI on the admin listener since before this section existed.
pub const DEFAULT_MONITOR_URI: &str = "/haproxy/monitor";
/// HAProxy's `STATS_DEFAULT_REALM`.
pub const DEFAULT_REALM: &str = "HAProxy Statistics";

impl Default for HaproxyCompatConfig {
    fn default() -> Self {
        HaproxyCompatConfig {
            stats_uri: DEFAULT_STATS_URI.to_owned(),
            monitor_uri: DEFAULT_MONITOR_URI.to_owned(),
            on_admin: true,
            on_proxy: false,
            monitor_fail: MonitorFail::Never,
            realm: DEFAULT_REALM.to_owned(),
            users: Vec::new(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCompat {
    stats_uri: Option<String>,
    monitor_uri: Option<String>,
    listeners: Option<Vec<String>>,
    monitor_fail: Option<String>,
    realm: Option<String>,
    users: Option<Vec<RawUser>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    user: String,
    password_hash: String,
}

/// The `haproxy_compat` settings in force: stored at start-up, swapped by the Director actor
/// on every successful reload, read by every stats and monitor request.
pub type SharedHaproxyCompat = Arc<ArcSwap<HaproxyCompatConfig>>;

/// Whether `hash` is an Argon2 PHC string this build can verify.
pub fn check_password_hash(hash: &str) -> Result<(), String> {
    let parsed = argon2::PasswordHash::new(hash)
        .map_err(|e| format!("is not a PHC password hash ({e}); make one with `director --hash-password`"))?;
    let algorithm = parsed.algorithm.as_str();
    if !matches!(algorithm, "argon2id" | "argon2i" | "argon2d") {
        return Err(format!(
            "uses `{algorithm}`; only Argon2 hashes are accepted (`director --hash-password` makes one)"
        ));
    }
    argon2::Params::try_from(&parsed).map_err(|e| format!("has invalid Argon2 parameters ({e})"))?;
    Ok(())
}

impl Loader<'_> {
    /// `haproxy_compat:` (optional).
    pub(super) fn haproxy_compat(&mut self, value: Option<Value>) -> Option<HaproxyCompatConfig> {
        let path = "haproxy_compat";
        if matches!(value, None | Some(Value::Null)) {
            return Some(HaproxyCompatConfig::default());
        }
        let raw: RawCompat = self.piece(value, path, KEYS, "the haproxy_compat section")?;
        let defaults = HaproxyCompatConfig::default();
        let mut ok = true;
        let mut uri = |loader: &mut Self, key: &str, given: Option<String>, default: String| {
            let uri = given.unwrap_or(default);
            if !uri.starts_with('/') || uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
                loader.error(
                    key_path(path, key),
                    "must start with `/` and hold no spaces or control characters",
                );
                ok = false;
            }
            uri
        };
        let stats_uri = uri(self, "stats_uri", raw.stats_uri, defaults.stats_uri);
        let monitor_uri = uri(self, "monitor_uri", raw.monitor_uri, defaults.monitor_uri);
        if stats_uri == monitor_uri {
            self.error(key_path(path, "monitor_uri"), "must differ from stats_uri");
            ok = false;
        }
        let (mut on_admin, mut on_proxy) = (defaults.on_admin, defaults.on_proxy);
        if let Some(listeners) = raw.listeners {
            let at = key_path(path, "listeners");
            (on_admin, on_proxy) = (false, false);
            if listeners.is_empty() {
                self.error(at.clone(), "must name at least one listener: admin, proxy");
                ok = false;
            }
            for (i, name) in listeners.iter().enumerate() {
                let flag = match name.as_str() {
                    "admin" => &mut on_admin,
                    "proxy" => &mut on_proxy,
                    other => {
                        self.error(
                            index_path(&at, i),
                            format!("unknown listener `{other}` (expected admin or proxy)"),
                        );
                        ok = false;
                        continue;
                    }
                };
                if *flag {
                    self.error(index_path(&at, i), format!("`{name}` is listed twice"));
                    ok = false;
                }
                *flag = true;
            }
        }
        let monitor_fail = match raw.monitor_fail.as_deref() {
            None | Some("never") => MonitorFail::Never,
            Some("no_backend") => MonitorFail::NoBackend,
            Some(other) => {
                self.error(
                    key_path(path, "monitor_fail"),
                    format!("unknown condition `{other}` (expected never or no_backend)"),
                );
                ok = false;
                MonitorFail::Never
            }
        };
        let realm = raw.realm.unwrap_or(defaults.realm);
        if realm.is_empty() || realm.chars().any(|c| c == '"' || c == '\\' || c.is_control()) {
            self.error(
                key_path(path, "realm"),
                "must be non-empty text without quotes, backslashes or control characters",
            );
            ok = false;
        }
        let mut users: Vec<StatsUser> = Vec::new();
        let users_at = key_path(path, "users");
        for (i, user) in raw.users.unwrap_or_default().into_iter().enumerate() {
            let at = index_path(&users_at, i);
            if user.user.is_empty() || user.user.contains(':') || user.user.chars().any(char::is_control) {
                self.error(
                    key_path(&at, "user"),
                    "must be non-empty, without `:` or control characters",
                );
                ok = false;
            } else if users.iter().any(|u| u.user == user.user) {
                self.error(key_path(&at, "user"), format!("`{}` is listed twice", user.user));
                ok = false;
            }
            if let Err(message) = check_password_hash(&user.password_hash) {
                self.error(key_path(&at, "password_hash"), message);
                ok = false;
            }
            users.push(StatsUser {
                user: user.user,
                password_hash: user.password_hash,
            });
        }
        if on_proxy && users.is_empty() {
            self.error(
                users_at,
                "serving the stats on the proxy listener needs at least one user (HTTP Basic): \
                 the proxy listener faces every client",
            );
            ok = false;
        }
        ok.then_some(HaproxyCompatConfig {
            stats_uri,
            monitor_uri,
            on_admin,
            on_proxy,
            monitor_fail,
            realm,
            users,
        })
    }
}
