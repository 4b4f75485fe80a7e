//! Tests of `https://` backends' `tls` and a cluster's `backend_tls`, and of a road-warrior
//! route's `tls`; a child of the loader tests, whose helpers it uses. Certificates are made
//! here with rcgen.

use super::*;
use crate::config::BackendTls;

/// A temp directory with `ca.pem` (a self-signed CA), `client.pem` and `client.key` (a
/// certificate it issued), `other.key` (a key of no certificate) and `junk.pem`.
struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Files {
        let dir = crate::test_util::temp_dir("tls-config");
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = params.self_signed(&ca_key).expect("CA");
        let client_key = rcgen::KeyPair::generate().expect("key");
        let client = rcgen::CertificateParams::new(vec!["client".to_owned()])
            .expect("params")
            .signed_by(&client_key, &ca, &ca_key)
            .expect("client certificate");
        let other_key = rcgen::KeyPair::generate().expect("key");
        let write = |name: &str, text: String| std::fs::write(dir.path().join(name), text).expect("write");
        write("ca.pem", ca.pem());
        write("client.pem", client.pem());
        write("client.key", client_key.serialize_pem());
        write("other.key", other_key.serialize_pem());
        write("junk.pem", "not a certificate\n".to_owned());
        Files { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

/// A document with one cluster `c`: `settings` (a YAML line or none) and one backend at `url`
/// with the flow-map `tls` (or none).
fn doc(settings: &str, url: &str, tls: Option<&str>) -> String {
    let tls = tls.map(|t| format!(", tls: {{ {t} }}")).unwrap_or_default();
    format!("{MINIMAL}clusters:\n  c:\n    {settings}\n    backends:\n      - {{ name: b, url: \"{url}\"{tls} }}\n")
}

fn tls_of(yaml: &str) -> Option<BackendTls> {
    ok(yaml).clusters["c"].backends[0].tls.clone()
}

#[test]
fn an_https_backend_gets_a_client_configuration_and_others_none() {
    let f = Files::new();
    let ca = format!("ca: {}", f.path("ca.pem"));
    let tls = tls_of(&doc("", "https://127.0.0.1:8443", Some(&ca))).expect("https: TLS");
    assert_eq!(tls.settings.ca, Some(PathBuf::from(f.path("ca.pem"))));
    assert!(tls.settings.verify, "verified by default");
    assert_eq!(tls.client_config().alpn_protocols, [b"http/1.1".to_vec()]);
    assert!(tls_of(&doc("", "http://127.0.0.1:8080", None)).is_none());
}

#[test]
fn backend_keys_are_laid_over_the_clusters_backend_tls() {
    let f = Files::new();
    let settings = format!(
        "backend_tls: {{ ca: {}, server_name: shared.internal, verify: true }}",
        f.path("ca.pem")
    );
    let tls = tls_of(&doc(
        &settings,
        "https://10.0.0.1",
        Some("server_name: own.internal"),
    ))
    .expect("TLS");
    assert_eq!(tls.settings.server_name.as_deref(), Some("own.internal"));
    assert_eq!(tls.settings.ca, Some(PathBuf::from(f.path("ca.pem"))));
    let tls = tls_of(&doc(&settings, "https://10.0.0.1", None)).expect("TLS");
    assert_eq!(tls.settings.server_name.as_deref(), Some("shared.internal"));
}

#[test]
fn unreadable_or_bad_files_are_reported_where_they_were_named() {
    let f = Files::new();
    let url = "https://10.0.0.1";
    let backend_path = "clusters.c.backends[0].tls";
    let (path, message) = one_error(&doc("", url, Some(&format!("ca: {}", f.path("missing.pem")))));
    assert_eq!(path, format!("{backend_path}.ca"));
    assert!(
        message.starts_with("cannot read ") && message.contains("missing.pem"),
        "{message}"
    );

    let (path, message) = one_error(&doc("", url, Some(&format!("ca: {}", f.path("junk.pem")))));
    assert_eq!(path, format!("{backend_path}.ca"));
    assert!(message.contains("no PEM certificate"), "{message}");

    // A bad file in the cluster's defaults is the cluster's error.
    let settings = format!("backend_tls: {{ ca: {} }}", f.path("junk.pem"));
    let (path, _) = one_error(&doc(&settings, url, None));
    assert_eq!(path, "clusters.c.backend_tls.ca");

    let mtls = |key: &str| {
        format!(
            "client_cert: {}, client_key: {}",
            f.path("client.pem"),
            f.path(key)
        )
    };
    let (path, message) = one_error(&doc("", url, Some(&mtls("other.key"))));
    assert_eq!(path, format!("{backend_path}.client_key"));
    assert!(message.contains("not usable with `client_cert`"), "{message}");
    let (path, message) = one_error(&doc("", url, Some(&mtls("client.pem"))));
    assert_eq!(path, format!("{backend_path}.client_key"));
    assert!(message.contains("no PEM private key"), "{message}");
    assert!(tls_of(&doc("", url, Some(&mtls("client.key")))).is_some());
}

#[test]
fn shapes_that_cannot_work_are_refused() {
    let url = "https://10.0.0.1";
    let at = "clusters.c.backends[0].tls";
    let cases = [
        ("ca: relative.pem", format!("{at}.ca"), "must be an absolute path"),
        (
            "client_cert: /c.pem",
            at.to_owned(),
            "`client_cert` needs a `client_key`",
        ),
        (
            "client_key: /c.key",
            at.to_owned(),
            "`client_key` needs a `client_cert`",
        ),
        (
            "server_name: \"not a name\"",
            format!("{at}.server_name"),
            "not a DNS name",
        ),
        (
            "server_name: \"\"",
            format!("{at}.server_name"),
            "must not be empty",
        ),
        ("verify: maybe", format!("{at}.verify"), "invalid type"),
        ("sni: x", format!("{at}.sni"), "unknown key"),
    ];
    for (tls, path, says) in cases {
        let (p, m) = one_error(&doc("", url, Some(tls)));
        assert_eq!(p, path, "{tls}");
        assert!(m.contains(says), "{tls}: {m}");
    }
    let (p, m) = one_error(&doc("", "http://10.0.0.1", Some("verify: false")));
    assert_eq!(
        (p.as_str(), m.as_str()),
        (at, "`tls` applies to an https:// URL only")
    );
}

#[test]
fn equal_settings_over_equal_files_are_equal_and_a_changed_file_is_not() {
    let f = Files::new();
    let yaml = doc("", "https://10.0.0.1", Some(&format!("ca: {}", f.path("ca.pem"))));
    let before = tls_of(&yaml);
    assert_eq!(
        before,
        tls_of(&yaml),
        "a reload of the same files keeps the backend"
    );
    std::fs::copy(f.path("client.pem"), f.path("ca.pem")).expect("replace the CA");
    assert_ne!(before, tls_of(&yaml), "a new CA file makes a new backend");
}

#[test]
fn a_road_warrior_route_has_its_own_tls() {
    let f = Files::new();
    let yaml = format!(
        "{MINIMAL}routes:\n  - {{ backend: \"https://10.0.0.1:8443\", tls: {{ ca: {}, server_name: app.internal }} }}\n",
        f.path("ca.pem")
    );
    let route = &ok(&yaml).routes[0];
    let tls = route.tls.as_ref().expect("TLS");
    assert_eq!(tls.settings.server_name.as_deref(), Some("app.internal"));

    let yaml =
        format!("{MINIMAL}routes:\n  - {{ backend: \"http://10.0.0.1\", tls: {{ verify: false }} }}\n");
    assert_eq!(one_error(&yaml).0, "routes[0].tls");
    let yaml = format!(
        "{MINIMAL}routes:\n  - {{ cluster: c, tls: {{ verify: false }} }}\nclusters:\n  c:\n    backends: []\n"
    );
    assert_eq!(one_error(&yaml).0, "routes[0].tls");
}
