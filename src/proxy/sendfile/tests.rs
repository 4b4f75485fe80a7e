//! `serve` end to end on real files, directories and symlinks under the system temp dir.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::future::{poll_fn, Future};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::task::Poll;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};

use super::body::FilePiece;
use super::body::CHUNK_SIZE;
use super::ranges::MAX_RANGES;
use super::*;

/// A fresh directory with `root/` (the sendfile root) and `outside/`; removed on drop.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new(name: &str) -> Self {
        let dir = crate::test_util::temp_dir(&format!("sendfile-{name}"));
        fs::create_dir_all(dir.path().join("root")).expect("create root");
        fs::create_dir_all(dir.path().join("outside")).expect("create outside");
        Fixture { dir }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn roots(&self) -> Vec<PathBuf> {
        vec![self.root()]
    }

    /// Writes `contents` to `relative` (under the fixture dir) with a fixed mtime.
    fn write(&self, relative: &str, contents: &[u8]) -> PathBuf {
        let path = self.dir.path().join(relative);
        fs::write(&path, contents).expect("write file");
        File::options()
            .write(true)
            .open(&path)
            .expect("reopen")
            .set_modified(mtime())
            .expect("set mtime");
        path
    }
}

/// 2020-09-13T12:26:40.25Z: a fraction of a second, so date comparisons must truncate.
fn mtime() -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(1_600_000_000_250)
}

fn http_date(time: SystemTime) -> String {
    httpdate::fmt_http_date(time)
}

/// 1000 distinct-ish bytes, so a wrong offset shows.
fn sample() -> Vec<u8> {
    (0..1000u32).map(|i| (i % 251) as u8).collect()
}

fn request(method: Method, target: &Path, roots: &[PathBuf], headers: &[(&str, &str)]) -> FileResponse {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            HeaderValue::from_str(value).expect("header value"),
        );
    }
    block_on(serve(target.as_os_str().as_bytes(), roots, &method, &map))
}

/// Runs `future` to completion on this test thread's runtime (the one whose blocking pool
/// opens and reads the files).
fn block_on<F: Future>(future: F) -> F::Output {
    thread_local! {
        static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
    }
    RUNTIME.with(|runtime| runtime.block_on(future))
}

/// The body's next piece, waiting for it.
/// The next piece of a body without a sink: always bytes.
fn next_piece(body: &mut FileBody) -> Option<io::Result<bytes::Bytes>> {
    block_on(poll_fn(|cx| body.poll_next(cx))).map(|piece| {
        piece.map(|piece| match piece {
            FilePiece::Bytes(bytes) => bytes,
            FilePiece::Sent(n) => panic!("{n} bytes sent through a sink the body was not given"),
        })
    })
}

fn get(target: &Path, roots: &[PathBuf], headers: &[(&str, &str)]) -> FileResponse {
    request(Method::GET, target, roots, headers)
}

fn header_text<'a>(response: &'a FileResponse, name: &HeaderName) -> Option<&'a str> {
    response
        .header(name)
        .map(|value| value.to_str().expect("ASCII header"))
}

/// Drives `poll_next` to the end, checking that it yields exactly `len()` bytes.
fn body_bytes(response: &mut FileResponse) -> Vec<u8> {
    let expected = response.body.len();
    let bytes = try_body_bytes(&mut response.body).expect("body reads");
    assert_eq!(bytes.len() as u64, expected, "len() must match the bytes yielded");
    bytes
}

fn try_body_bytes(body: &mut FileBody) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    while let Some(chunk) = next_piece(body) {
        bytes.extend_from_slice(&chunk?);
    }
    Ok(bytes)
}

fn etag_of(target: &Path, roots: &[PathBuf]) -> String {
    let response = get(target, roots, &[]);
    header_text(&response, &header::ETAG).expect("ETag").to_owned()
}

// --- Confinement -------------------------------------------------------------------------------

#[test]
fn a_file_under_the_root_is_served_whole() {
    let fixture = Fixture::new("whole");
    let path = fixture.write("root/page.html", &sample());
    let mut response = get(&path, &fixture.roots(), &[]);
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(body_bytes(&mut response), sample());
    assert_eq!(
        header_text(&response, &header::CONTENT_TYPE),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(header_text(&response, &header::ACCEPT_RANGES), Some("bytes"));
    assert_eq!(
        header_text(&response, &header::LAST_MODIFIED),
        Some(http_date(mtime()).as_str())
    );
    let etag = header_text(&response, &header::ETAG).expect("ETag");
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && etag.len() > 2,
        "strong ETag: {etag}"
    );
    assert!(response.header(&header::CONTENT_LENGTH).is_none());
    assert_eq!(response.head_content_length, None);
}

#[test]
fn a_file_larger_than_a_chunk_arrives_in_several_exact_chunks() {
    let fixture = Fixture::new("large");
    let contents: Vec<u8> = (0..CHUNK_SIZE * 2 + 12345).map(|i| (i % 253) as u8).collect();
    let path = fixture.write("root/big.bin", &contents);
    let mut response = get(&path, &fixture.roots(), &[]);
    assert_eq!(response.body.len(), contents.len() as u64);
    let mut chunks = 0;
    let mut served = Vec::new();
    while let Some(chunk) = next_piece(&mut response.body) {
        let chunk = chunk.expect("chunk");
        assert!(chunk.len() <= CHUNK_SIZE);
        served.extend_from_slice(&chunk);
        chunks += 1;
    }
    assert_eq!(chunks, 3);
    assert!(served == contents, "served bytes differ from the file");
}

#[test]
fn a_missing_file_under_the_root_is_404() {
    let fixture = Fixture::new("missing");
    let response = get(&fixture.root().join("nope.txt"), &fixture.roots(), &[]);
    assert_eq!(response.status, StatusCode::NOT_FOUND);
    assert!(response.body.is_empty());
    let under_a_file = fixture.write("root/file.txt", b"x").join("child");
    assert_eq!(
        get(&under_a_file, &fixture.roots(), &[]).status,
        StatusCode::NOT_FOUND
    );
}

#[test]
fn dot_dot_out_of_the_root_is_403() {
    let fixture = Fixture::new("dotdot");
    fixture.write("outside/secret.txt", b"secret");
    let escape = fixture.root().join("../outside/secret.txt");
    let response = get(&escape, &fixture.roots(), &[]);
    assert_eq!(response.status, StatusCode::FORBIDDEN);
    assert!(response.body.is_empty());
    // Whether something exists outside the roots is not revealed.
    let missing = fixture.root().join("../outside/missing.txt");
    assert_eq!(get(&missing, &fixture.roots(), &[]).status, StatusCode::FORBIDDEN);
    // `..` that stays inside is fine.
    fixture.write("root/inside.txt", b"in");
    fs::create_dir(fixture.root().join("sub")).expect("mkdir");
    let inside = fixture.root().join("sub/../inside.txt");
    assert_eq!(get(&inside, &fixture.roots(), &[]).status, StatusCode::OK);
}

#[test]
fn a_symlink_leading_out_of_the_root_is_403() {
    let fixture = Fixture::new("symlink-out");
    let secret = fixture.write("outside/secret.txt", b"secret");
    symlink(&secret, fixture.root().join("link.txt")).expect("symlink");
    symlink(fixture.dir.path().join("outside"), fixture.root().join("linkdir")).expect("symlink");
    for target in [
        fixture.root().join("link.txt"),
        fixture.root().join("linkdir/secret.txt"),
    ] {
        assert_eq!(
            get(&target, &fixture.roots(), &[]).status,
            StatusCode::FORBIDDEN,
            "{target:?}"
        );
    }
}

#[test]
fn a_symlink_within_the_root_is_followed() {
    let fixture = Fixture::new("symlink-in");
    fs::create_dir(fixture.root().join("assets")).expect("mkdir");
    fixture.write("root/assets/real.css", b"body{}");
    symlink("assets/real.css", fixture.root().join("alias.css")).expect("symlink");
    let mut response = get(&fixture.root().join("alias.css"), &fixture.roots(), &[]);
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(body_bytes(&mut response), b"body{}");
    assert_eq!(
        header_text(&response, &header::CONTENT_TYPE),
        Some("text/css; charset=utf-8")
    );
}

#[test]
fn an_absolute_symlink_is_403_even_into_the_root() {
    let fixture = Fixture::new("symlink-absolute");
    let path = fixture.write("root/a.txt", b"a");
    symlink(&path, fixture.root().join("absolute.txt")).expect("symlink");
    let response = get(&fixture.root().join("absolute.txt"), &fixture.roots(), &[]);
    assert_eq!(response.status, StatusCode::FORBIDDEN);
}

#[test]
fn a_root_reached_through_a_symlink_is_canonicalized_too() {
    let fixture = Fixture::new("symlink-root");
    let path = fixture.write("root/a.txt", b"a");
    let root_alias = fixture.dir.path().join("root-alias");
    symlink(fixture.root(), &root_alias).expect("symlink");
    let alias_roots = vec![root_alias.clone()];
    assert_eq!(get(&path, &alias_roots, &[]).status, StatusCode::OK);
    assert_eq!(
        get(&root_alias.join("a.txt"), &fixture.roots(), &[]).status,
        StatusCode::OK
    );
    assert_eq!(
        get(&root_alias.join("none"), &alias_roots, &[]).status,
        StatusCode::NOT_FOUND
    );
}

#[test]
fn no_roots_or_missing_roots_admit_nothing() {
    let fixture = Fixture::new("no-roots");
    let path = fixture.write("root/a.txt", b"a");
    assert_eq!(get(&path, &[], &[]).status, StatusCode::FORBIDDEN);
    assert_eq!(
        get(&path, &[fixture.dir.path().join("gone")], &[]).status,
        StatusCode::FORBIDDEN
    );
}

#[test]
fn directories_are_403() {
    let fixture = Fixture::new("directory");
    fs::create_dir(fixture.root().join("sub")).expect("mkdir");
    assert_eq!(
        get(&fixture.root().join("sub"), &fixture.roots(), &[]).status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        get(&fixture.root(), &fixture.roots(), &[]).status,
        StatusCode::FORBIDDEN
    );
}

#[test]
fn an_unreadable_file_is_403() {
    let fixture = Fixture::new("unreadable");
    let path = fixture.write("root/locked.txt", b"locked");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o000)).expect("chmod");
    if File::open(&path).is_ok() {
        eprintln!("skipped: running with privileges that read mode-000 files (root)");
        return;
    }
    assert_eq!(get(&path, &fixture.roots(), &[]).status, StatusCode::FORBIDDEN);
}

#[test]
fn relative_empty_and_nul_targets_are_403_without_panics() {
    let fixture = Fixture::new("odd-targets");
    let roots = fixture.roots();
    for target in [&b"relative.txt"[..], b"", b"/etc/\0passwd", b"\0"] {
        let response = block_on(serve(target, &roots, &Method::GET, &HeaderMap::new()));
        assert_eq!(
            response.status,
            StatusCode::FORBIDDEN,
            "{:?}",
            target.escape_ascii().to_string()
        );
    }
}

#[test]
fn non_utf8_file_names_are_served() {
    let fixture = Fixture::new("non-utf8");
    let name = OsStr::from_bytes(b"caf\xe9.txt");
    let path = fixture.root().join(name);
    fs::write(&path, b"latin-1 name").expect("write");
    let mut response = get(&path, &fixture.roots(), &[]);
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(body_bytes(&mut response), b"latin-1 name");
    let missing = fixture.root().join(OsStr::from_bytes(b"\xff\xfe"));
    assert_eq!(get(&missing, &fixture.roots(), &[]).status, StatusCode::NOT_FOUND);
}

#[test]
fn the_open_and_the_reads_wait_off_the_calling_thread() {
    let fixture = Fixture::new("offload");
    let contents: Vec<u8> = (0..CHUNK_SIZE + 10).map(|i| (i % 249) as u8).collect();
    let path = fixture.write("root/a.bin", &contents);
    let roots = fixture.roots();
    let (target, headers) = (path.as_os_str().as_bytes(), HeaderMap::new());
    // A runtime with one blocking thread, kept busy until `release`: work handed to the
    // blocking pool can't finish meanwhile, work done in the poll could.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(1)
        .build()
        .expect("a runtime");
    let occupy = || {
        let (release, wait) = std::sync::mpsc::channel::<()>();
        runtime.spawn_blocking(move || wait.recv());
        release
    };
    runtime.block_on(async {
        let release = occupy();
        let mut serving = std::pin::pin!(serve(target, &roots, &Method::GET, &headers));
        for _ in 0..3 {
            let pending = poll_fn(|cx| Poll::Ready(serving.as_mut().poll(cx).is_pending())).await;
            assert!(pending, "the open waits for the blocking pool");
            tokio::task::yield_now().await;
        }
        release.send(()).expect("release");
        let mut response = serving.await;
        assert_eq!(response.status, StatusCode::OK);
        let release = occupy();
        let pending = poll_fn(|cx| Poll::Ready(response.body.poll_next(cx).is_pending())).await;
        assert!(pending, "the first chunk waits for the blocking pool");
        release.send(()).expect("release");
        let mut served = Vec::new();
        while let Some(chunk) = poll_fn(|cx| response.body.poll_next(cx)).await {
            let FilePiece::Bytes(chunk) = chunk.expect("chunk") else {
                panic!("no sink was given")
            };
            served.extend_from_slice(&chunk);
        }
        assert!(served == contents, "served bytes differ from the file");
    });
}

// --- Methods -----------------------------------------------------------------------------------

#[test]
fn methods_other_than_get_and_head_are_405_with_allow() {
    let fixture = Fixture::new("methods");
    let path = fixture.write("root/a.txt", b"a");
    for method in [
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::OPTIONS,
        Method::PATCH,
    ] {
        let response = request(method.clone(), &path, &fixture.roots(), &[]);
        assert_eq!(response.status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(header_text(&response, &header::ALLOW), Some("GET, HEAD"));
        assert!(response.body.is_empty());
    }
}

#[test]
fn head_has_the_headers_but_no_body() {
    let fixture = Fixture::new("head");
    let path = fixture.write("root/doc.pdf", &sample());
    let mut response = request(Method::HEAD, &path, &fixture.roots(), &[("range", "bytes=0-9")]);
    assert_eq!(response.status, StatusCode::OK, "Range applies to GET only");
    assert_eq!(response.body.len(), 0);
    assert_eq!(body_bytes(&mut response), b"");
    assert_eq!(response.head_content_length, Some(sample().len() as u64));
    assert_eq!(
        header_text(&response, &header::CONTENT_TYPE),
        Some("application/pdf")
    );
    assert!(response.header(&header::ETAG).is_some());
    assert!(response.header(&header::LAST_MODIFIED).is_some());
    assert_eq!(header_text(&response, &header::ACCEPT_RANGES), Some("bytes"));
}

#[test]
fn content_types_follow_the_extension() {
    let fixture = Fixture::new("mime");
    for (name, expected) in [
        ("a.js", "text/javascript; charset=utf-8"),
        ("a.txt", "text/plain; charset=utf-8"),
        ("a.png", "image/png"),
        ("a.WEBP", "image/webp"),
        ("a.unknown", "application/octet-stream"),
        ("noextension", "application/octet-stream"),
    ] {
        let path = fixture.write(&format!("root/{name}"), b"x");
        let response = get(&path, &fixture.roots(), &[]);
        assert_eq!(
            header_text(&response, &header::CONTENT_TYPE),
            Some(expected),
            "{name}"
        );
    }
}

// --- Conditional requests ----------------------------------------------------------------------

#[test]
fn if_match_passes_on_its_tag_a_list_or_star_and_fails_otherwise() {
    let fixture = Fixture::new("if-match");
    let path = fixture.write("root/a.txt", b"a");
    let roots = fixture.roots();
    let etag = etag_of(&path, &roots);
    let list = format!("\"other\", {etag}");
    for passing in [etag.as_str(), list.as_str(), "*"] {
        assert_eq!(
            get(&path, &roots, &[("if-match", passing)]).status,
            StatusCode::OK,
            "{passing}"
        );
    }
    let weak = format!("W/{etag}");
    for failing in ["\"other\"", weak.as_str(), "garbage"] {
        let response = get(&path, &roots, &[("if-match", failing)]);
        assert_eq!(response.status, StatusCode::PRECONDITION_FAILED, "{failing}");
        assert!(response.body.is_empty());
    }
}

#[test]
fn if_unmodified_since_fails_only_after_a_change() {
    let fixture = Fixture::new("if-unmodified-since");
    let path = fixture.write("root/a.txt", b"a");
    let roots = fixture.roots();
    let same_second = http_date(mtime());
    let earlier = http_date(mtime() - Duration::from_secs(60));
    assert_eq!(
        get(&path, &roots, &[("if-unmodified-since", &same_second)]).status,
        StatusCode::OK
    );
    let response = get(&path, &roots, &[("if-unmodified-since", &earlier)]);
    assert_eq!(response.status, StatusCode::PRECONDITION_FAILED);
    // Ignored when If-Match is present, and when it is not a date.
    let with_if_match = [("if-match", "*"), ("if-unmodified-since", earlier.as_str())];
    assert_eq!(get(&path, &roots, &with_if_match).status, StatusCode::OK);
    assert_eq!(
        get(&path, &roots, &[("if-unmodified-since", "yesterday")]).status,
        StatusCode::OK
    );
}

#[test]
fn if_none_match_is_304_on_a_weak_match_a_list_or_star() {
    let fixture = Fixture::new("if-none-match");
    let path = fixture.write("root/a.txt", b"a");
    let roots = fixture.roots();
    let etag = etag_of(&path, &roots);
    let weak = format!("W/{etag}");
    let list = format!("\"x\", {weak}");
    for matching in [etag.as_str(), weak.as_str(), list.as_str(), "*"] {
        let mut response = get(&path, &roots, &[("if-none-match", matching)]);
        assert_eq!(response.status, StatusCode::NOT_MODIFIED, "{matching}");
        assert_eq!(header_text(&response, &header::ETAG), Some(etag.as_str()));
        assert!(response.header(&header::LAST_MODIFIED).is_some());
        assert_eq!(body_bytes(&mut response), b"");
    }
    let response = request(Method::HEAD, &path, &roots, &[("if-none-match", &etag)]);
    assert_eq!(response.status, StatusCode::NOT_MODIFIED);
    assert_eq!(
        get(&path, &roots, &[("if-none-match", "\"x\"")]).status,
        StatusCode::OK
    );
}

#[test]
fn if_modified_since_is_304_unless_changed_since() {
    let fixture = Fixture::new("if-modified-since");
    let path = fixture.write("root/a.txt", b"a");
    let roots = fixture.roots();
    let same_second = http_date(mtime());
    let later = http_date(mtime() + Duration::from_secs(60));
    let earlier = http_date(mtime() - Duration::from_secs(1));
    for current in [&same_second, &later] {
        assert_eq!(
            get(&path, &roots, &[("if-modified-since", current)]).status,
            StatusCode::NOT_MODIFIED
        );
    }
    assert_eq!(
        get(&path, &roots, &[("if-modified-since", &earlier)]).status,
        StatusCode::OK
    );
    assert_eq!(
        get(&path, &roots, &[("if-modified-since", "not a date")]).status,
        StatusCode::OK
    );
    // If-None-Match takes precedence.
    let both = [
        ("if-none-match", "\"x\""),
        ("if-modified-since", same_second.as_str()),
    ];
    assert_eq!(get(&path, &roots, &both).status, StatusCode::OK);
}

#[test]
fn if_match_is_evaluated_before_if_none_match() {
    let fixture = Fixture::new("precedence");
    let path = fixture.write("root/a.txt", b"a");
    let roots = fixture.roots();
    let etag = etag_of(&path, &roots);
    let both = [("if-match", "\"other\""), ("if-none-match", etag.as_str())];
    assert_eq!(get(&path, &roots, &both).status, StatusCode::PRECONDITION_FAILED);
}

#[test]
fn if_range_gates_the_range_on_a_strong_tag_or_the_exact_date() {
    let fixture = Fixture::new("if-range");
    let path = fixture.write("root/a.bin", &sample());
    let roots = fixture.roots();
    let etag = etag_of(&path, &roots);
    let exact_date = http_date(mtime());
    for current in [etag.as_str(), exact_date.as_str()] {
        let mut response = get(&path, &roots, &[("range", "bytes=0-9"), ("if-range", current)]);
        assert_eq!(response.status, StatusCode::PARTIAL_CONTENT, "{current}");
        assert_eq!(body_bytes(&mut response), &sample()[..10]);
    }
    let weak = format!("W/{etag}");
    let later = http_date(mtime() + Duration::from_secs(1));
    for stale in [weak.as_str(), "\"other\"", later.as_str(), "garbage"] {
        let mut response = get(&path, &roots, &[("range", "bytes=0-9"), ("if-range", stale)]);
        assert_eq!(response.status, StatusCode::OK, "{stale}");
        assert_eq!(body_bytes(&mut response), sample());
    }
}

// --- Ranges ------------------------------------------------------------------------------------

fn single_range(range: &str) -> (FileResponse, Vec<u8>) {
    let fixture = Fixture::new("range");
    let path = fixture.write("root/a.bin", &sample());
    let mut response = get(&path, &fixture.roots(), &[("range", range)]);
    let bytes = body_bytes(&mut response);
    (response, bytes)
}

#[test]
fn a_single_range_is_206_with_content_range() {
    let (response, bytes) = single_range("bytes=100-199");
    assert_eq!(response.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        header_text(&response, &header::CONTENT_RANGE),
        Some("bytes 100-199/1000")
    );
    assert_eq!(
        header_text(&response, &header::CONTENT_TYPE),
        Some("application/octet-stream")
    );
    assert!(response.header(&header::ETAG).is_some());
    assert_eq!(bytes, &sample()[100..200]);
}

#[test]
fn a_suffix_range_serves_the_tail() {
    let (response, bytes) = single_range("bytes=-10");
    assert_eq!(response.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        header_text(&response, &header::CONTENT_RANGE),
        Some("bytes 990-999/1000")
    );
    assert_eq!(bytes, &sample()[990..]);
}

#[test]
fn an_open_range_runs_to_the_end() {
    let (response, bytes) = single_range("bytes=995-");
    assert_eq!(response.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        header_text(&response, &header::CONTENT_RANGE),
        Some("bytes 995-999/1000")
    );
    assert_eq!(bytes, &sample()[995..]);
}

#[test]
fn overlapping_ranges_are_merged_into_one() {
    let (response, bytes) = single_range("bytes=0-9,5-19");
    assert_eq!(
        header_text(&response, &header::CONTENT_RANGE),
        Some("bytes 0-19/1000")
    );
    assert_eq!(bytes, &sample()[..20]);
}

/// One part of a `multipart/byteranges` body.
#[derive(Debug)]
struct Part {
    content_type: String,
    content_range: String,
    bytes: Vec<u8>,
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

/// Parses `body` strictly: `--b CRLF headers CRLF CRLF data (CRLF --b ...)* CRLF --b-- CRLF`.
fn parse_multipart(body: &[u8], boundary: &str) -> Vec<Part> {
    let delimiter = format!("\r\n--{boundary}");
    let mut rest = [b"\r\n", body].concat();
    let mut parts = Vec::new();
    loop {
        assert!(rest.starts_with(delimiter.as_bytes()), "expected a delimiter");
        rest.drain(..delimiter.len());
        if rest == b"--\r\n" {
            return parts;
        }
        assert!(rest.starts_with(b"\r\n"));
        let head_end = find(&rest, b"\r\n\r\n").expect("part head ends");
        let head = String::from_utf8(rest[2..head_end].to_vec()).expect("ASCII part head");
        rest.drain(..head_end + 4);
        let data_end = find(&rest, delimiter.as_bytes()).expect("next delimiter");
        let bytes: Vec<u8> = rest.drain(..data_end).collect();
        let field = |name: &str| {
            head.split("\r\n")
                .find_map(|line| line.strip_prefix(name))
                .unwrap_or_else(|| panic!("{name} missing in {head:?}"))
                .to_owned()
        };
        parts.push(Part {
            content_type: field("Content-Type: "),
            content_range: field("Content-Range: "),
            bytes,
        });
    }
}

#[test]
fn several_ranges_are_a_multipart_body() {
    let fixture = Fixture::new("multipart");
    let path = fixture.write("root/data.csv", &sample());
    let mut response = get(&path, &fixture.roots(), &[("range", "bytes=-5, 0-9,500-599")]);
    assert_eq!(response.status, StatusCode::PARTIAL_CONTENT);
    assert!(response.header(&header::CONTENT_RANGE).is_none());
    let content_type = header_text(&response, &header::CONTENT_TYPE)
        .expect("Content-Type")
        .to_owned();
    let boundary = content_type
        .strip_prefix("multipart/byteranges; boundary=")
        .expect("multipart type");
    let parts = parse_multipart(&body_bytes(&mut response), boundary);
    let sample = sample();
    let expected: [(&str, &[u8]); 3] = [
        ("bytes 0-9/1000", &sample[..10]),
        ("bytes 500-599/1000", &sample[500..600]),
        ("bytes 995-999/1000", &sample[995..]),
    ];
    assert_eq!(parts.len(), expected.len());
    for (part, (content_range, bytes)) in parts.iter().zip(expected) {
        assert_eq!(part.content_type, "text/csv; charset=utf-8");
        assert_eq!(part.content_range, content_range);
        assert_eq!(part.bytes, bytes);
    }
}

#[test]
fn unsatisfiable_ranges_are_416_with_the_size() {
    let fixture = Fixture::new("416");
    let path = fixture.write("root/a.bin", &sample());
    let response = get(&path, &fixture.roots(), &[("range", "bytes=1000-,2000-3000")]);
    assert_eq!(response.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(
        header_text(&response, &header::CONTENT_RANGE),
        Some("bytes */1000")
    );
    assert!(response.body.is_empty());
}

#[test]
fn any_range_on_an_empty_file_is_416_but_the_file_itself_is_200() {
    let fixture = Fixture::new("empty");
    let path = fixture.write("root/empty.txt", b"");
    for range in ["bytes=0-", "bytes=-1", "bytes=0-0"] {
        let response = get(&path, &fixture.roots(), &[("range", range)]);
        assert_eq!(response.status, StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
        assert_eq!(header_text(&response, &header::CONTENT_RANGE), Some("bytes */0"));
    }
    let mut response = get(&path, &fixture.roots(), &[]);
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(body_bytes(&mut response), b"");
}

#[test]
fn invalid_excessive_or_repeated_ranges_are_ignored() {
    let fixture = Fixture::new("ignored-range");
    let path = fixture.write("root/a.bin", &sample());
    let roots = fixture.roots();
    let too_many: Vec<String> = (0..=MAX_RANGES).map(|i| format!("{}-{}", i * 3, i * 3)).collect();
    let too_many = format!("bytes={}", too_many.join(","));
    for headers in [
        vec![("range", "bytes=9-1")],
        vec![("range", "lines=1-2")],
        vec![("range", "bytes=abc")],
        vec![("range", too_many.as_str())],
        vec![("range", "bytes=0-1"), ("range", "bytes=5-6")],
    ] {
        let mut response = get(&path, &roots, &headers);
        assert_eq!(response.status, StatusCode::OK, "{headers:?}");
        assert!(response.header(&header::CONTENT_RANGE).is_none());
        assert_eq!(body_bytes(&mut response), sample());
    }
}

#[test]
fn a_file_that_shrinks_while_served_ends_in_an_error() {
    let fixture = Fixture::new("shrink");
    // Four chunks: the second may have been read ahead before the truncation, later ones not.
    let contents = vec![7u8; CHUNK_SIZE * 4];
    let path = fixture.write("root/a.bin", &contents);
    let mut response = get(&path, &fixture.roots(), &[]);
    let Some(Ok(first)) = next_piece(&mut response.body) else {
        panic!("first chunk");
    };
    assert_eq!(first.len(), CHUNK_SIZE);
    File::options()
        .write(true)
        .open(&path)
        .expect("reopen")
        .set_len(10)
        .expect("truncate");
    let error = try_body_bytes(&mut response.body).expect_err("a short file must fail the body");
    assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
    assert!(
        next_piece(&mut response.body).is_none(),
        "the body ends after an error"
    );
}
