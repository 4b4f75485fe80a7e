//! Tests of a cluster's bucket tree (`buckets`, `default_bucket`, `debug_headers`); a child of
//! the loader tests, whose helpers it uses.

use super::*;

/// A document with one cluster `c` whose body is `body` (written unindented).
fn cluster(body: &str) -> String {
    let body: Vec<String> = body.lines().map(|line| format!("    {line}")).collect();
    format!("{MINIMAL}clusters:\n  c:\n{}\n", body.join("\n"))
}

fn pairs(want: &[(&str, &str)]) -> Vec<(String, String)> {
    want.iter().map(|(p, m)| (p.to_string(), m.to_string())).collect()
}

fn bucket(
    name: &str,
    rate: f64,
    ceil: f64,
    rule: Option<BucketRule>,
    children: Vec<BucketConfig>,
) -> BucketConfig {
    BucketConfig {
        name: name.to_owned(),
        rate,
        ceil,
        rule,
        children,
    }
}

fn method(method: &str) -> Option<BucketRule> {
    Some(BucketRule {
        method: Some(method.to_owned()),
        ..BucketRule::default()
    })
}

#[test]
fn nested_tree() {
    let c = ok(&cluster(
        r#"debug_headers: true
default_bucket: bulk
buckets:
  - name: vip
    rate: 0.2
    ceil: 0.4
    match: { path_prefix: "/checkout", host: "shop.example.com", method: POST, header: { name: X-Tier, value: gold } }
  - name: main
    rate: 0.8
    ceil: 1.0
    buckets:
      - { name: upload, rate: 0.5, ceil: 0.5, match: { method: POST } }
      - name: rest
        rate: 0.5
        ceil: 1
        match:
        buckets:
          - { name: bulk, rate: 0, ceil: 0.25, match: {} }
          - { name: api.v2_x-y, rate: 1, ceil: 1, match: { method: M-SEARCH, header: { name: x-api, value: "" } } }"#,
    ));
    let c = &c.clusters["c"];
    assert!(c.debug_headers);
    assert_eq!(c.default_bucket.as_deref(), Some("bulk"));
    let vip_rule = BucketRule {
        host: Some("shop.example.com".to_owned()),
        path_prefix: Some("/checkout".to_owned()),
        method: Some("POST".to_owned()),
        header: Some(("X-Tier".to_owned(), "gold".to_owned())),
    };
    let api_rule = BucketRule {
        method: Some("M-SEARCH".to_owned()),
        header: Some(("x-api".to_owned(), String::new())),
        ..BucketRule::default()
    };
    let rest = bucket(
        "rest",
        0.5,
        1.0,
        None,
        vec![
            bucket("bulk", 0.0, 0.25, Some(BucketRule::default()), vec![]),
            bucket("api.v2_x-y", 1.0, 1.0, Some(api_rule), vec![]),
        ],
    );
    let main = bucket(
        "main",
        0.8,
        1.0,
        None,
        vec![bucket("upload", 0.5, 0.5, method("POST"), vec![]), rest],
    );
    assert_eq!(
        c.buckets,
        vec![bucket("vip", 0.2, 0.4, Some(vip_rule), vec![]), main]
    );
}

#[test]
fn design_reference_example() {
    let c = ok(&format!(
        r#"{MINIMAL}routes:
  - {{ host: "shop.example.com", path_prefix: "/", cluster: shop }}
clusters:
  shop:
    scheduler: least-load
    buckets:
      - {{ name: vip,  rate: 0.2, ceil: 0.4, match: {{ path_prefix: "/checkout" }} }}
      - {{ name: main, rate: 0.8, ceil: 1.0 }}
    backends:
      - {{ name: app01, url: "http://10.0.0.1:8080", capacity: 8 }}
"#
    ));
    let shop = &c.clusters["shop"];
    let checkout = BucketRule {
        path_prefix: Some("/checkout".to_owned()),
        ..BucketRule::default()
    };
    assert_eq!(
        shop.buckets,
        vec![
            bucket("vip", 0.2, 0.4, Some(checkout), vec![]),
            bucket("main", 0.8, 1.0, None, vec![]),
        ]
    );
    assert_eq!(
        (shop.default_bucket.as_deref(), shop.debug_headers),
        (None, false)
    );
    assert_eq!(shop.backends.len(), 1);
}

#[test]
fn float_slack_and_edge_values() {
    let c = ok(&cluster(
        "buckets:\n  - { name: a, rate: 0.1, ceil: 0.1 }\n  - { name: b, rate: 0.2, ceil: 1 }\n  \
         - { name: c, rate: 0.7, ceil: 0.7 }\n  - { name: d, rate: 0, ceil: 0 }\ndefault_bucket: root",
    ));
    let c = &c.clusters["c"];
    let shares: Vec<(f64, f64)> = c.buckets.iter().map(|b| (b.rate, b.ceil)).collect();
    assert_eq!(shares, [(0.1, 0.1), (0.2, 1.0), (0.7, 0.7), (0.0, 0.0)]);
    assert_eq!(c.default_bucket, None, "`root` is the same as no default_bucket");
    let c = ok(&cluster("buckets:\ndebug_headers:"));
    assert!(c.clusters["c"].buckets.is_empty() && !c.clusters["c"].debug_headers);
}

#[test]
fn name_errors() {
    let e = errors(&cluster(
        r#"buckets:
  - { rate: 0.1, ceil: 0.1 }
  - { name: "a b", rate: 0.1, ceil: 0.1 }
  - { name: root, rate: 0.1, ceil: 0.1 }
  - name: vip
    rate: 0.1
    ceil: 0.1
    buckets:
      - { name: vip, rate: 0.5, ceil: 1 }
  - { name: 7, rate: 0.1, ceil: 0.1 }
  - 5"#,
    ));
    let want = [
        ("clusters.c.buckets[0].name", MISSING),
        (
            "clusters.c.buckets[1].name",
            "bucket `a b`: invalid name (use letters, digits, '_', '.', '-')",
        ),
        (
            "clusters.c.buckets[2].name",
            "bucket `root`: the name `root` is reserved for the root bucket",
        ),
        (
            "clusters.c.buckets[3].buckets[0].name",
            "bucket `vip`: duplicate name (also at clusters.c.buckets[3].name)",
        ),
        (
            "clusters.c.buckets[4].name",
            "invalid type: integer `7`, expected a string",
        ),
        (
            "clusters.c.buckets[5]",
            "expected a bucket (a map), found a number",
        ),
    ];
    assert_eq!(e, pairs(&want));
}

#[test]
fn rate_and_ceil_errors() {
    let e = errors(&cluster(
        r#"buckets:
  - { name: a, ceil: 0.5 }
  - { name: b, rate: 0.1 }
  - { name: c, rate: 1.5, ceil: 1 }
  - { name: d, rate: -0.1, ceil: 0.5 }
  - { name: e, rate: 0, ceil: 2 }
  - { name: f, rate: 0.5, ceil: 0.3 }
  - { name: g, rate: "0.1", ceil: 0.2 }"#,
    ));
    let want = [
        (
            "clusters.c.buckets[0].rate",
            "bucket `a`: required key is missing",
        ),
        (
            "clusters.c.buckets[1].ceil",
            "bucket `b`: required key is missing",
        ),
        (
            "clusters.c.buckets[2].rate",
            "bucket `c`: rate 1.5 is not between 0 and 1",
        ),
        (
            "clusters.c.buckets[3].rate",
            "bucket `d`: rate -0.1 is not between 0 and 1",
        ),
        (
            "clusters.c.buckets[4].ceil",
            "bucket `e`: ceil 2 is not between 0 and 1",
        ),
        (
            "clusters.c.buckets[5].ceil",
            "bucket `f`: ceil 0.3 is below its rate 0.5",
        ),
        (
            "clusters.c.buckets[6].rate",
            "bucket `g`: invalid type: string \"0.1\", expected f64",
        ),
    ];
    assert_eq!(e, pairs(&want));
}

#[test]
fn sibling_rates_sum_to_at_most_one() {
    let e = errors(&cluster(
        r#"buckets:
  - name: a
    rate: 0.6
    ceil: 1
    buckets:
      - { name: a1, rate: 0.7, ceil: 1 }
      - { name: a2, rate: 0.5, ceil: 1 }
  - { name: b, rate: 0.5, ceil: 1 }"#,
    ));
    let want = [
        (
            "clusters.c.buckets[0].buckets",
            "bucket `a`: the rates of its child buckets sum to 1.2, more than 1",
        ),
        (
            "clusters.c.buckets",
            "bucket `root`: the rates of its child buckets sum to 1.1, more than 1",
        ),
    ];
    assert_eq!(e, pairs(&want));
    // A sibling with another problem still counts with its rate.
    let e = errors(&cluster(
        "buckets:\n  - { name: x, rate: 0.9, ceil: 0.5 }\n  - { name: y, rate: 0.3, ceil: 1 }",
    ));
    let want = [
        (
            "clusters.c.buckets[0].ceil",
            "bucket `x`: ceil 0.5 is below its rate 0.9",
        ),
        (
            "clusters.c.buckets",
            "bucket `root`: the rates of its child buckets sum to 1.2, more than 1",
        ),
    ];
    assert_eq!(e, pairs(&want));
}

#[test]
fn match_errors() {
    let e = errors(&cluster(
        r#"buckets:
  - name: m
    rate: 0.1
    ceil: 0.2
    match: { path_prefix: checkout, method: post, host: "", query: x, header: { name: "X Tier" } }
  - { name: n, rate: 0.1, ceil: 0.2, match: { host: "shop.example.com:443", method: "GET POST", header: { value: " gold" } } }
  - { name: o, rate: 0.1, ceil: 0.2, match: "/checkout" }
  - { name: p, rate: 0.1, ceil: 0.2, match: { header: [X-Tier, gold] } }
  - { name: q, rate: 0.1, ceil: 0.2, match: { header: { name: X-Tier, value: "a\nb", extra: 1 } } }
  - { name: r, rate: 0.1, ceil: 0.2, match: { path_prefix: "${NOPE}" } }"#,
    ));
    let want = [
        (
            "clusters.c.buckets[0].match.query",
            "bucket `m`: unknown key (expected one of: host, path_prefix, method, header)",
        ),
        (
            "clusters.c.buckets[0].match.host",
            "bucket `m`: must not be empty",
        ),
        (
            "clusters.c.buckets[0].match.path_prefix",
            "bucket `m`: must start with \"/\" (got `checkout`)",
        ),
        (
            "clusters.c.buckets[0].match.method",
            "bucket `m`: method `post` would never match: HTTP methods are case-sensitive (write `POST`)",
        ),
        (
            "clusters.c.buckets[0].match.header.name",
            "bucket `m`: `X Tier` is not a valid header name",
        ),
        (
            "clusters.c.buckets[0].match.header.value",
            "bucket `m`: required key is missing",
        ),
        (
            "clusters.c.buckets[1].match.host",
            "bucket `n`: `shop.example.com:443` is not a host name (no port, e.g. shop.example.com)",
        ),
        (
            "clusters.c.buckets[1].match.method",
            "bucket `n`: `GET POST` is not an HTTP method (e.g. GET, POST)",
        ),
        (
            "clusters.c.buckets[1].match.header.name",
            "bucket `n`: required key is missing",
        ),
        (
            "clusters.c.buckets[1].match.header.value",
            "bucket `n`: header value \" gold\" would never match: HTTP strips leading and trailing blanks",
        ),
        (
            "clusters.c.buckets[2].match",
            "bucket `o`: expected a match rule (a map), found a string",
        ),
        (
            "clusters.c.buckets[3].match.header",
            "bucket `p`: expected a header condition (a map), found a list",
        ),
        (
            "clusters.c.buckets[4].match.header.extra",
            "bucket `q`: unknown key (expected one of: name, value)",
        ),
        (
            "clusters.c.buckets[4].match.header.value",
            "bucket `q`: header value \"a\\nb\" may contain only printable ASCII characters, spaces and tabs",
        ),
        (
            "clusters.c.buckets[5].match.path_prefix",
            "bucket `r`: environment variable `NOPE` is not set",
        ),
    ];
    assert_eq!(e, pairs(&want));
}

#[test]
fn shape_errors() {
    let e = errors(&cluster(
        "debug_headers: \"yes\"\nbuckets:\n  - { name: a, rate: 0.1, ceil: 0.2, weight: 1, buckets: 3 }",
    ));
    let want = [
        (
            "clusters.c.debug_headers",
            "invalid type: string \"yes\", expected a boolean",
        ),
        (
            "clusters.c.buckets[0].weight",
            "bucket `a`: unknown key (expected one of: name, rate, ceil, match, buckets)",
        ),
        (
            "clusters.c.buckets[0].buckets",
            "bucket `a`: expected a list of buckets, found a number",
        ),
    ];
    assert_eq!(e, pairs(&want));
    assert_eq!(
        one_error(&cluster("buckets: { vip: { rate: 1 } }")),
        (
            "clusters.c.buckets".into(),
            "bucket `root`: expected a list of buckets, found a map".into()
        )
    );
}

#[test]
fn default_bucket_must_name_a_bucket() {
    let two = "buckets:\n  - { name: vip, rate: 0.2, ceil: 0.4 }\n  \
               - { name: main, rate: 0.8, ceil: 1, buckets: [{ name: upload, rate: 1, ceil: 1 }] }";
    assert_eq!(
        one_error(&cluster(&format!("default_bucket: nope\n{two}"))),
        (
            "clusters.c.default_bucket".into(),
            "unknown bucket `nope` (expected one of: main, upload, vip)".into()
        )
    );
    assert_eq!(
        one_error(&cluster("default_bucket: vip")),
        (
            "clusters.c.default_bucket".into(),
            "unknown bucket `vip`: this cluster has no buckets".into()
        )
    );
    let c = ok(&cluster(&format!("default_bucket: upload\n{two}")));
    assert_eq!(c.clusters["c"].default_bucket.as_deref(), Some("upload"));
    assert_eq!(
        one_error(&cluster(&format!("default_bucket: 5\n{two}"))).0,
        "clusters.c.default_bucket"
    );
    // Not reported when the named bucket exists but has another problem, or when some bucket's
    // name could not be read (it may be the one meant).
    assert_eq!(
        paths(&cluster(
            "default_bucket: vip\nbuckets: [{ name: vip, rate: 0.5, ceil: 0.1 }]"
        )),
        ["clusters.c.buckets[0].ceil"]
    );
    assert_eq!(
        paths(&cluster("default_bucket: vip\nbuckets: [{ rate: 0.5, ceil: 1 }]")),
        ["clusters.c.buckets[0].name"]
    );
}

#[test]
fn many_errors_in_one_tree_are_all_reported() {
    let e = errors(&cluster(
        r#"scheduler: random
default_bucket: nope
buckets:
  - { name: vip, rate: 0.7, ceil: 0.5, match: { path_prefix: checkout } }
  - name: main
    rate: 0.6
    ceil: 1
    buckets:
      - { name: upload, rate: 0.5, ceil: 0.3, match: { method: post } }
      - { name: vip, rate: 0.6, ceil: 2 }
backends:
  - { name: a, url: "ftp://h" }"#,
    ));
    let want = [
        (
            "clusters.c.scheduler",
            "unknown scheduler `random` (expected one of: rr, chance, least-load)",
        ),
        ("clusters.c.buckets[0].ceil", "bucket `vip`: ceil 0.5 is below its rate 0.7"),
        (
            "clusters.c.buckets[0].match.path_prefix",
            "bucket `vip`: must start with \"/\" (got `checkout`)",
        ),
        (
            "clusters.c.buckets[1].buckets[0].ceil",
            "bucket `upload`: ceil 0.3 is below its rate 0.5",
        ),
        (
            "clusters.c.buckets[1].buckets[0].match.method",
            "bucket `upload`: method `post` would never match: HTTP methods are case-sensitive (write `POST`)",
        ),
        (
            "clusters.c.buckets[1].buckets[1].name",
            "bucket `vip`: duplicate name (also at clusters.c.buckets[0].name)",
        ),
        (
            "clusters.c.buckets[1].buckets[1].ceil",
            "bucket `vip`: ceil 2 is not between 0 and 1",
        ),
        (
            "clusters.c.buckets[1].buckets",
            "bucket `main`: the rates of its child buckets sum to 1.1, more than 1",
        ),
        (
            "clusters.c.buckets",
            "bucket `root`: the rates of its child buckets sum to 1.3, more than 1",
        ),
        (
            "clusters.c.default_bucket",
            "unknown bucket `nope` (expected one of: main, upload, vip)",
        ),
        ("clusters.c.backends[0].url", "unsupported URL scheme `ftp` (expected http, https, http+unix, fastcgi or fastcgi+unix)"),
    ];
    assert_eq!(e, pairs(&want));
}
