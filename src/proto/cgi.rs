//! CGI/1.1 (RFC 3875) rules a FastCGI responder's gateway needs: the response header block an
//! application writes to stdout (`Status:`, `Location:`, other fields), and the script mapping
//! of a request path (`SCRIPT_NAME`, `PATH_INFO`) and the `HTTP_*` names of request headers.
//!
//! Sans-io: parses bytes and paths, owns no sockets.

use std::ops::Range;
use std::path::Path;

/// Largest CGI header block accepted from an application.
pub const MAX_HEAD: usize = 64 * 1024;

/// Most header fields accepted in a CGI header block.
pub const MAX_FIELDS: usize = 128;

/// A parsed CGI response header block; fields are ranges into the parsed buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct CgiHead {
    /// From `Status:` (always 200..=599); 302 for a `Location:` without one; else 200.
    pub status: u16,
    /// Bytes of the block including the blank line.
    pub len: usize,
    /// Every field but `Status`, in order (several `Set-Cookie` stay apart).
    pub fields: Vec<(Range<usize>, Range<usize>)>,
}

/// Why a CGI header block is unacceptable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CgiHeadError {
    #[error("malformed CGI header block: {0}")]
    Malformed(String),
    #[error("CGI header block larger than {MAX_HEAD} bytes")]
    TooLarge,
    #[error("bad CGI Status line `{0}`")]
    BadStatus(String),
}

/// Parses the header block at the start of `buf`; `Ok(None)` when more bytes are needed.
/// Lines may end in CRLF or a bare LF, as applications write both.
pub fn parse_head(buf: &[u8]) -> Result<Option<CgiHead>, CgiHeadError> {
    let mut raw = [httparse::EMPTY_HEADER; MAX_FIELDS];
    let (len, parsed) = match httparse::parse_headers(buf, &mut raw) {
        Ok(httparse::Status::Complete((len, parsed))) => (len, parsed),
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => return Err(CgiHeadError::TooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(CgiHeadError::Malformed(e.to_string())),
    };
    if len > MAX_HEAD {
        return Err(CgiHeadError::TooLarge);
    }
    let base = buf.as_ptr() as usize;
    let range = |s: &[u8]| {
        let start = s.as_ptr() as usize - base;
        start..start + s.len()
    };
    let mut status = None;
    let mut location = false;
    let mut fields = Vec::with_capacity(parsed.len());
    for field in parsed.iter() {
        if field.name.eq_ignore_ascii_case("status") {
            status = Some(parse_status(field.value)?);
            continue;
        }
        location |= field.name.eq_ignore_ascii_case("location");
        fields.push((range(field.name.as_bytes()), range(field.value)));
    }
    let status = status.unwrap_or(if location { 302 } else { 200 });
    Ok(Some(CgiHead { status, len, fields }))
}

/// `Status: 404 Not Found` → 404 (the reason phrase is optional and dropped). Only a final
/// status (200..=599) is one: a 1xx would make the client wait for a response that never
/// follows, as a gateway sends exactly one head for an application's header block.
fn parse_status(value: &[u8]) -> Result<u16, CgiHeadError> {
    let bad = || CgiHeadError::BadStatus(String::from_utf8_lossy(value).into_owned());
    let code = value.trim_ascii().split(|b| *b == b' ').next().ok_or_else(bad)?;
    if code.len() != 3 || !code.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    let code = std::str::from_utf8(code)
        .map_err(|_| bad())?
        .parse::<u16>()
        .map_err(|_| bad())?;
    if (200..=599).contains(&code) {
        Ok(code)
    } else {
        Err(bad())
    }
}

/// How a request path maps to a script.
#[derive(Debug, PartialEq, Eq)]
pub struct ScriptMapping<'a> {
    /// `SCRIPT_NAME`: the URL path of the script.
    pub script_name: &'a str,
    /// `PATH_INFO`: the rest of the path after the script name.
    pub path_info: &'a str,
}

/// Splits a decoded request path into `SCRIPT_NAME` and `PATH_INFO`.
///
/// With a front controller (`front_controller` is its script name, e.g. `/index.php`) every
/// request runs it: the script name is the controller's and the path is path info, minus the
/// controller's own name when the path starts with it (`/index.php/a/b` → `/a/b`). Without one,
/// the script name ends after the first segment with a `.php` extension (`/a/b.php/c` →
/// `/a/b.php` + `/c`), as nginx's `fastcgi_split_path_info ^(.+?\.php)(/.*)$` does; a path
/// with no such segment is all script name.
pub fn map_script<'a>(path: &'a str, front_controller: Option<&'a str>) -> ScriptMapping<'a> {
    if let Some(front) = front_controller {
        let path_info = path
            .strip_prefix(front)
            .filter(|rest| rest.is_empty() || rest.starts_with('/'))
            .unwrap_or(path);
        return ScriptMapping {
            script_name: front,
            path_info,
        };
    }
    let mut at = 0;
    for segment in path.split('/') {
        let end = at + segment.len();
        if end < path.len() && Path::new(segment).extension().is_some_and(|e| e == "php") {
            return ScriptMapping {
                script_name: &path[..end],
                path_info: &path[end..],
            };
        }
        at = end + 1;
    }
    ScriptMapping {
        script_name: path,
        path_info: "",
    }
}

/// The decoded, normalised form of a request path (`DOCUMENT_URI`): percent-escapes decoded,
/// `.` segments and repeated slashes dropped, `..` segments applied. `None` when the path is
/// not absolute, climbs above `/`, has a bad escape, decodes to a NUL byte or to invalid UTF-8.
pub fn normalize_path(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    if bytes.first() != Some(&b'/') {
        return None;
    }
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                i += 2;
                u8::from_str_radix(hex, 16).ok()?
            }
            b => b,
        };
        if b == 0 {
            return None;
        }
        decoded.push(b);
        i += 1;
    }
    let decoded = String::from_utf8(decoded).ok()?;
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop()?;
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(decoded.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() || (decoded.ends_with('/') && !segments.is_empty()) {
        out.push('/');
    }
    Some(out)
}

/// `HTTP_<NAME>` for a request header into `out`: upper case, `-` → `_`. `false` (and `out`
/// left empty) for a name with any byte outside `[A-Za-z0-9-]`: `X_Real_IP` or `X.Real.IP`
/// would map to the same `HTTP_X_REAL_IP` as `X-Real-IP` and could override what a front proxy
/// set, so such headers are not passed (as nginx's `underscores_in_headers off` and Apache's
/// CGI environment do).
pub fn http_param_name(header: &str, out: &mut Vec<u8>) -> bool {
    out.clear();
    if header.is_empty() || !header.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return false;
    }
    out.extend_from_slice(b"HTTP_");
    out.extend(
        header
            .bytes()
            .map(|b| if b == b'-' { b'_' } else { b.to_ascii_uppercase() }),
    );
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(buf: &[u8], head: &CgiHead) -> Vec<(String, String)> {
        head.fields
            .iter()
            .map(|(n, v)| {
                let s = |r: &Range<usize>| String::from_utf8_lossy(&buf[r.clone()]).into_owned();
                (s(n), s(v))
            })
            .collect()
    }

    #[test]
    fn status_location_and_repeated_fields() {
        let buf = b"Status: 418 I'm a teapot\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nX-A: x\r\n\r\nbody";
        let head = parse_head(buf).expect("valid").expect("complete");
        assert_eq!(head.status, 418);
        assert_eq!(&buf[head.len..], b"body");
        assert_eq!(
            fields(buf, &head),
            [
                ("Set-Cookie".into(), "a=1".into()),
                ("Set-Cookie".into(), "b=2".into()),
                ("X-A".into(), "x".into())
            ]
        );
        let buf = b"Location: /next\n\n";
        assert_eq!(parse_head(buf).expect("valid").expect("complete").status, 302);
        let buf = b"Status: 301\nLocation: /next\n\n";
        assert_eq!(parse_head(buf).expect("valid").expect("complete").status, 301);
        let buf = b"Content-Type: text/html\n\n";
        let head = parse_head(buf).expect("valid").expect("complete");
        assert_eq!((head.status, head.len), (200, buf.len()));
    }

    #[test]
    fn partial_bad_and_oversized_blocks() {
        assert_eq!(parse_head(b"Content-Type: text/html\r\n"), Ok(None));
        assert_eq!(parse_head(b""), Ok(None));
        assert!(matches!(
            parse_head(b"Bad Header\r\n\r\n"),
            Err(CgiHeadError::Malformed(_))
        ));
        for status in ["abc", "99", "600", "20 OK", "2000"] {
            let buf = format!("Status: {status}\r\n\r\n");
            assert_eq!(
                parse_head(buf.as_bytes()),
                Err(CgiHeadError::BadStatus(status.to_owned())),
                "{status}"
            );
        }
        let big = format!("X-Big: {}\r\n", "a".repeat(MAX_HEAD));
        assert_eq!(parse_head(big.as_bytes()), Err(CgiHeadError::TooLarge));
        let many: String = (0..=MAX_FIELDS)
            .map(|i| format!("X-{i}: v\r\n"))
            .collect::<String>()
            + "\r\n";
        assert!(matches!(
            parse_head(many.as_bytes()),
            Err(CgiHeadError::Malformed(_))
        ));
    }

    #[test]
    fn an_interim_status_is_an_error() {
        for status in ["100", "100 Continue", "101 Switching Protocols", "103", "199"] {
            let buf = format!("Status: {status}\r\nContent-Type: text/plain\r\n\r\nbody");
            assert_eq!(
                parse_head(buf.as_bytes()),
                Err(CgiHeadError::BadStatus(status.to_owned())),
                "{status}"
            );
        }
        let head = parse_head(b"Status: 200\r\n\r\n")
            .expect("valid")
            .expect("complete");
        assert_eq!(head.status, 200);
    }

    #[test]
    fn front_controller_mapping() {
        let front = Some("/index.php");
        let m = map_script("/shop/cart", front);
        assert_eq!((m.script_name, m.path_info), ("/index.php", "/shop/cart"));
        let m = map_script("/index.php/a/b", front);
        assert_eq!((m.script_name, m.path_info), ("/index.php", "/a/b"));
        let m = map_script("/index.php", front);
        assert_eq!((m.script_name, m.path_info), ("/index.php", ""));
        let m = map_script("/index.phpx", front);
        assert_eq!((m.script_name, m.path_info), ("/index.php", "/index.phpx"));
    }

    #[test]
    fn path_info_split_without_front_controller() {
        let m = map_script("/a/b.php/c/d", None);
        assert_eq!((m.script_name, m.path_info), ("/a/b.php", "/c/d"));
        let m = map_script("/a/b.php", None);
        assert_eq!((m.script_name, m.path_info), ("/a/b.php", ""));
        let m = map_script("/static/x.txt", None);
        assert_eq!((m.script_name, m.path_info), ("/static/x.txt", ""));
        let m = map_script("/", None);
        assert_eq!((m.script_name, m.path_info), ("/", ""));
    }

    #[test]
    fn path_normalisation() {
        let n = |p| normalize_path(p);
        assert_eq!(n("/a/b.php").as_deref(), Some("/a/b.php"));
        assert_eq!(n("/a//./b/../c%20d/").as_deref(), Some("/a/c d/"));
        assert_eq!(n("/").as_deref(), Some("/"));
        assert_eq!(n("/a/..").as_deref(), Some("/"));
        assert_eq!(n("/%2e%2e/etc/passwd"), None);
        assert_eq!(n("/../x"), None);
        assert_eq!(n("/a%00.php"), None);
        assert_eq!(n("/a%zz"), None);
        assert_eq!(n("/a%2"), None);
        assert_eq!(n("/%ff"), None);
        assert_eq!(n("a/b"), None);
    }

    #[test]
    fn http_param_names() {
        let mut out = Vec::new();
        assert!(http_param_name("x-forwarded-for", &mut out));
        assert_eq!(out, b"HTTP_X_FORWARDED_FOR");
        assert!(http_param_name("X-Real-IP", &mut out));
        assert_eq!(out, b"HTTP_X_REAL_IP");
    }

    #[test]
    fn header_names_that_would_collide_get_no_param() {
        let mut out = b"stale".to_vec();
        for name in ["X_Real_IP", "x.real.ip", "x real ip", "user.agent", "x~y", ""] {
            assert!(!http_param_name(name, &mut out), "{name:?}");
            assert!(out.is_empty(), "{name:?}");
        }
    }
}
