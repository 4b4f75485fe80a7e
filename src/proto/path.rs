//! Request paths as routing and classification see them: percent-escapes decoded, empty and
//! `.` segments dropped, `..` segments applied. A path that climbs above `/` is refused.
//!
//! Route and bucket prefixes are compared with this form, so `/public/../admin`,
//! `/%61dmin` and `//admin` all match a `/admin` prefix, the way a backend that decodes and
//! normalises its paths would read them: a route prefix is then an access boundary. The
//! request is still forwarded with the path the client sent.
//!
//! Hot path: a path with no `%`, no `//` and no `/.` is already normal and is borrowed.

use std::borrow::Cow;

/// Why a path can't be routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the request path is not absolute")]
    NotAbsolute,
    #[error("the request path climbs above /")]
    AboveRoot,
    #[error("the request path contains a NUL byte")]
    Nul,
}

/// The normalised form of `raw` (a request path without query).
pub fn normalize(raw: &str) -> Result<Cow<'_, str>, PathError> {
    if !raw.starts_with('/') {
        // `OPTIONS *` and the like: nothing to normalise, routed as written.
        return if raw == "*" {
            Ok(Cow::Borrowed(raw))
        } else {
            Err(PathError::NotAbsolute)
        };
    }
    let bytes = raw.as_bytes();
    let plain = !bytes.contains(&b'%') && !contains(bytes, b"//") && !contains(bytes, b"/.");
    if plain {
        return Ok(Cow::Borrowed(raw));
    }
    let decoded = decode(bytes)?;
    let mut segments: Vec<&[u8]> = Vec::new();
    for segment in decoded.split(|&b| b == b'/') {
        match segment {
            b"" | b"." => {}
            b".." => {
                segments.pop().ok_or(PathError::AboveRoot)?;
            }
            s => segments.push(s),
        }
    }
    let mut out = Vec::with_capacity(decoded.len());
    for s in &segments {
        out.push(b'/');
        out.extend_from_slice(s);
    }
    let ends_in_directory = decoded.ends_with(b"/") || decoded.ends_with(b"/.") || decoded.ends_with(b"/..");
    if out.is_empty() || (ends_in_directory && !segments.is_empty()) {
        out.push(b'/');
    }
    Ok(Cow::Owned(match String::from_utf8(out) {
        Ok(s) => s,
        // Not UTF-8 once decoded (Latin-1 URLs): compared byte for byte where it is ASCII.
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Decodes `%XX` escapes; a `%` not followed by two hex digits stays as it is.
fn decode(bytes: &[u8]) -> Result<Vec<u8>, PathError> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let mut b = bytes[i];
        if b == b'%' {
            if let Some(v) = bytes.get(i + 1..i + 3).and_then(hex_pair) {
                b = v;
                i += 2;
            }
        }
        if b == 0 {
            return Err(PathError::Nul);
        }
        out.push(b);
        i += 1;
    }
    Ok(out)
}

fn hex_pair(pair: &[u8]) -> Option<u8> {
    let digit = |c: u8| (c as char).to_digit(16);
    Some((digit(pair[0])? * 16 + digit(pair[1])?) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(raw: &str) -> Result<String, PathError> {
        normalize(raw).map(Cow::into_owned)
    }

    #[test]
    fn plain_paths_are_borrowed() {
        assert!(matches!(normalize("/a/b.html"), Ok(Cow::Borrowed("/a/b.html"))));
        assert!(matches!(normalize("/"), Ok(Cow::Borrowed("/"))));
        assert!(matches!(normalize("*"), Ok(Cow::Borrowed("*"))));
    }

    #[test]
    fn dot_segments_escapes_and_slashes_are_normalised() {
        assert_eq!(norm("/public/../admin").unwrap(), "/admin");
        assert_eq!(norm("/%61dmin/x").unwrap(), "/admin/x");
        assert_eq!(norm("//admin").unwrap(), "/admin");
        assert_eq!(norm("/a/./b/").unwrap(), "/a/b/");
        assert_eq!(norm("/a/b/..").unwrap(), "/a/");
        assert_eq!(norm("/a/%2e%2E/b").unwrap(), "/b");
        assert_eq!(norm("/a%2F..%2Fb").unwrap(), "/b");
        assert_eq!(norm("/.well-known/x").unwrap(), "/.well-known/x");
        assert_eq!(norm("/100%").unwrap(), "/100%", "a bad escape stays literal");
        assert_eq!(norm("/caf%e9").unwrap(), "/caf\u{fffd}", "not UTF-8: lossy");
    }

    #[test]
    fn climbing_above_the_root_and_nul_are_refused() {
        assert_eq!(norm("/.."), Err(PathError::AboveRoot));
        assert_eq!(norm("/a/../../etc/passwd"), Err(PathError::AboveRoot));
        assert_eq!(norm("/%2e%2e/x"), Err(PathError::AboveRoot));
        assert_eq!(norm("/a%00b"), Err(PathError::Nul));
        assert_eq!(norm("a/b"), Err(PathError::NotAbsolute));
    }
}
