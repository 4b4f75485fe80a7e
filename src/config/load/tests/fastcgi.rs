//! Tests of `fastcgi` (cluster and backend), FastCGI backend URLs, `x_sendfile` and
//! `health.fcgi_script_filename`; a child of the loader tests, whose helpers it uses.

use super::*;

/// A document with one cluster `c` whose body is `body` (written unindented).
fn cluster(body: &str) -> String {
    let body: Vec<String> = body.lines().map(|line| format!("    {line}")).collect();
    format!("{MINIMAL}clusters:\n  c:\n{}\n", body.join("\n"))
}

fn cluster_c(body: &str) -> ClusterConfig {
    ok(&cluster(body)).clusters["c"].clone()
}

#[test]
fn cluster_mapping_with_front_controller() {
    let c = cluster_c(
        "fastcgi: { document_root: /var/www/app, script: index.php }\n\
         backends:\n  - { name: php01, url: \"fastcgi://10.0.0.3:9000\", capacity: 16 }\n  \
         - { name: php02, url: \"fastcgi+unix:///run/php.sock\" }",
    );
    assert_eq!(
        c.fastcgi,
        Some(FastCgiConfig {
            document_root: PathBuf::from("/var/www/app"),
            script: Some(PathBuf::from("/var/www/app/index.php")),
        })
    );
    assert_eq!(c.backends[0].url.protocol, Protocol::FastCgi);
    assert_eq!(
        c.backends[1].url.endpoint,
        Endpoint::Unix(PathBuf::from("/run/php.sock"))
    );
    assert_eq!(c.backends[0].fastcgi, None);
}

#[test]
fn absolute_script_and_backend_override() {
    let c = cluster_c(
        "backends:\n  - name: php01\n    url: \"fastcgi://h:9000\"\n    \
         fastcgi: { document_root: /srv/a, script: /srv/shared/front.php }",
    );
    assert_eq!(c.fastcgi, None);
    assert_eq!(
        c.backends[0].fastcgi,
        Some(FastCgiConfig {
            document_root: PathBuf::from("/srv/a"),
            script: Some(PathBuf::from("/srv/shared/front.php")),
        })
    );
}

#[test]
fn fastcgi_backend_needs_a_mapping() {
    let (path, message) = one_error(&cluster("backends:\n  - { name: p, url: \"fastcgi://h:9000\" }"));
    assert_eq!(path, "clusters.c.backends[0].url");
    assert!(message.contains("needs a script mapping"), "{message}");
    // An HTTP backend doesn't.
    assert!(cluster_c("backends:\n  - { name: a, url: \"http://h:80\" }")
        .fastcgi
        .is_none());
}

#[test]
fn bad_mappings_are_reported_at_their_paths() {
    let errs = errors(&cluster(
        "fastcgi: { document_root: var/www, script: ../x.php, index: a }\n\
         backends:\n  - { name: p, url: \"fastcgi://h\", fastcgi: { script: a.php } }",
    ));
    let paths: Vec<&str> = errs.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "clusters.c.fastcgi.index",
            "clusters.c.fastcgi.document_root",
            "clusters.c.fastcgi.script",
            "clusters.c.backends[0].fastcgi.document_root",
            "clusters.c.backends[0].url",
        ],
        "{errs:#?}"
    );
    assert!(errs[1].1.contains("absolute"));
    assert!(errs[2].1.contains("`..`"));
    assert_eq!(errs[3].1, MISSING);
    assert!(errs[4].1.contains("needs a port"));
}

#[test]
fn a_fastcgi_route_backend_needs_a_script_mapping() {
    let (path, message) = one_error(&format!(
        "{MINIMAL}routes:\n  - {{ path_prefix: /, backend: \"fastcgi://h:9000\" }}\n"
    ));
    assert_eq!(path, "routes[0].backend");
    assert!(message.contains("needs a script mapping"), "{message}");
}

#[test]
fn x_sendfile_defaults_and_values() {
    assert_eq!(cluster_c("retry_after: 1").x_sendfile, XSendfileConfig::default());
    assert_eq!(cluster_c("x_sendfile:").x_sendfile, XSendfileConfig::default());
    let c = cluster_c("x_sendfile: { enabled: true, roots: [/var/www, /srv/files] }");
    assert_eq!(
        c.x_sendfile,
        XSendfileConfig {
            enabled: true,
            roots: vec![PathBuf::from("/var/www"), PathBuf::from("/srv/files")],
        }
    );
}

#[test]
fn x_sendfile_errors() {
    assert_eq!(
        one_error(&cluster("x_sendfile: { enabled: true }")),
        (
            "clusters.c.x_sendfile.roots".to_owned(),
            "list at least one directory files may be served from".to_owned()
        )
    );
    let errs = errors(&cluster(
        "x_sendfile: { enabled: yes, roots: [/ok, rel/dir, 3, /a/../b] }",
    ));
    let paths: Vec<&str> = errs.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "clusters.c.x_sendfile.enabled",
            "clusters.c.x_sendfile.roots[1]",
            "clusters.c.x_sendfile.roots[2]",
            "clusters.c.x_sendfile.roots[3]",
        ],
        "{errs:#?}"
    );
    assert!(one_error(&cluster("x_sendfile: { roots: /var/www }"))
        .1
        .contains("expected a list of directories"));
}

#[test]
fn health_fcgi_script_filename() {
    let c = cluster_c("health: { fcgi_script_filename: /var/www/ping.php }");
    assert_eq!(
        c.health.and_then(|h| h.fcgi_script_filename),
        Some(PathBuf::from("/var/www/ping.php"))
    );
    let (path, message) = one_error(&cluster("health: { fcgi_script_filename: ping.php }"));
    assert_eq!(path, "clusters.c.health.fcgi_script_filename");
    assert!(message.contains("absolute"));
}
