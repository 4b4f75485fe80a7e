//! `proxy.request_id` and `proxy.traceparent` in `config.yaml` (control plane); a child of
//! `load`.
//!
//! Rules:
//! - `request_id`: absent or `null` = off; `{ enabled, header }` with `enabled` default false
//!   and `header` default `X-Request-Id`: 1 to 64 of `[A-Za-z0-9-]` (FastCGI passes only such
//!   names as `HTTP_*`), not a header director manages itself.
//! - `traceparent`: absent or `null` = off; `{ enabled, start, new_span }` with `enabled`
//!   default false, `start` default true, `new_span` default false.

use serde::Deserialize;
use serde_json::Value;

use super::super::model::{RequestIdConfig, TraceparentConfig};
use super::{key_path, Loader};

const REQUEST_ID_KEYS: &[&str] = &["enabled", "header"];
const TRACEPARENT_KEYS: &[&str] = &["enabled", "start", "new_span"];

/// `header` when none is given.
const DEFAULT_REQUEST_ID_HEADER: &str = "X-Request-Id";

/// Headers director writes itself or that carry the request's framing or route: naming one
/// as the request ID header would break them.
const RESERVED: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "via",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "traceparent",
    "tracestate",
    "cookie",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequestId {
    enabled: Option<bool>,
    header: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTraceparent {
    enabled: Option<bool>,
    start: Option<bool>,
    new_span: Option<bool>,
}

/// Why `name` can't be the request ID header, if it can't.
fn header_problem(name: &str) -> Option<String> {
    if name.is_empty() || name.len() > 64 {
        return Some("must be 1 to 64 characters long".to_owned());
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Some(format!(
            "`{name}` may only contain letters, digits and `-` (FastCGI passes only such headers)"
        ));
    }
    let lower = name.to_ascii_lowercase();
    if RESERVED.contains(&lower.as_str()) || lower.starts_with("proxy-") {
        return Some(format!("`{name}` is a header director manages itself"));
    }
    None
}

impl Loader<'_> {
    /// `proxy.request_id` at `path`; `Some(None)` when off.
    pub(super) fn request_id(&mut self, value: Option<Value>, path: &str) -> Option<Option<RequestIdConfig>> {
        if matches!(value, None | Some(Value::Null)) {
            return Some(None);
        }
        let raw: RawRequestId = self.piece(value, path, REQUEST_ID_KEYS, "`{ enabled, header }`")?;
        let header = raw.header.as_deref().unwrap_or(DEFAULT_REQUEST_ID_HEADER);
        if let Some(problem) = header_problem(header) {
            self.error(key_path(path, "header"), problem);
            return None;
        }
        let on = raw.enabled.unwrap_or(false);
        Some(on.then(|| RequestIdConfig {
            header: header.to_ascii_lowercase(),
        }))
    }

    /// `proxy.traceparent` at `path`; `Some(None)` when off.
    pub(super) fn traceparent(
        &mut self,
        value: Option<Value>,
        path: &str,
    ) -> Option<Option<TraceparentConfig>> {
        if matches!(value, None | Some(Value::Null)) {
            return Some(None);
        }
        let what = "`{ enabled, start, new_span }`";
        let raw: RawTraceparent = self.piece(value, path, TRACEPARENT_KEYS, what)?;
        let on = raw.enabled.unwrap_or(false);
        Some(on.then_some(TraceparentConfig {
            start: raw.start.unwrap_or(true),
            new_span: raw.new_span.unwrap_or(false),
        }))
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{load_str, RequestIdConfig, TraceparentConfig};

    fn proxy(extra: &str) -> Result<crate::config::ProxyConfig, String> {
        let yaml = format!("proxy:\n  listen: \"127.0.0.1:0\"\n{extra}");
        load_str(&yaml).map(|c| c.proxy).map_err(|e| e.to_string())
    }

    #[test]
    fn off_unless_enabled() {
        let p = proxy("").expect("valid");
        assert_eq!((p.request_id, p.traceparent), (None, None));
        let p = proxy("  request_id: { header: X-Req }\n  traceparent: {}\n").expect("valid");
        assert_eq!((p.request_id, p.traceparent), (None, None));
    }

    #[test]
    fn defaults_and_settings() {
        let p = proxy("  request_id: { enabled: true }\n  traceparent: { enabled: true }\n").expect("valid");
        assert_eq!(
            p.request_id,
            Some(RequestIdConfig {
                header: "x-request-id".into()
            })
        );
        assert_eq!(
            p.traceparent,
            Some(TraceparentConfig {
                start: true,
                new_span: false
            })
        );
        let p = proxy("  request_id: { enabled: true, header: X-Correlation-ID }\n  traceparent: { enabled: true, start: false, new_span: true }\n")
            .expect("valid");
        assert_eq!(p.request_id.expect("on").header, "x-correlation-id");
        assert_eq!(
            p.traceparent,
            Some(TraceparentConfig {
                start: false,
                new_span: true
            })
        );
    }

    #[test]
    fn bad_settings_are_reported_with_their_path() {
        let e = proxy("  request_id: { enabled: true, header: \"X_Id\" }\n").expect_err("underscore");
        assert!(e.contains("proxy.request_id.header"), "{e}");
        let e = proxy("  request_id: { enabled: true, header: Host }\n").expect_err("reserved");
        assert!(e.contains("manages itself"), "{e}");
        let e = proxy("  request_id: { enabled: true, header: \"\" }\n").expect_err("empty");
        assert!(e.contains("1 to 64"), "{e}");
        let e = proxy("  traceparent: { enabled: true, sample: 1 }\n").expect_err("unknown key");
        assert!(e.contains("proxy.traceparent"), "{e}");
        let e = proxy("  request_id: yes\n").expect_err("not a map");
        assert!(e.contains("proxy.request_id"), "{e}");
    }
}
