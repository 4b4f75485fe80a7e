//! Tests of listener maps in `proxy.listen`, `tls` (certificates read and checked at load
//! time), `redirect_to_https`, `hsts` and `admin.tls`; a child of the loader tests.

use super::*;

/// A certificate and key for `name` written as PEM files under a fresh temp dir.
struct Pem {
    _dir: tempfile::TempDir,
    cert: PathBuf,
    key: PathBuf,
}

fn pem(name: &str) -> Pem {
    let dir = tempfile::tempdir().expect("temp dir");
    let made = rcgen::generate_simple_self_signed(vec![name.to_owned(), format!("*.{name}")]).expect("rcgen");
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("c.key"));
    std::fs::write(&cert, made.cert.pem()).expect("write");
    std::fs::write(&key, made.key_pair.serialize_pem()).expect("write");
    Pem { _dir: dir, cert, key }
}

fn listener(cert: &Path, key: &Path, extra: &str) -> String {
    format!(
        "proxy:\n  listen:\n    - \"127.0.0.1:0\"\n    - {{ address: \"127.0.0.1:8443\", tls: {{ certificates: [{{ cert: \"{}\", key: \"{}\" }}] }}{extra} }}\n",
        cert.display(),
        key.display()
    )
}

#[test]
fn a_listener_map_with_tls_and_hsts() {
    let p = pem("shop.test");
    let c = ok(&listener(
        &p.cert,
        &p.key,
        ", hsts: { max_age: 1h, include_subdomains: true }",
    ));
    let tls_listener = &c.proxy.listen[1];
    assert_eq!(
        tls_listener.address,
        ListenAddr::Tcp("127.0.0.1:8443".parse().unwrap())
    );
    let files = &tls_listener.tls.as_ref().expect("tls").certificates[0];
    assert_eq!((&files.cert, &files.key), (&p.cert, &p.key));
    let hsts = tls_listener.hsts.expect("hsts");
    assert_eq!(hsts.header_value(), "max-age=3600; includeSubDomains");
    assert_eq!(
        c.proxy.listen[0],
        ListenerConfig::plain(ListenAddr::Tcp("127.0.0.1:0".parse().unwrap()))
    );
}

#[test]
fn certificate_problems_are_reported_at_their_file() {
    let p = pem("a.test");
    let other = pem("b.test");
    let missing = p.cert.with_file_name("missing.pem");
    let at = "proxy.listen[1].tls.certificates[0]";
    let (path, message) = one_error(&listener(&missing, &p.key, ""));
    assert_eq!(path, format!("{at}.cert"));
    assert!(message.contains("file not found"), "{message}");

    let garbage = p.cert.with_file_name("garbage.pem");
    std::fs::write(&garbage, "hello").unwrap();
    let (path, message) = one_error(&listener(&garbage, &p.key, ""));
    assert_eq!(path, format!("{at}.cert"));
    assert!(message.contains("no PEM certificate"), "{message}");

    let (path, message) = one_error(&listener(&p.cert, &garbage, ""));
    assert_eq!(path, format!("{at}.key"));
    assert!(message.contains("not a PEM private key"), "{message}");

    let (path, message) = one_error(&listener(&p.cert, &other.key, ""));
    assert_eq!(path, format!("{at}.key"));
    assert!(message.contains("does not belong"), "{message}");
}

#[test]
fn listener_options_fit_the_kind_of_listener() {
    let p = pem("a.test");
    let (path, message) = one_error(&listener(&p.cert, &p.key, ", redirect_to_https: true"));
    assert_eq!(path, "proxy.listen[1].redirect_to_https");
    assert!(message.contains("plain listener"), "{message}");
    let plain = |extra: &str| format!("proxy:\n  listen:\n    - {{ address: \"127.0.0.1:0\"{extra} }}\n");
    assert_eq!(one_error(&plain(", hsts: {}")).0, "proxy.listen[0].hsts");
    assert_eq!(
        ok(&plain(", redirect_to_https: true")).proxy.listen[0].redirect_to_https,
        Some(443)
    );
    assert_eq!(
        ok(&plain(", redirect_to_https: 8443")).proxy.listen[0].redirect_to_https,
        Some(8443)
    );
    assert_eq!(
        ok(&plain(", redirect_to_https: false")).proxy.listen[0].redirect_to_https,
        None
    );
    assert_eq!(
        one_error(&plain(", redirect_to_https: 0")).0,
        "proxy.listen[0].redirect_to_https"
    );
    assert_eq!(
        one_error(&plain(", redirect_to_https: yes")).0,
        "proxy.listen[0].redirect_to_https"
    );
    assert_eq!(
        one_error("proxy:\n  listen: [{ tls: null }]\n").0,
        "proxy.listen[0].address"
    );
    assert_eq!(
        one_error("proxy:\n  listen: [{ address: \"127.0.0.1:0\", tls: { certificates: [] } }]\n").0,
        "proxy.listen[0].tls.certificates"
    );
    assert_eq!(
        one_error("proxy:\n  listen: [{ address: \"127.0.0.1:0\", port: 1 }]\n").0,
        "proxy.listen[0].port"
    );
}

#[test]
fn the_admin_listener_may_have_tls() {
    let p = pem("admin.test");
    let admin = |key: &Path| {
        format!(
            "{MINIMAL}admin:\n  listen: \"127.0.0.1:0\"\n  tls: {{ certificates: [{{ cert: \"{}\", key: \"{}\" }}] }}\n",
            p.cert.display(),
            key.display()
        )
    };
    let c = ok(&admin(&p.key));
    assert_eq!(
        c.admin.expect("admin").tls.expect("tls").certificates[0].cert,
        p.cert
    );
    let (path, _) = one_error(&admin(&p.key.with_file_name("nope.key")));
    assert_eq!(path, "admin.tls.certificates[0].key");
}
