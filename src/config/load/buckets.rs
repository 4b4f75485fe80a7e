//! The HTB bucket tree of a cluster in `config.yaml` (control plane): `buckets:` (nested to any
//! depth), each bucket's `match:` rule, and the cluster's `default_bucket`.
//!
//! A child of `load`, like `sections`. Each bucket is deserialized on its own, with its `match`
//! and `buckets` taken out first, so a bad bucket does not hide problems in its siblings or
//! children. Every message about a bucket names it (`bucket `upload`: ceil 0.3 is below its rate
//! 0.5`); only a bucket whose name cannot be read stays anonymous.
//!
//! Rules:
//! - `name`: required, `[A-Za-z0-9_.-]+`, not `root` (the implicit root bucket), unique within
//!   the cluster across the whole tree (case-sensitive, like backend names).
//! - `rate`, `ceil`: required numbers (integer or float), `0 <= rate <= ceil <= 1`; `ceil: 0` is
//!   allowed (a bucket that admits nothing). Siblings' rates sum to at most 1 (+1e-9 slack).
//! - `match` (optional; `{}` matches every request): `host` as in routes (no port),
//!   `path_prefix` starting with `/`, `method` an RFC 7230 token without lowercase letters (methods
//!   are case-sensitive, so `post` would never match a real `POST`), `header: { name, value }`
//!   with a token `name` and a printable-ASCII `value` without surrounding blanks (HTTP strips
//!   them, so such a value would never match).
//! - `default_bucket`: a bucket of the tree; `root` is accepted and means the same as leaving it
//!   out (`None`).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::super::model::{BucketConfig, BucketRule};
use super::{index_path, key_path, kind, Loader};
use super::{is_valid_host, is_valid_name, MISSING};

const BUCKET_KEYS: &[&str] = &["name", "rate", "ceil", "match", "buckets"];
const MATCH_KEYS: &[&str] = &["host", "path_prefix", "method", "header"];
const HEADER_KEYS: &[&str] = &["name", "value"];

/// The name of the implicit root bucket, which no configured bucket may take.
const ROOT: &str = "root";

/// How far siblings' rates may sum above 1, for float rounding (`0.1 + 0.2 + 0.7`).
const RATE_SUM_SLACK: f64 = 1e-9;

/// A bucket without `match` and `buckets`, which are checked separately.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBucket {
    name: Option<String>,
    rate: Option<f64>,
    ceil: Option<f64>,
}

/// A `match:` without `header`, which is checked separately.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMatch {
    host: Option<String>,
    path_prefix: Option<String>,
    method: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeader {
    name: Option<String>,
    value: Option<String>,
}

/// What the walk over one cluster's tree has seen so far.
struct Walk {
    /// Valid bucket names to the path of their `name` key.
    names: BTreeMap<String, String>,
    /// False when some bucket's name could not be read: an unknown `default_bucket` may then be
    /// that bucket, so it is not reported (the unreadable name already was).
    complete: bool,
}

/// How messages name a bucket; `None` when its name could not be read.
fn label(name: Option<&str>) -> String {
    match name {
        Some(name) => format!("bucket `{name}`"),
        None => "a bucket without a name".to_owned(),
    }
}

/// A sum of shares for messages: at most 9 decimals, so that `0.5 + 0.8` reads `1.3`.
fn share_text(value: f64) -> String {
    let text = format!("{value:.9}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// RFC 7230 `tchar`: what HTTP methods and header names (and RFC 6265 cookie names) are made of.
fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

pub(super) fn is_token(text: &str) -> bool {
    !text.is_empty() && text.chars().all(is_tchar)
}

/// Why `method` cannot be used in a rule, if it cannot.
fn method_problem(method: &str) -> Option<String> {
    if !is_token(method) {
        return Some(format!("`{method}` is not an HTTP method (e.g. GET, POST)"));
    }
    if method.chars().any(|c| c.is_ascii_lowercase()) {
        let upper = method.to_ascii_uppercase();
        return Some(format!(
            "method `{method}` would never match: HTTP methods are case-sensitive (write `{upper}`)"
        ));
    }
    None
}

/// Why `value` cannot be matched against a request header, if it cannot.
fn header_value_problem(value: &str) -> Option<String> {
    if !value
        .chars()
        .all(|c| c == ' ' || c == '\t' || c.is_ascii_graphic())
    {
        return Some(format!(
            "header value {value:?} may contain only printable ASCII characters, spaces and tabs"
        ));
    }
    if value.trim_matches([' ', '\t']) != value {
        return Some(format!(
            "header value {value:?} would never match: HTTP strips leading and trailing blanks"
        ));
    }
    None
}

impl Loader<'_> {
    /// A cluster's `buckets:` (optional) and its `default_bucket`, checked against the tree;
    /// `path` is the cluster's. Gives the root's children and the default bucket.
    pub(super) fn bucket_tree(
        &mut self,
        value: Option<Value>,
        default_bucket: Option<String>,
        path: &str,
    ) -> Option<(Vec<BucketConfig>, Option<String>)> {
        let mut walk = Walk {
            names: BTreeMap::new(),
            complete: true,
        };
        let buckets = self.bucket_list(value, &key_path(path, "buckets"), Some(ROOT), &mut walk);
        let default_bucket = self.default_bucket(default_bucket, &key_path(path, "default_bucket"), &walk);
        Some((buckets?, default_bucket?))
    }

    /// `default_bucket`: `None` or `root` for the root, else a bucket that `walk` has seen.
    fn default_bucket(&mut self, name: Option<String>, path: &str, walk: &Walk) -> Option<Option<String>> {
        let name = match name {
            None => return Some(None),
            Some(name) if name == ROOT => return Some(None),
            Some(name) if walk.names.contains_key(&name) => return Some(Some(name)),
            Some(name) => name,
        };
        if walk.complete {
            let message = if walk.names.is_empty() {
                format!("unknown bucket `{name}`: this cluster has no buckets")
            } else {
                let known: Vec<&str> = walk.names.keys().map(String::as_str).collect();
                let known = known.join(", ");
                format!("unknown bucket `{name}` (expected one of: {known})")
            };
            self.error(path, message);
        }
        None
    }

    /// A `buckets:` list at `path`, the children of `parent` (`root` at the top); their rates
    /// must sum to at most 1.
    fn bucket_list(
        &mut self,
        value: Option<Value>,
        path: &str,
        parent: Option<&str>,
        walk: &mut Walk,
    ) -> Option<Vec<BucketConfig>> {
        let list = match value {
            None | Some(Value::Null) => return Some(Vec::new()),
            Some(Value::Array(list)) => list,
            Some(other) => {
                walk.complete = false;
                let found = kind(&other);
                let parent = label(parent);
                self.error(
                    path,
                    format!("{parent}: expected a list of buckets, found {found}"),
                );
                return None;
            }
        };
        let mut out = Some(Vec::with_capacity(list.len()));
        // A lower bound when some rates are unusable; those are reported on their own.
        let mut sum = 0.0;
        for (i, item) in list.into_iter().enumerate() {
            let (rate, bucket) = self.bucket(item, &index_path(path, i), walk);
            sum += rate.unwrap_or(0.0);
            match (bucket, out.as_mut()) {
                (Some(bucket), Some(out)) => out.push(bucket),
                _ => out = None,
            }
        }
        if sum > 1.0 + RATE_SUM_SLACK {
            let parent = label(parent);
            let sum = share_text(sum);
            self.error(
                path,
                format!("{parent}: the rates of its child buckets sum to {sum}, more than 1"),
            );
            return None;
        }
        out
    }

    /// One bucket and, recursively, its children. Gives its rate when that is usable (for the
    /// siblings' sum, even when something else in the bucket is wrong) and the bucket when
    /// nothing in it is wrong.
    fn bucket(
        &mut self,
        mut value: Value,
        path: &str,
        walk: &mut Walk,
    ) -> (Option<f64>, Option<BucketConfig>) {
        let first_error = self.errors.len();
        let (rule, children) = match value.as_object_mut() {
            Some(map) => (map.remove("match"), map.remove("buckets")),
            None => (None, None),
        };
        let Some(raw) = self.piece::<RawBucket>(Some(value), path, BUCKET_KEYS, "a bucket") else {
            walk.complete = false;
            return (None, None);
        };
        let name = self.bucket_name(raw.name.clone(), &key_path(path, "name"), walk);
        let rate = self.share(raw.rate, &key_path(path, "rate"), "rate");
        let mut ceil = self.share(raw.ceil, &key_path(path, "ceil"), "ceil");
        if let (Some(r), Some(c)) = (rate, ceil) {
            if c < r {
                self.error(key_path(path, "ceil"), format!("ceil {c} is below its rate {r}"));
                ceil = None;
            }
        }
        let rule = self.bucket_rule(rule, &key_path(path, "match"));
        // Name the bucket in the messages about its own keys (the children name themselves).
        if let Some(name) = raw.name.as_deref() {
            let prefix = label(Some(name));
            for error in &mut self.errors[first_error..] {
                error.message = format!("{prefix}: {}", error.message);
            }
        }
        let children = self.bucket_list(children, &key_path(path, "buckets"), raw.name.as_deref(), walk);
        let bucket = match (name, rate, ceil, rule, children) {
            (Some(name), Some(rate), Some(ceil), Some(rule), Some(children)) => Some(BucketConfig {
                name,
                rate,
                ceil,
                rule,
                children,
            }),
            _ => None,
        };
        (rate, bucket)
    }

    /// A bucket's `name`: required, valid, not `root`, unique in the tree.
    fn bucket_name(&mut self, name: Option<String>, path: &str, walk: &mut Walk) -> Option<String> {
        let problem = match name.as_deref() {
            None => MISSING,
            Some(ROOT) => "the name `root` is reserved for the root bucket",
            Some(name) if !is_valid_name(name) => "invalid name (use letters, digits, '_', '.', '-')",
            Some(_) => "",
        };
        let name = match name {
            Some(name) if problem.is_empty() => name,
            _ => {
                walk.complete = false;
                self.error(path, problem);
                return None;
            }
        };
        if let Some(first) = walk.names.get(&name) {
            let message = format!("duplicate name (also at {first})");
            self.error(path, message);
            return None;
        }
        walk.names.insert(name.clone(), path.to_owned());
        Some(name)
    }

    /// `rate` or `ceil` (`what`): a required number in `[0, 1]`.
    fn share(&mut self, value: Option<f64>, path: &str, what: &str) -> Option<f64> {
        let Some(value) = value else {
            self.error(path, MISSING);
            return None;
        };
        // Non-finite YAML numbers (`.nan`, `.inf`) already arrive as null, i.e. missing.
        if !value.is_finite() || !(0.0..=1.0).contains(&value) {
            self.error(path, format!("{what} {value} is not between 0 and 1"));
            return None;
        }
        // `abs` turns a written `-0.0` into `0`.
        Some(value.abs())
    }

    /// A bucket's `match:` (optional); `Some(None)` when there is none.
    fn bucket_rule(&mut self, value: Option<Value>, path: &str) -> Option<Option<BucketRule>> {
        let mut value = match value {
            None | Some(Value::Null) => return Some(None),
            Some(value) => value,
        };
        let header = value.as_object_mut().and_then(|map| map.remove("header"));
        let raw: RawMatch = self.piece(Some(value), path, MATCH_KEYS, "a match rule")?;
        let mut valid = true;
        if let Some(host) = raw.host.as_deref() {
            let problem = if host.is_empty() {
                Some("must not be empty".to_owned())
            } else if !is_valid_host(host) {
                Some(format!(
                    "`{host}` is not a host name (no port, e.g. shop.example.com)"
                ))
            } else {
                None
            };
            if let Some(problem) = problem {
                self.error(key_path(path, "host"), problem);
                valid = false;
            }
        }
        if let Some(prefix) = raw.path_prefix.as_deref() {
            if !prefix.starts_with('/') {
                self.error(
                    key_path(path, "path_prefix"),
                    format!("must start with \"/\" (got `{prefix}`)"),
                );
                valid = false;
            }
        }
        if let Some(problem) = raw.method.as_deref().and_then(method_problem) {
            self.error(key_path(path, "method"), problem);
            valid = false;
        }
        let header = self.header_rule(header, &key_path(path, "header"));
        let rule = BucketRule {
            host: raw.host,
            path_prefix: raw.path_prefix,
            method: raw.method,
            header: header?,
        };
        valid.then_some(Some(rule))
    }

    /// `match.header: { name, value }` (optional); both keys are required.
    fn header_rule(&mut self, value: Option<Value>, path: &str) -> Option<Option<(String, String)>> {
        let value = match value {
            None | Some(Value::Null) => return Some(None),
            Some(value) => value,
        };
        let raw: RawHeader = self.piece(Some(value), path, HEADER_KEYS, "a header condition")?;
        let name_path = key_path(path, "name");
        let name = match raw.name {
            None => {
                self.error(name_path, MISSING);
                None
            }
            Some(name) if !is_token(&name) => {
                self.error(name_path, format!("`{name}` is not a valid header name"));
                None
            }
            Some(name) => Some(name),
        };
        let value_path = key_path(path, "value");
        let value = match raw.value {
            None => {
                self.error(value_path, MISSING);
                None
            }
            Some(value) => match header_value_problem(&value) {
                Some(problem) => {
                    self.error(value_path, problem);
                    None
                }
                None => Some(value),
            },
        };
        Some(Some((name?, value?)))
    }
}
