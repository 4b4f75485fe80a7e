//! X-Sendfile / X-Accel-Redirect: a backend (HTTP, or php-fpm over FastCGI) names a file and
//! director serves it from the configured roots: bytes, MIME type, validators, escapes refused,
//! conditional requests, ranges (single and multipart/byteranges), HEAD; and, when disabled,
//! the backend's response relayed as it is.
//!
//! Each case runs as two tests, `<case>::http` and `<case>::php_fpm`; the php-fpm ones are
//! reported as ignored when php-fpm is not installed (build.rs looks for it).

use crate::support;
#[path = "../../src/proxy/sendfile/swapper.rs"]
mod swapper;

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use support::backend::{pattern, TestBackend, XSENDFILE_BODY};
use support::php::{Listen, PhpFpm};
use support::{request, start, Director, Reply};
use swapper::Swapper;

/// Files under a temp dir: `root/` (the sendfile root) and `outside/` (not a root).
struct Files {
    base: tempfile::TempDir,
}

const HELLO: &[u8] = b"hello, sendfile\n";
const DATA_LEN: usize = 100_000;
const BIG_LEN: usize = 3 * 1024 * 1024 + 17;
const SECRET: &[u8] = b"top secret, never served\n";

impl Files {
    fn new() -> Files {
        let base = support::temp_dir("sendfile");
        let (root, outside) = (base.path().join("root"), base.path().join("outside"));
        fs::create_dir_all(root.join("sub")).expect("mkdir");
        fs::create_dir_all(&outside).expect("mkdir");
        fs::write(root.join("hello.txt"), HELLO).expect("write");
        fs::write(root.join("data.bin"), pattern(0, DATA_LEN)).expect("write");
        fs::write(root.join("big.unknownext"), pattern(0, BIG_LEN)).expect("write");
        fs::write(root.join("page.html"), b"<p>hi</p>\n").expect("write");
        fs::write(root.join("style.css"), b"p { color: red }\n").expect("write");
        fs::write(root.join("image.png"), b"\x89PNG\r\n\x1a\n").expect("write");
        fs::write(root.join("sub/inner.json"), b"{\"inner\":true}\n").expect("write");
        fs::write(outside.join("secret.txt"), SECRET).expect("write");
        std::os::unix::fs::symlink("sub/inner.json", root.join("link-inside.json")).expect("ln");
        // Absolute symlinks are refused even when they point inside the root.
        std::os::unix::fs::symlink(root.join("sub/inner.json"), root.join("absolute.json")).expect("ln");
        std::os::unix::fs::symlink(outside.join("secret.txt"), root.join("escape.txt")).expect("ln");
        std::os::unix::fs::symlink(&outside, root.join("escape-dir")).expect("ln");
        Files { base }
    }

    fn root(&self) -> PathBuf {
        self.base.path().join("root")
    }

    fn at(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }

    fn enabled(&self) -> String {
        format!(
            "x_sendfile: {{ enabled: true, roots: [\"{}\"] }}",
            self.root().display()
        )
    }
}

/// The application behind director that answers with the sendfile header; held (never read)
/// so that it lives as long as its case.
#[allow(dead_code)]
enum App {
    Http(TestBackend),
    Php(PhpFpm),
}

/// A director in front of one application.
struct Case {
    app: App,
    d: Director,
}

impl Case {
    fn label(&self) -> &'static str {
        match self.app {
            App::Http(_) => "http",
            App::Php(_) => "fastcgi",
        }
    }

    /// The request URI that makes the application name `file` (`accel`: in X-Accel-Redirect).
    fn uri(&self, file: &Path, accel: bool) -> String {
        let path = encode(file.as_os_str().as_encoded_bytes());
        match (&self.app, accel) {
            (App::Http(_), false) => format!("/xsendfile?path={path}"),
            (App::Http(_), true) => format!("/xsendfile?path={path}&accel=1"),
            (App::Php(_), false) => format!("/xsendfile.php?path={path}"),
            (App::Php(_), true) => format!("/xaccel.php?path={path}"),
        }
    }

    /// The body the application itself sends.
    fn app_body(&self) -> &'static str {
        match self.app {
            App::Http(_) => XSENDFILE_BODY,
            App::Php(_) => "php body, not the file\n",
        }
    }

    async fn fetch(&self, method: &str, file: &Path, accel: bool, headers: &[(&str, &str)]) -> Reply {
        request(
            &self.d.target(),
            method,
            &self.uri(file, accel),
            headers,
            Bytes::new(),
        )
        .await
    }

    async fn get(&self, file: &Path, headers: &[(&str, &str)]) -> Reply {
        self.fetch("GET", file, false, headers).await
    }

    async fn finish(self) {
        self.d.settled("c").await;
        self.d.stop().await;
    }
}

/// Percent-encodes everything but unreserved characters and `/`.
fn encode(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A director with `settings` in front of the HTTP test backend.
async fn http_case(settings: &str) -> Case {
    let http = TestBackend::start("app").await;
    let yaml = support::cluster_config(settings, &[("app", http.url(), 4, "active")]);
    Case {
        d: start(&yaml).await,
        app: App::Http(http),
    }
}

/// The application behind director in a test.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// The HTTP test backend.
    Http,
    /// php-fpm over FastCGI.
    Php,
}

/// A director with `settings` in front of the application `app`.
async fn case(app: Kind, settings: &str) -> Case {
    match app {
        Kind::Http => http_case(settings).await,
        Kind::Php => {
            let fpm = PhpFpm::start(Listen::Unix, 2).await;
            let mapping = format!(
                "fastcgi: {{ document_root: \"{}\" }}",
                support::php::docroot().display()
            );
            let settings = format!("{mapping}\n{settings}");
            let yaml = support::cluster_config(&settings, &[("php", fpm.url(), 2, "active")]);
            Case {
                d: start(&yaml).await,
                app: App::Php(fpm),
            }
        }
    }
}

/// Two tests of the async fn `$test(app: Kind)`: `$test::http` against the HTTP test backend,
/// `$test::php_fpm` against php-fpm (ignored, with the reason, when php-fpm is not installed).
macro_rules! for_each_app {
    ($test:ident) => {
        mod $test {
            #[tokio::test]
            async fn http() {
                super::$test(super::Kind::Http).await
            }

            #[cfg_attr(
                not(has_php_fpm),
                ignore = "php-fpm not installed (apt-get install php8.2-fpm)"
            )]
            #[tokio::test]
            async fn php_fpm() {
                super::$test(super::Kind::Php).await
            }
        }
    };
}

fn last_modified(file: &Path) -> String {
    let mtime = fs::metadata(file).expect("metadata").modified().expect("mtime");
    httpdate::fmt_http_date(mtime)
}

/// The file's bytes, type and validators, for X-Sendfile and X-Accel-Redirect alike; the
/// backend's own body and the sendfile header never reach the client.
async fn the_named_file_is_served_with_type_and_validators(app: Kind) {
    let files = Files::new();
    let case = case(app, &files.enabled()).await;
    let who = case.label();
    for accel in [false, true] {
        let file = files.at("hello.txt");
        let reply = case.fetch("GET", &file, accel, &[]).await;
        assert_eq!(reply.status, 200, "{who} accel={accel}: {}", reply.text());
        assert_eq!(&reply.body[..], HELLO, "{who} accel={accel}");
        assert_eq!(reply.header("content-type"), Some("text/plain; charset=utf-8"));
        assert_eq!(reply.header("content-length"), Some("16"), "{who}");
        assert_eq!(reply.header("accept-ranges"), Some("bytes"), "{who}");
        let etag = reply.header("etag").unwrap_or_else(|| panic!("{who}: no ETag"));
        assert!(
            etag.starts_with('"') && etag.ends_with('"') && etag.len() > 2,
            "{who}: strong ETag expected, got {etag}"
        );
        assert_eq!(reply.header("last-modified"), Some(last_modified(&file).as_str()));
        for leaked in ["x-sendfile", "x-accel-redirect"] {
            assert!(
                reply.header(leaked).is_none(),
                "{who}: {leaked} reached the client"
            );
        }
    }
    let types = [
        ("page.html", "text/html; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
        ("image.png", "image/png"),
        ("sub/inner.json", "application/json"),
        ("big.unknownext", "application/octet-stream"),
    ];
    for (rel, mime) in types {
        let file = files.at(rel);
        let reply = case.get(&file, &[]).await;
        assert_eq!(reply.status, 200, "{who} {rel}");
        assert_eq!(reply.header("content-type"), Some(mime), "{who} {rel}");
        assert!(
            reply.body[..] == fs::read(&file).expect("read")[..],
            "{who} {rel}: wrong bytes"
        );
    }
    // The same file twice has the same ETag; a changed file gets another one.
    let file = files.at("data.bin");
    let first = case.get(&file, &[]).await;
    assert_eq!(first.body.len(), DATA_LEN);
    assert!(first.body[..] == pattern(0, DATA_LEN)[..], "{who}: data.bin");
    let again = case.get(&file, &[]).await;
    assert_eq!(first.header("etag"), again.header("etag"), "{who}");
    case.finish().await;
}
for_each_app!(the_named_file_is_served_with_type_and_validators);

/// Changing the file (size and mtime) changes its ETag.
#[tokio::test]
async fn a_changed_file_gets_another_etag() {
    let files = Files::new();
    let case = http_case(&files.enabled()).await;
    let file = files.at("hello.txt");
    let before = case.get(&file, &[]).await;
    fs::write(&file, b"changed contents, longer than before\n").expect("rewrite");
    let after = case.get(&file, &[]).await;
    assert_eq!(after.text(), "changed contents, longer than before\n");
    assert_ne!(before.header("etag"), after.header("etag"));
    case.finish().await;
}

/// A relative symlink that stays inside the root is followed; a 3 MB file arrives intact.
async fn inside_symlinks_and_large_files_are_served(app: Kind) {
    let files = Files::new();
    let case = case(app, &files.enabled()).await;
    let who = case.label();
    let reply = case.get(&files.at("link-inside.json"), &[]).await;
    assert_eq!(reply.status, 200, "{who}: {}", reply.text());
    assert_eq!(reply.text(), "{\"inner\":true}\n");
    let reply = case.get(&files.at("big.unknownext"), &[]).await;
    assert_eq!(reply.status, 200, "{who}");
    assert_eq!(reply.body.len(), BIG_LEN, "{who}");
    assert!(reply.body[..] == pattern(0, BIG_LEN)[..], "{who}: big file bytes");
    case.finish().await;
}
for_each_app!(inside_symlinks_and_large_files_are_served);

/// `..`, symlinks leading out (and absolute ones), paths outside every root and relative paths
/// are 403; a missing file under the root is 404. Nothing of the secret leaks.
async fn escapes_and_paths_outside_the_roots_are_refused(app: Kind) {
    let files = Files::new();
    let root = files.root();
    let case = case(app, &files.enabled()).await;
    let who = case.label();
    let refused = [
        root.join("../outside/secret.txt"),
        root.join("sub/../../outside/secret.txt"),
        root.join("escape.txt"),
        root.join("escape-dir/secret.txt"),
        root.join("absolute.json"),
        files.base.path().join("outside/secret.txt"),
        PathBuf::from("/etc/passwd"),
        PathBuf::from("hello.txt"),
        root.clone(),
        root.join("sub"),
    ];
    for target in refused {
        for accel in [false, true] {
            let reply = case.fetch("GET", &target, accel, &[]).await;
            assert_eq!(
                reply.status,
                403,
                "{who} accel={accel} {}: {}",
                target.display(),
                reply.text()
            );
            let body = reply.text();
            assert!(
                !body.contains("top secret") && !body.contains("root:"),
                "{who}: {body}"
            );
            assert!(
                !body.contains(case.app_body().trim()),
                "{who}: backend body relayed"
            );
        }
    }
    let reply = case.get(&root.join("missing.txt"), &[]).await;
    assert_eq!(reply.status, 404, "{who}: {}", reply.text());
    // `..` that stays inside the root is fine.
    let reply = case.get(&root.join("sub/../hello.txt"), &[]).await;
    assert_eq!(reply.status, 200, "{who}");
    assert_eq!(&reply.body[..], HELLO);
    case.finish().await;
}
for_each_app!(escapes_and_paths_outside_the_roots_are_refused);

/// With x_sendfile disabled (absent, or `enabled: false`) the backend's response is relayed
/// with its body — but never the header itself: it names a path on the backend's host, which
/// is no client's business (nginx drops it too).
async fn disabled_x_sendfile_relays_the_backend_response(app: Kind) {
    let files = Files::new();
    let off = format!(
        "x_sendfile: {{ enabled: false, roots: [\"{}\"] }}",
        files.root().display()
    );
    for settings in ["", off.as_str()] {
        let case = case(app, settings).await;
        let who = case.label();
        let file = files.at("hello.txt");
        for (accel, header) in [(false, "x-sendfile"), (true, "x-accel-redirect")] {
            let reply = case.fetch("GET", &file, accel, &[]).await;
            assert_eq!(reply.status, 200, "{who} {settings:?}");
            assert_eq!(reply.text(), case.app_body(), "{who} {settings:?} {header}");
            assert_eq!(reply.header(header), None, "{who} {settings:?}");
        }
        case.finish().await;
    }
}
for_each_app!(disabled_x_sendfile_relays_the_backend_response);

/// Only GET and HEAD serve the file; anything else is 405 with `Allow`.
async fn other_methods_are_405(app: Kind) {
    let files = Files::new();
    let case = case(app, &files.enabled()).await;
    let who = case.label();
    for method in ["POST", "PUT", "DELETE"] {
        let reply = case.fetch(method, &files.at("hello.txt"), false, &[]).await;
        assert_eq!(reply.status, 405, "{who} {method}: {}", reply.text());
        let allow = reply.header("allow").unwrap_or_default().to_ascii_uppercase();
        assert!(
            allow.contains("GET") && allow.contains("HEAD"),
            "{who}: Allow {allow:?}"
        );
        assert!(!reply.text().contains("hello, sendfile"), "{who}");
    }
    case.finish().await;
}
for_each_app!(other_methods_are_405);

/// HEAD: the GET's headers, including Content-Length, and no body.
async fn head_has_the_headers_and_no_body(app: Kind) {
    let files = Files::new();
    let case = case(app, &files.enabled()).await;
    let who = case.label();
    let file = files.at("data.bin");
    let reply = case.fetch("HEAD", &file, false, &[]).await;
    assert_eq!(reply.status, 200, "{who}");
    assert!(reply.body.is_empty(), "{who}: HEAD with a body");
    assert_eq!(
        reply.header("content-length"),
        Some(DATA_LEN.to_string().as_str()),
        "{who}"
    );
    assert_eq!(reply.header("content-type"), Some("application/octet-stream"));
    assert!(reply.header("etag").is_some(), "{who}");
    assert_eq!(reply.header("last-modified"), Some(last_modified(&file).as_str()));
    case.finish().await;
}
for_each_app!(head_has_the_headers_and_no_body);

/// If-None-Match / If-Modified-Since give 304; a failing If-Match / If-Unmodified-Since 412.
async fn conditional_requests_are_evaluated(app: Kind) {
    let files = Files::new();
    let file = files.at("hello.txt");
    // An mtime well in the past, so `If-Modified-Since: <now>` is later than it.
    let past = std::time::SystemTime::now() - Duration::from_secs(3600);
    fs::File::options()
        .write(true)
        .open(&file)
        .and_then(|f| f.set_modified(past))
        .expect("set mtime");
    let modified = last_modified(&file);
    let now = httpdate::fmt_http_date(std::time::SystemTime::now());
    let case = case(app, &files.enabled()).await;
    let who = case.label();
    let full = case.get(&file, &[]).await;
    let etag = full.header("etag").expect("etag").to_owned();
    let other_etag = "\"not-the-etag\"";

    let expect = |reply: &Reply, status: u16, what: &str| {
        assert_eq!(reply.status, status, "{who} {what}: {}", reply.text());
        if status == 304 || status == 412 {
            assert!(reply.body.is_empty(), "{who} {what}: body {}", reply.text());
        } else {
            assert_eq!(&reply.body[..], HELLO, "{who} {what}");
        }
    };
    let r = case.get(&file, &[("if-none-match", &etag)]).await;
    expect(&r, 304, "If-None-Match: etag");
    assert_eq!(
        r.header("etag"),
        Some(etag.as_str()),
        "{who}: 304 carries the ETag"
    );
    let weak = format!("W/{etag}");
    let list = format!("{other_etag}, {weak}");
    expect(
        &case.get(&file, &[("if-none-match", &list)]).await,
        304,
        "weak match in a list",
    );
    expect(
        &case.get(&file, &[("if-none-match", "*")]).await,
        304,
        "If-None-Match: *",
    );
    expect(
        &case.get(&file, &[("if-none-match", other_etag)]).await,
        200,
        "other etag",
    );
    expect(
        &case.get(&file, &[("if-modified-since", &modified)]).await,
        304,
        "IMS = mtime",
    );
    expect(
        &case.get(&file, &[("if-modified-since", &now)]).await,
        304,
        "IMS later",
    );
    let long_ago = "Mon, 01 Jan 2001 00:00:00 GMT";
    expect(
        &case.get(&file, &[("if-modified-since", long_ago)]).await,
        200,
        "IMS earlier",
    );
    // If-None-Match wins over If-Modified-Since.
    let r = case
        .get(
            &file,
            &[("if-none-match", other_etag), ("if-modified-since", &now)],
        )
        .await;
    expect(&r, 200, "INM mismatch + IMS");
    // HEAD is conditional too.
    let r = case
        .fetch("HEAD", &file, false, &[("if-none-match", &etag)])
        .await;
    assert_eq!(r.status, 304, "{who}: conditional HEAD");

    expect(
        &case.get(&file, &[("if-match", other_etag)]).await,
        412,
        "If-Match mismatch",
    );
    expect(
        &case.get(&file, &[("if-match", &etag)]).await,
        200,
        "If-Match match",
    );
    expect(&case.get(&file, &[("if-match", "*")]).await, 200, "If-Match: *");
    // If-Match uses the strong comparison: a weak tag never matches.
    expect(
        &case.get(&file, &[("if-match", &weak)]).await,
        412,
        "If-Match weak",
    );
    expect(
        &case.get(&file, &[("if-unmodified-since", long_ago)]).await,
        412,
        "IUS past",
    );
    expect(
        &case.get(&file, &[("if-unmodified-since", &now)]).await,
        200,
        "IUS later",
    );
    case.finish().await;
}
for_each_app!(conditional_requests_are_evaluated);

/// Parts of a multipart/byteranges body: (Content-Type, Content-Range, bytes) each.
fn multipart_parts(content_type: &str, body: &[u8]) -> Vec<(String, String, Vec<u8>)> {
    let boundary = content_type
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))
        .unwrap_or_else(|| panic!("no boundary in {content_type}"))
        .trim_matches('"');
    let delimiter = format!("--{boundary}");
    let find = |hay: &[u8], needle: &[u8], from: usize| {
        hay[from..]
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|p| p + from)
    };
    let mut parts = Vec::new();
    let mut at = find(body, delimiter.as_bytes(), 0).expect("first delimiter");
    loop {
        at += delimiter.len();
        if body[at..].starts_with(b"--") {
            break;
        }
        assert!(body[at..].starts_with(b"\r\n"), "delimiter line ends with CRLF");
        at += 2;
        let head_end = find(body, b"\r\n\r\n", at).expect("part head");
        let head = String::from_utf8_lossy(&body[at..head_end]).into_owned();
        let mut content_type = String::new();
        let mut content_range = String::new();
        for line in head.split("\r\n") {
            let (name, value) = line.split_once(':').expect("part header");
            match name.trim().to_ascii_lowercase().as_str() {
                "content-type" => content_type = value.trim().to_owned(),
                "content-range" => content_range = value.trim().to_owned(),
                _ => {}
            }
        }
        let data_start = head_end + 4;
        let next = find(body, format!("\r\n{delimiter}").as_bytes(), data_start).expect("next delimiter");
        parts.push((content_type, content_range, body[data_start..next].to_vec()));
        at = next + 2;
    }
    parts
}

/// Single ranges (206 + Content-Range), multiple ranges (multipart/byteranges), unsatisfiable
/// ones (416), and If-Range.
async fn ranges_are_served(app: Kind) {
    let files = Files::new();
    let file = files.at("data.bin");
    let total = DATA_LEN as u64;
    let case = case(app, &files.enabled()).await;
    let who = case.label();
    let singles: [(&str, u64, u64); 4] = [
        ("bytes=10-19", 10, 19),
        ("bytes=-5", total - 5, total - 1),
        ("bytes=99990-", 99_990, total - 1),
        ("bytes=0-999999", 0, total - 1),
    ];
    for (range, first, last) in singles {
        let r = case.get(&file, &[("range", range)]).await;
        assert_eq!(r.status, 206, "{who} {range}: {}", r.text());
        let expected = format!("bytes {first}-{last}/{total}");
        assert_eq!(
            r.header("content-range"),
            Some(expected.as_str()),
            "{who} {range}"
        );
        let len = (last - first + 1) as usize;
        assert_eq!(r.header("content-length"), Some(len.to_string().as_str()));
        assert_eq!(r.header("content-type"), Some("application/octet-stream"));
        assert!(
            r.body[..] == pattern(first, len)[..],
            "{who} {range}: wrong bytes"
        );
    }

    let r = case.get(&file, &[("range", "bytes=0-9,50-59,-10")]).await;
    assert_eq!(r.status, 206, "{who} multi: {}", r.text());
    let content_type = r.header("content-type").expect("content-type").to_owned();
    assert!(
        content_type.starts_with("multipart/byteranges"),
        "{who}: {content_type}"
    );
    assert!(
        r.header("content-range").is_none(),
        "{who}: multipart has no top Content-Range"
    );
    if let Some(len) = r.header("content-length") {
        assert_eq!(len, r.body.len().to_string(), "{who}: multipart Content-Length");
    }
    let parts = multipart_parts(&content_type, &r.body);
    let expected = [(0u64, 9u64), (50, 59), (total - 10, total - 1)];
    assert_eq!(parts.len(), expected.len(), "{who}: parts");
    for ((ct, cr, data), (first, last)) in parts.iter().zip(expected) {
        assert_eq!(ct, "application/octet-stream", "{who}");
        assert_eq!(cr, &format!("bytes {first}-{last}/{total}"), "{who}");
        assert!(
            data[..] == pattern(first, (last - first + 1) as usize)[..],
            "{who} part {cr}"
        );
    }

    for range in ["bytes=200000-", "bytes=100000-100010"] {
        let r = case.get(&file, &[("range", range)]).await;
        assert_eq!(r.status, 416, "{who} {range}: {}", r.text());
        let expected = format!("bytes */{total}");
        assert_eq!(
            r.header("content-range"),
            Some(expected.as_str()),
            "{who} {range}"
        );
    }
    // A syntactically invalid or foreign-unit Range is ignored: the full file.
    for range in ["bytes=abc", "lines=1-2"] {
        let r = case.get(&file, &[("range", range)]).await;
        assert_eq!(r.status, 200, "{who} {range}");
        assert_eq!(r.body.len(), DATA_LEN);
    }

    let etag = case
        .get(&file, &[])
        .await
        .header("etag")
        .expect("etag")
        .to_owned();
    let r = case
        .get(&file, &[("range", "bytes=0-9"), ("if-range", "\"stale\"")])
        .await;
    assert_eq!(r.status, 200, "{who}: If-Range mismatch gives the full file");
    assert_eq!(r.body.len(), DATA_LEN, "{who}");
    assert!(r.header("content-range").is_none());
    let r = case
        .get(&file, &[("range", "bytes=0-9"), ("if-range", &etag)])
        .await;
    assert_eq!(r.status, 206, "{who}: If-Range match");
    assert!(r.body[..] == pattern(0, 10)[..]);
    case.finish().await;
}
for_each_app!(ranges_are_served);

/// What the race test's inside file holds, and the marker only the outside one holds.
const INSIDE: &[u8] = b"inside the root\n";
const OUTSIDE_MARKER: &[u8] = b"OUTSIDE-MARKER, must never be served\n";

/// A directory inside the root swapped for a symlink to a directory outside it (atomically, in
/// a tight loop) while many X-Sendfile requests run through director: the outside file is
/// never served (a check-then-open-by-name served it), while both states are seen (200 inside,
/// 403 out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_swapped_for_an_outside_symlink_never_leaks() {
    const TASKS: usize = 8;
    const MIN_REQUESTS: usize = 2_000;
    const MAX_REQUESTS: usize = 20_000;
    let files = Files::new();
    let (root, outside) = (files.root(), files.base.path().join("outside/swapped"));
    fs::create_dir(root.join("swap")).expect("mkdir");
    fs::write(root.join("swap/file.txt"), INSIDE).expect("write");
    fs::create_dir(&outside).expect("mkdir");
    fs::write(outside.join("file.txt"), OUTSIDE_MARKER).expect("write");
    std::os::unix::fs::symlink(&outside, root.join("swap-alt")).expect("symlink out");

    let http = TestBackend::start("app").await;
    let yaml = support::cluster_config(&files.enabled(), &[("app", http.url(), 64, "active")]);
    let d = start(&yaml).await;
    let uri = format!(
        "/xsendfile?path={}",
        encode(root.join("swap/file.txt").as_os_str().as_bytes())
    );

    let swapper = Swapper::start(&root);
    #[derive(Default)]
    struct Tally {
        sent: AtomicUsize,
        inside: AtomicUsize,
        refused: AtomicUsize,
        leaked: AtomicUsize,
    }
    let tally = Arc::new(Tally::default());
    let both_seen = |t: &Tally| t.inside.load(Ordering::Relaxed) > 0 && t.refused.load(Ordering::Relaxed) > 0;
    let workers: Vec<_> = (0..TASKS)
        .map(|_| {
            let (target, uri, tally) = (d.target(), uri.clone(), tally.clone());
            tokio::spawn(async move {
                loop {
                    let sent = tally.sent.fetch_add(1, Ordering::Relaxed);
                    if sent >= MAX_REQUESTS || (sent >= MIN_REQUESTS && both_seen(&tally)) {
                        break;
                    }
                    let reply = request(&target, "GET", &uri, &[], Bytes::new()).await;
                    let counter = match reply.status {
                        _ if reply.body.windows(8).any(|w| w == &OUTSIDE_MARKER[..8]) => &tally.leaked,
                        200 if reply.body[..] == INSIDE[..] => &tally.inside,
                        403 => &tally.refused,
                        other => panic!("unexpected reply {other}: {}", reply.text()),
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("request task");
    }
    let swaps = swapper.stop();
    let (inside, refused, leaked) = (
        tally.inside.load(Ordering::Relaxed),
        tally.refused.load(Ordering::Relaxed),
        tally.leaked.load(Ordering::Relaxed),
    );
    let sent = inside + refused + leaked;
    eprintln!("race: {sent} requests, {swaps} swaps: {inside} inside, {refused} refused, {leaked} leaked");
    assert_eq!(
        leaked, 0,
        "the outside file was served {leaked} times in {sent} requests"
    );
    assert!(
        inside > 0 && refused > 0,
        "the swap never raced the requests: {inside} inside, {refused} refused"
    );
    d.stop().await;
}

/// A file large enough to fill the socket buffers goes out zero-copy (the connection's own
/// `sendfile(2)`); a client that stops reading is cut after `send_timeout` like any other
/// response, and the request ends: nothing stays in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_a_large_file_is_cut_after_send_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const HUGE: usize = 64 * 1024 * 1024;
    let files = Files::new();
    fs::write(files.at("huge.bin"), pattern(0, HUGE)).expect("write");
    let http = TestBackend::start("app").await;
    let yaml = format!(
        "proxy:\n  listen: [\"127.0.0.1:0\"]\n  workers: 1\n  send_timeout: 500ms\nroutes:\n  - {{ path_prefix: \"/\", cluster: c }}\nclusters:\n  c:\n    {}\n    backends:\n      - {{ name: app, url: \"{}\", capacity: 4 }}\n",
        files.enabled(),
        http.url()
    );
    let d = start(&yaml).await;
    let path = encode(files.at("huge.bin").as_os_str().as_bytes());
    let mut client = tokio::net::TcpStream::connect(d.addr()).await.expect("connect");
    client
        .write_all(format!("GET /xsendfile?path={path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .expect("send");
    // Not reading: director's writes stall once the socket buffers are full, and after
    // `send_timeout` it closes its end (its FIN waits behind the unread bytes).
    support::eventually("director closed the connection", || {
        support::scripted::closed_by_server_on(d.addr().port()) == 1
    })
    .await;
    d.settled("c").await;
    let mut received = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), client.read_to_end(&mut received)).await;
    assert!(matches!(read, Ok(Ok(_))), "the connection was closed: {read:?}");
    assert!(
        received.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&received[..64])
    );
    let head_end = received
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head")
        + 4;
    let head = String::from_utf8_lossy(&received[..head_end]).to_ascii_lowercase();
    assert!(head.contains(&format!("content-length: {HUGE}")), "{head}");
    let body = &received[head_end..];
    assert!(body.len() < HUGE, "cut short: {} of {HUGE} bytes", body.len());
    assert!(
        body == &pattern(0, body.len())[..],
        "what arrived is the file's beginning"
    );
    d.stop().await;
}
