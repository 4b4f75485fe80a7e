//! A cluster's `upgrades:` section: WebSocket and other `Upgrade` tunnels (see
//! [`UpgradesConfig`]).

use serde::Deserialize;
use serde_json::Value;

use super::super::duration::DurationValue;
use super::super::model::UpgradesConfig;
use super::{key_path, Loader};

const UPGRADES_KEYS: &[&str] = &["enabled", "hold_capacity", "idle_timeout", "max_lifetime"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpgrades {
    enabled: Option<bool>,
    hold_capacity: Option<bool>,
    idle_timeout: Option<DurationValue>,
    max_lifetime: Option<DurationValue>,
}

impl Loader<'_> {
    /// A cluster's `upgrades:` at `path` (defaults when absent).
    pub(super) fn upgrades(&mut self, value: Option<Value>, path: &str) -> Option<UpgradesConfig> {
        let defaults = UpgradesConfig::default();
        let what = "`{ enabled, hold_capacity, idle_timeout, max_lifetime }`";
        let raw: RawUpgrades = self.piece(value, path, UPGRADES_KEYS, what)?;
        let idle_timeout = self.positive(
            key_path(path, "idle_timeout"),
            raw.idle_timeout,
            defaults.idle_timeout,
        );
        Some(UpgradesConfig {
            enabled: raw.enabled.unwrap_or(defaults.enabled),
            hold_capacity: raw.hold_capacity.unwrap_or(defaults.hold_capacity),
            idle_timeout,
            // `0s`: no limit.
            max_lifetime: raw.max_lifetime.map(|d| d.0).filter(|d| !d.is_zero()),
        })
    }
}
