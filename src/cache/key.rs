//! The primary cache key of a request: the parts `cache.key` names, always the path.
//!
//! Pure. The key is `METHOD␠host␠/path?query`, with the method and host replaced by `-` when
//! the key leaves them out; the host is lower-cased without a default port, the path is the
//! dot-segment-normalised one requests are routed on, and the query is kept, sorted by
//! parameter or dropped. Purges build keys the same way from a URL.

use crate::config::{CacheKeyConfig, CacheQuery};

/// A primary key and where its parts start, for prefix and host matching by purges.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PrimaryKey {
    pub text: Box<str>,
    /// Byte offset of the path in `text`.
    path_at: u32,
}

impl PrimaryKey {
    /// Builds the key of a request for `method` (GET for HEAD unless the method is part of the
    /// key), `host` (as sent), `path` (normalised) and `query`.
    pub fn new(
        config: &CacheKeyConfig,
        method: &str,
        host: Option<&str>,
        path: &str,
        query: &str,
    ) -> PrimaryKey {
        // The exact length in the common case (no `:80`, the query kept as it is), so that
        // boxing the text does not reallocate it.
        let method = if config.method { method } else { "-" };
        let host_len = host.filter(|_| config.host).map_or(1, str::len);
        let query_len = if query.is_empty() || config.query == CacheQuery::Ignore {
            0
        } else {
            query.len() + 1
        };
        let mut text = String::with_capacity(method.len() + host_len + path.len() + query_len + 2);
        text.push_str(method);
        text.push(' ');
        match host.filter(|_| config.host) {
            Some(host) => push_host(&mut text, host),
            None => text.push('-'),
        }
        text.push(' ');
        let path_at = text.len() as u32;
        text.push_str(path);
        match config.query {
            CacheQuery::Ignore => {}
            _ if query.is_empty() => {}
            CacheQuery::Full => {
                text.push('?');
                text.push_str(query);
            }
            CacheQuery::Sorted => {
                let mut params: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
                params.sort_unstable();
                if !params.is_empty() {
                    text.push('?');
                    text.push_str(&params.join("&"));
                }
            }
        }
        PrimaryKey {
            text: text.into_boxed_str(),
            path_at,
        }
    }

    /// The path (and query) part.
    pub fn path(&self) -> &str {
        &self.text[self.path_at as usize..]
    }

    /// The host part (`-` when the key has none).
    pub fn host(&self) -> &str {
        let rest = &self.text[..self.path_at as usize - 1];
        rest.split_once(' ').map_or("-", |(_, host)| host)
    }
}

/// Lower-cased, without the port when it is 80 (the listener's scheme is HTTP).
fn push_host(out: &mut String, host: &str) {
    let host = host.strip_suffix(":80").unwrap_or(host);
    let start = out.len();
    out.push_str(host);
    // Bytes, not chars: ASCII lower-casing keeps UTF-8 intact and is one pass over the slice.
    out[start..].make_ascii_lowercase();
}

/// Normalises a host for comparisons with key hosts.
pub fn normal_host(host: &str) -> String {
    let mut out = String::with_capacity(host.len());
    push_host(&mut out, host);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(method: bool, host: bool, query: CacheQuery) -> CacheKeyConfig {
        CacheKeyConfig { method, host, query }
    }

    #[test]
    fn parts_follow_the_key_settings() {
        let full = config(false, true, CacheQuery::Full);
        let k = PrimaryKey::new(&full, "GET", Some("Example.COM:80"), "/a/b", "y=2&x=1");
        assert_eq!(&*k.text, "- example.com /a/b?y=2&x=1");
        assert_eq!((k.host(), k.path()), ("example.com", "/a/b?y=2&x=1"));
        let sorted = config(true, true, CacheQuery::Sorted);
        let s = PrimaryKey::new(&sorted, "HEAD", Some("h:8080"), "/a", "y=2&&x=1");
        assert_eq!(&*s.text, "HEAD h:8080 /a?x=1&y=2");
        let ignore = config(false, false, CacheQuery::Ignore);
        let i = PrimaryKey::new(&ignore, "GET", Some("h"), "/a", "x=1");
        assert_eq!(&*i.text, "- - /a");
        assert_eq!((i.host(), i.path()), ("-", "/a"));
        let none = PrimaryKey::new(&full, "GET", None, "/", "");
        assert_eq!(&*none.text, "- - /");
    }
}
