//! A cluster's `backends:` list in `config.yaml` (control plane): fixed backends (`url`) and
//! discovery entries (`discover`, checked in `discovery`), their names (unique in the
//! cluster), roles, script mappings and own health checks; a child of `load`.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;

use super::super::address::parse_backend_url;
use super::super::discovery::{DiscoveryConfig, DnsRecordType};
use super::super::model::{BackendConfig, HealthConfig, Protocol, Role};
use super::backend_tls::TlsSection;
use super::discovery::DiscoveryTemplate;
use super::{index_path, key_path, kind, Loader};
use super::{is_valid_name, MISSING, ROLES};

const BACKEND_KEYS: &[&str] = &[
    "name",
    "url",
    "discover",
    "capacity",
    "role",
    "enabled",
    "fastcgi",
    "health",
    "terminate_protection",
    "tls",
];

/// A backend without `fastcgi` and `health`, which are checked on their own.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBackend {
    name: Option<String>,
    url: Option<String>,
    capacity: Option<u32>,
    role: Option<String>,
    enabled: Option<bool>,
    terminate_protection: Option<bool>,
}

/// What a cluster gives each of its backends.
pub(super) struct BackendDefaults<'a> {
    /// The cluster has a `fastcgi` mapping its FastCGI backends may use.
    pub(super) maps_scripts: bool,
    /// The cluster's `health` section as written (a map, `{}` when it has none) that a
    /// backend's own `health` keys override, or `Null` when the cluster's is invalid (reported
    /// there already).
    pub(super) health: &'a Value,
    /// The cluster's `backend_tls` that a backend's own `tls` keys override; `None` when it is
    /// invalid (reported there already).
    pub(super) tls: Option<Option<&'a TlsSection>>,
}

/// One entry of a cluster's `backends:`.
enum Entry {
    Fixed(BackendConfig),
    Discover(DiscoveryConfig),
}

impl Loader<'_> {
    /// A cluster's `backends:` list — fixed backends and `discover:` entries; names must be
    /// unique.
    pub(super) fn backends(
        &mut self,
        value: Option<Value>,
        path: &str,
        defaults: &BackendDefaults<'_>,
    ) -> Option<(Vec<BackendConfig>, Vec<DiscoveryConfig>)> {
        let list = match value {
            None | Some(Value::Null) => return Some((Vec::new(), Vec::new())),
            Some(Value::Array(list)) => list,
            Some(other) => {
                let found = kind(&other);
                self.error(path, format!("expected a list of backends, found {found}"));
                return None;
            }
        };
        let mut names = HashMap::new();
        let (mut fixed, mut discover, mut ok) = (Vec::new(), Vec::new(), true);
        for (i, item) in list.into_iter().enumerate() {
            let path = index_path(path, i);
            match self.backend(item, &path, &mut names, defaults) {
                Some(Entry::Fixed(backend)) => fixed.push(backend),
                Some(Entry::Discover(mut entry)) => {
                    // Its backends take its place among the fixed ones.
                    entry.position = fixed.len();
                    discover.push(entry);
                }
                None => ok = false,
            }
        }
        ok.then_some((fixed, discover))
    }

    /// One entry of `backends:`, a fixed backend (`url`) or a discovery entry (`discover`);
    /// `names` maps the names seen so far in the cluster to their paths.
    fn backend(
        &mut self,
        value: Value,
        path: &str,
        names: &mut HashMap<String, String>,
        defaults: &BackendDefaults<'_>,
    ) -> Option<Entry> {
        let mut value = value;
        let mut take = |key: &str| value.as_object_mut().and_then(|map| map.remove(key));
        let fastcgi = take("fastcgi");
        let health = take("health");
        let discover = take("discover");
        let tls = take("tls");
        let raw: RawBackend = self.piece(Some(value), path, BACKEND_KEYS, "a backend")?;
        let fastcgi = self.fastcgi(fastcgi, &key_path(path, "fastcgi"));
        let health = self.backend_health(health, defaults.health, &key_path(path, "health"));
        let tls = self.tls_section(tls, &key_path(path, "tls"));
        let name_path = key_path(path, "name");
        let name = match raw.name {
            None => {
                self.error(name_path, MISSING);
                None
            }
            Some(name) if !is_valid_name(&name) => {
                self.error(
                    name_path,
                    format!("invalid backend name `{name}` (use letters, digits, '_', '.', '-')"),
                );
                None
            }
            Some(name) => match names.get(&name) {
                Some(first) => {
                    let message = format!("duplicate backend name `{name}` (also at {first})");
                    self.error(name_path, message);
                    None
                }
                None => {
                    names.insert(name.clone(), name_path);
                    Some(name)
                }
            },
        };
        let url_path = key_path(path, "url");
        let (url, discover) = match (raw.url, discover) {
            (Some(_), Some(_)) => {
                self.error(url_path, "a backend has either `url` or `discover`, not both");
                (None, None)
            }
            (None, Some(discover)) => (None, self.discover(discover, &key_path(path, "discover"))),
            (None, None) => {
                self.error(url_path, MISSING);
                (None, None)
            }
            (Some(url), None) => (
                parse_backend_url(&url)
                    .map_err(|message| self.error(url_path, message))
                    .ok(),
                None,
            ),
        };
        let role_given = raw.role.is_some();
        let role = self.choice(key_path(path, "role"), raw.role, Role::Active, ROLES, "role");
        let fastcgi = fastcgi?;
        let health = health?;
        let protocol = match (&url, &discover) {
            (Some(url), _) => url.protocol,
            (None, Some(discover)) => discover.protocol,
            (None, None) => return None,
        };
        if protocol == Protocol::FastCgi && fastcgi.is_none() && !defaults.maps_scripts {
            let message = "a FastCGI backend needs a script mapping: set `fastcgi: { document_root }` \
                           on the cluster or on the backend";
            let at = match url {
                Some(_) => key_path(path, "url"),
                None => key_path(&key_path(path, "discover"), "protocol"),
            };
            self.error(at, message);
            return None;
        }
        let (name, role) = (name?, role?);
        let capacity = raw.capacity.unwrap_or(0);
        let enabled = raw.enabled.unwrap_or(true);
        let terminate_protection = raw.terminate_protection.unwrap_or(false);
        let tls = tls?;
        if let Some(discover) = discover {
            if tls.is_some() {
                // Discovered addresses are reached over plain HTTP or FastCGI.
                self.error(key_path(path, "tls"), "`tls` applies to an https:// URL only");
                return None;
            }
            if role_given && discover.query.record == DnsRecordType::Srv {
                let message =
                    "SRV targets take their role from their priority (see `discover.priority_roles`)";
                self.error(key_path(path, "role"), message);
                return None;
            }
            return Some(Entry::Discover(discover.entry(DiscoveryTemplate {
                name,
                capacity,
                role,
                enabled,
                fastcgi,
                health,
                terminate_protection,
            })));
        }
        let url = url?;
        let tls = self.backend_tls(&url, tls.as_ref(), defaults.tls, path, "url")?;
        Some(Entry::Fixed(BackendConfig {
            name,
            url,
            capacity,
            role,
            enabled,
            fastcgi,
            health,
            terminate_protection,
            discovered_by: None,
            tls,
        }))
    }

    /// A backend's own `health` (absent or `null`: the cluster's applies, `Some(None)`): its
    /// keys laid over the cluster's `health` section, checked like it; a backend with its own
    /// section is probed even when the cluster has none.
    fn backend_health(
        &mut self,
        own: Option<Value>,
        cluster: &Value,
        path: &str,
    ) -> Option<Option<HealthConfig>> {
        let own = match own {
            None | Some(Value::Null) => return Some(None),
            Some(own) => own,
        };
        let merged = match (cluster, own) {
            (Value::Object(base), Value::Object(own)) => {
                let mut merged = base.clone();
                merged.extend(own);
                Value::Object(merged)
            }
            // The cluster's section is invalid: check the backend's own keys alone.
            (_, own) => own,
        };
        let health = self.health(Some(merged), path)?;
        (!cluster.is_null()).then_some(health)
    }
}
