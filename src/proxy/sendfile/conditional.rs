//! A served file's validators (`ETag`, `Last-Modified`) and the conditional request headers
//! evaluated against them in RFC 9110 §13.2.2 order, including `If-Range` (§13.1.5).
//!
//! Pure: works on the file's metadata and the request headers only.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::http::header::{self, HeaderMap, HeaderName};

/// The first second httpdate can't format (year 10000); later mtimes get no `Last-Modified`.
const HTTP_DATE_END_SECS: u64 = 253_402_300_800;

/// What identifies one version of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validators {
    /// The entity tag without its quotes (for files: inode, mtime with nanoseconds and size,
    /// in hex); `None` when the representation has none.
    opaque_tag: Option<String>,
    /// The tag is weak (`W/`): it never passes a strong comparison.
    weak: bool,
    /// The mtime in whole seconds since the epoch, when it is one an HTTP-date can carry.
    modified_secs: Option<u64>,
}

/// What the preconditions decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// Serve the file (maybe a range of it).
    Proceed,
    /// 304: the client's copy is current.
    NotModified,
    /// 412: a precondition the client set is false.
    Failed,
}

impl Validators {
    /// The validators of the file `metadata` describes.
    pub fn of(metadata: &Metadata) -> Self {
        let opaque_tag = format!(
            "{:x}-{:x}.{:x}-{:x}",
            metadata.ino(),
            metadata.mtime(),
            metadata.mtime_nsec(),
            metadata.len()
        );
        let modified_secs = metadata
            .modified()
            .ok()
            .and_then(|mtime| mtime.duration_since(UNIX_EPOCH).ok())
            .map(|since_epoch| since_epoch.as_secs())
            .filter(|&secs| secs < HTTP_DATE_END_SECS);
        Validators {
            opaque_tag: Some(opaque_tag),
            weak: false,
            modified_secs,
        }
    }

    /// The validators of a stored response: its `ETag` and `Last-Modified` values.
    pub fn of_response(etag: Option<&[u8]>, last_modified: Option<&[u8]>) -> Self {
        let tag = etag.and_then(|value| match list_members(value).as_slice() {
            [Member::Tag { weak, opaque }] => Some((*weak, String::from_utf8_lossy(opaque).into_owned())),
            _ => None,
        });
        let modified_secs = last_modified
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|text| httpdate::parse_http_date(text.trim()).ok())
            .and_then(secs_since_epoch);
        Validators {
            weak: tag.as_ref().is_some_and(|t| t.0),
            opaque_tag: tag.map(|t| t.1),
            modified_secs,
        }
    }

    /// The `ETag` header value.
    pub fn etag(&self) -> String {
        format!("\"{}\"", self.opaque_tag.as_deref().unwrap_or_default())
    }

    /// The `Last-Modified` header value, if the mtime is representable.
    pub fn last_modified(&self) -> Option<String> {
        self.modified_secs
            .map(|secs| httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs)))
    }
}

/// Evaluates `If-Match`, `If-Unmodified-Since`, `If-None-Match` and `If-Modified-Since` for a
/// GET or HEAD request, in the order RFC 9110 §13.2.2 prescribes.
pub fn evaluate(headers: &HeaderMap, validators: &Validators) -> Precondition {
    if headers.contains_key(header::IF_MATCH) {
        if !tag_list_matches(headers, &header::IF_MATCH, validators, Comparison::Strong) {
            return Precondition::Failed;
        }
    } else if let Some(date) = single_date(headers, &header::IF_UNMODIFIED_SINCE) {
        // Without a usable mtime the condition can't be shown true.
        if validators.modified_secs.is_none_or(|modified| modified > date) {
            return Precondition::Failed;
        }
    }
    if headers.contains_key(header::IF_NONE_MATCH) {
        if tag_list_matches(headers, &header::IF_NONE_MATCH, validators, Comparison::Weak) {
            return Precondition::NotModified;
        }
    } else if let Some(date) = single_date(headers, &header::IF_MODIFIED_SINCE) {
        if validators.modified_secs.is_some_and(|modified| modified <= date) {
            return Precondition::NotModified;
        }
    }
    Precondition::Proceed
}

/// Whether a `Range` may be honoured: true without `If-Range`, else only when it names the
/// current version — a strong `ETag` match or exactly the `Last-Modified` date.
pub fn if_range_holds(headers: &HeaderMap, validators: &Validators) -> bool {
    let mut values = headers.get_all(header::IF_RANGE);
    let Some(value) = values.next() else {
        return true;
    };
    if values.next().is_some() {
        return false;
    }
    let value = value.as_bytes().trim_ascii();
    if value.starts_with(b"\"") || value.starts_with(b"W/") {
        return match list_members(value).as_slice() {
            [member] => member.matches(validators, Comparison::Strong),
            _ => false,
        };
    }
    let date = std::str::from_utf8(value)
        .ok()
        .and_then(|text| httpdate::parse_http_date(text).ok());
    matches!((date.and_then(secs_since_epoch), validators.modified_secs), (Some(a), Some(b)) if a == b)
}

/// How entity tags compare (RFC 9110 §8.8.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparison {
    /// Both strong and equal.
    Strong,
    /// Equal opaque tags, weak or not.
    Weak,
}

/// One member of an entity-tag list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Member<'a> {
    /// `*`: any current representation.
    Any,
    Tag {
        weak: bool,
        opaque: &'a [u8],
    },
}

impl Member<'_> {
    fn matches(&self, validators: &Validators, comparison: Comparison) -> bool {
        let Some(opaque_tag) = validators.opaque_tag.as_deref() else {
            return *self == Member::Any;
        };
        match *self {
            Member::Any => true,
            Member::Tag { weak, opaque } => {
                (comparison == Comparison::Weak || !(weak || validators.weak))
                    && opaque == opaque_tag.as_bytes()
            }
        }
    }
}

/// Whether any member of any `name` header matches the file's tag (the file exists, so `*` does).
fn tag_list_matches(
    headers: &HeaderMap,
    name: &HeaderName,
    validators: &Validators,
    comparison: Comparison,
) -> bool {
    headers
        .get_all(name)
        .flat_map(|value| list_members(value.as_bytes()))
        .any(|member| member.matches(validators, comparison))
}

/// Parses `*` or `1#entity-tag`; parsing stops at the first malformed member.
fn list_members(value: &[u8]) -> Vec<Member<'_>> {
    let mut members = Vec::new();
    let mut rest = value;
    loop {
        rest = rest.trim_ascii_start();
        // Empty list elements are allowed (RFC 9110 §5.6.1).
        while let [b',', tail @ ..] = rest {
            rest = tail.trim_ascii_start();
        }
        let (member, tail) = match rest {
            [] => break,
            [b'*', tail @ ..] => (Member::Any, tail),
            _ => {
                let (weak, quoted) = match rest.strip_prefix(b"W/") {
                    Some(tail) => (true, tail),
                    None => (false, rest),
                };
                let Some(quoted) = quoted.strip_prefix(b"\"") else {
                    break;
                };
                let Some(end) = quoted.iter().position(|&b| b == b'"') else {
                    break;
                };
                (
                    Member::Tag {
                        weak,
                        opaque: &quoted[..end],
                    },
                    &quoted[end + 1..],
                )
            }
        };
        members.push(member);
        rest = tail.trim_ascii_start();
        if !matches!(rest, [] | [b',', ..]) {
            break;
        }
    }
    members
}

/// The date in header `name`, if it appears once and is a valid HTTP-date (else it is ignored).
fn single_date(headers: &HeaderMap, name: &HeaderName) -> Option<u64> {
    let mut values = headers.get_all(name);
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let date = httpdate::parse_http_date(value.to_str().ok()?.trim()).ok()?;
    secs_since_epoch(date)
}

fn secs_since_epoch(time: SystemTime) -> Option<u64> {
    time.duration_since(UNIX_EPOCH).ok().map(|since| since.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(weak: bool, opaque: &str) -> Member<'_> {
        Member::Tag {
            weak,
            opaque: opaque.as_bytes(),
        }
    }

    #[test]
    fn entity_tag_lists_parse() {
        assert_eq!(list_members(b"*"), [Member::Any]);
        assert_eq!(list_members(b"\"a\""), [tag(false, "a")]);
        assert_eq!(
            list_members(b" \"a\" ,W/\"b\", , \"c,d\""),
            [tag(false, "a"), tag(true, "b"), tag(false, "c,d")]
        );
        assert_eq!(list_members(b""), []);
    }

    #[test]
    fn malformed_entity_tag_lists_stop_at_the_fault() {
        assert_eq!(list_members(b"\"a\", b, \"c\""), [tag(false, "a")]);
        assert_eq!(list_members(b"\"unterminated"), []);
        assert_eq!(list_members(b"\"a\"\"b\""), [tag(false, "a")]);
        assert_eq!(list_members(b"w/\"a\""), []);
    }

    #[test]
    fn strong_comparison_never_matches_weak_tags() {
        let x = Validators::of_response(Some(b"\"x\""), None);
        assert!(tag(false, "x").matches(&x, Comparison::Strong));
        assert!(!tag(true, "x").matches(&x, Comparison::Strong));
        assert!(tag(true, "x").matches(&x, Comparison::Weak));
        assert!(!tag(false, "y").matches(&x, Comparison::Weak));
        assert!(Member::Any.matches(&x, Comparison::Strong));
    }

    #[test]
    fn a_stored_weak_tag_passes_only_weak_comparison_and_no_tag_matches_only_any() {
        let weak = Validators::of_response(Some(b"W/\"x\""), None);
        assert!(!tag(false, "x").matches(&weak, Comparison::Strong));
        assert!(tag(false, "x").matches(&weak, Comparison::Weak));
        let none = Validators::of_response(None, Some(b"Tue, 01 Dec 2026 10:00:00 GMT"));
        assert!(!tag(false, "").matches(&none, Comparison::Weak));
        assert!(Member::Any.matches(&none, Comparison::Weak));
        let mut headers = HeaderMap::new();
        headers.insert(
            header::IF_MODIFIED_SINCE,
            "Tue, 01 Dec 2026 10:00:00 GMT".parse().unwrap(),
        );
        assert_eq!(evaluate(&headers, &none), Precondition::NotModified);
    }
}
