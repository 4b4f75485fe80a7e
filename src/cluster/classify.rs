//! Request classification into buckets: the first bucket whose `match` rule holds, in
//! configuration order (depth-first), else the cluster's default bucket.
//!
//! Hot path, pure: compiled once per bucket change, read through a snapshot.

use super::buckets::{BucketKey, ROOT};
use crate::config::{BucketConfig, BucketRule};

/// What a rule may look at.
pub trait RequestView {
    /// The `Host` header as sent (port allowed).
    fn host(&self) -> Option<&str>;
    fn path(&self) -> &str;
    fn method(&self) -> &str;
    /// The first value of header `name` (lower case).
    fn header(&self, name: &str) -> Option<&[u8]>;
}

/// A bucket rule with the bucket it leads to.
#[derive(Debug, Clone)]
struct Compiled {
    rule: BucketRule,
    /// Lower-case header name for lookups.
    header_name: Option<String>,
    key: BucketKey,
    name: String,
}

/// The compiled rules of one cluster.
#[derive(Debug, Clone)]
pub struct Classifier {
    rules: Vec<Compiled>,
    default_key: BucketKey,
    default_name: String,
}

impl Default for Classifier {
    fn default() -> Self {
        Classifier {
            rules: Vec::new(),
            default_key: ROOT,
            default_name: "root".to_owned(),
        }
    }
}

impl Classifier {
    /// Compiles the rules of `buckets`; `key_of` maps a bucket name to its key.
    pub fn new(
        buckets: &[BucketConfig],
        default_bucket: Option<&str>,
        key_of: impl Fn(&str) -> Option<BucketKey>,
    ) -> Classifier {
        let mut rules = Vec::new();
        collect(buckets, &key_of, &mut rules);
        let (default_key, default_name) = default_bucket
            .and_then(|name| key_of(name).map(|k| (k, name.to_owned())))
            .unwrap_or((ROOT, "root".to_owned()));
        Classifier {
            rules,
            default_key,
            default_name,
        }
    }

    /// The bucket (key and name) for a request.
    pub fn classify(&self, req: &impl RequestView) -> (BucketKey, &str) {
        self.rules
            .iter()
            .find(|c| matches(c, req))
            .map_or((self.default_key, self.default_name.as_str()), |c| {
                (c.key, c.name.as_str())
            })
    }
}

fn collect(buckets: &[BucketConfig], key_of: &impl Fn(&str) -> Option<BucketKey>, out: &mut Vec<Compiled>) {
    for b in buckets {
        if let (Some(rule), Some(key)) = (&b.rule, key_of(&b.name)) {
            out.push(Compiled {
                header_name: rule.header.as_ref().map(|(n, _)| n.to_ascii_lowercase()),
                rule: rule.clone(),
                key,
                name: b.name.clone(),
            });
        }
        collect(&b.children, key_of, out);
    }
}

fn matches(c: &Compiled, req: &impl RequestView) -> bool {
    let r = &c.rule;
    r.path_prefix.as_deref().is_none_or(|p| req.path().starts_with(p))
        && r.method.as_deref().is_none_or(|m| req.method() == m)
        && r.host
            .as_deref()
            .is_none_or(|h| req.host().is_some_and(|x| host_matches(x, h)))
        && match (&c.header_name, &r.header) {
            (Some(name), Some((_, value))) => req.header(name) == Some(value.as_bytes()),
            _ => true,
        }
}

/// `sent` (maybe with a port) equals `wanted`, ignoring case.
pub fn host_matches(sent: &str, wanted: &str) -> bool {
    let bare = if sent.starts_with('[') {
        sent.split_once(']').map_or(sent, |(h, _)| &h[1..])
    } else {
        sent.rsplit_once(':').map_or(sent, |(h, _)| h)
    };
    bare.eq_ignore_ascii_case(wanted.trim_start_matches('[').trim_end_matches(']'))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Req(
        &'static str,
        &'static str,
        &'static str,
        Vec<(&'static str, &'static str)>,
    );
    impl RequestView for Req {
        fn host(&self) -> Option<&str> {
            Some(self.0)
        }
        fn path(&self) -> &str {
            self.1
        }
        fn method(&self) -> &str {
            self.2
        }
        fn header(&self, name: &str) -> Option<&[u8]> {
            self.3.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_bytes())
        }
    }

    fn bucket(name: &str, rule: Option<BucketRule>, children: Vec<BucketConfig>) -> BucketConfig {
        BucketConfig {
            name: name.into(),
            rate: 0.1,
            ceil: 0.5,
            rule,
            children,
        }
    }

    #[test]
    fn first_match_in_config_order_else_default() {
        let tree = vec![
            bucket(
                "vip",
                Some(BucketRule {
                    path_prefix: Some("/checkout".into()),
                    ..Default::default()
                }),
                vec![bucket(
                    "vip-post",
                    Some(BucketRule {
                        method: Some("POST".into()),
                        ..Default::default()
                    }),
                    vec![],
                )],
            ),
            bucket(
                "gold",
                Some(BucketRule {
                    host: Some("Shop.Example".into()),
                    header: Some(("X-Tier".into(), "gold".into())),
                    ..Default::default()
                }),
                vec![],
            ),
            bucket("main", None, vec![]),
        ];
        let keys = ["vip", "vip-post", "gold", "main"];
        let key_of = |n: &str| keys.iter().position(|k| *k == n).map(|i| i as u32 + 1);
        let c = Classifier::new(&tree, Some("main"), key_of);
        let get = |r: Req| c.classify(&r).1.to_owned();
        assert_eq!(get(Req("a", "/checkout/pay", "POST", vec![])), "vip");
        assert_eq!(get(Req("a", "/cart", "POST", vec![])), "vip-post");
        assert_eq!(
            get(Req("shop.example:80", "/", "GET", vec![("x-tier", "gold")])),
            "gold"
        );
        assert_eq!(
            get(Req("shop.example", "/", "GET", vec![("x-tier", "silver")])),
            "main"
        );
        assert_eq!(get(Req("other", "/", "GET", vec![("x-tier", "gold")])), "main");
        let root = Classifier::new(&tree, None, key_of);
        assert_eq!(root.classify(&Req("a", "/", "GET", vec![])), (ROOT, "root"));
    }

    #[test]
    fn hosts_compare_without_port_and_case() {
        assert!(host_matches("Example.com:8080", "example.com"));
        assert!(host_matches("[::1]:80", "::1"));
        assert!(!host_matches("example.org", "example.com"));
    }
}
