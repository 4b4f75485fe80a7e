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

/// Key texts up to this length are built on the stack.
const INLINE_KEY: usize = 160;

/// A key's text, on the stack when it is short (nearly always): a lookup that is answered
/// from the cache, or finds its URL known uncacheable, needs no owned key and so allocates
/// nothing for it.
pub enum KeyText {
    Inline {
        bytes: [u8; INLINE_KEY],
        len: usize,
        path_at: u32,
    },
    Owned(PrimaryKey),
}

/// Where a key's text is written.
trait KeyOut {
    fn put(&mut self, part: &str);
    fn len(&self) -> usize;
    /// Lower-cases (ASCII) what was written from `start` on.
    fn lowercase_from(&mut self, start: usize);
}

impl KeyOut for String {
    fn put(&mut self, part: &str) {
        self.push_str(part);
    }

    fn len(&self) -> usize {
        self.len()
    }

    fn lowercase_from(&mut self, start: usize) {
        self[start..].make_ascii_lowercase();
    }
}

/// A stack buffer known to be large enough.
struct Cursor<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl KeyOut for Cursor<'_> {
    fn put(&mut self, part: &str) {
        self.buf[self.len..self.len + part.len()].copy_from_slice(part.as_bytes());
        self.len += part.len();
    }

    fn len(&self) -> usize {
        self.len
    }

    fn lowercase_from(&mut self, start: usize) {
        self.buf[start..self.len].make_ascii_lowercase();
    }
}

impl KeyText {
    /// Builds the key of a request for `method` (GET for HEAD unless the method is part of the
    /// key), `host` (as sent), `path` (normalised) and `query`.
    pub fn new(
        config: &CacheKeyConfig,
        method: &str,
        host: Option<&str>,
        path: &str,
        query: &str,
    ) -> KeyText {
        let parts = Parts::of(config, method, host, path, query);
        if parts.max_len() <= INLINE_KEY {
            let mut bytes = [0; INLINE_KEY];
            let mut out = Cursor {
                buf: &mut bytes,
                len: 0,
            };
            let path_at = parts.write(config, &mut out);
            let len = out.len;
            return KeyText::Inline { bytes, len, path_at };
        }
        let mut text = String::with_capacity(parts.max_len());
        let path_at = parts.write(config, &mut text);
        KeyText::Owned(PrimaryKey {
            text: text.into_boxed_str(),
            path_at,
        })
    }

    pub fn as_str(&self) -> &str {
        match self {
            KeyText::Inline { bytes, len, .. } => {
                let bytes = &bytes[..*len];
                debug_assert!(std::str::from_utf8(bytes).is_ok());
                // SAFETY: `Parts::write` puts only whole `str`s and ASCII bytes in, and
                // lower-cases ASCII bytes only.
                unsafe { std::str::from_utf8_unchecked(bytes) }
            }
            KeyText::Owned(key) => &key.text,
        }
    }

    /// The owned key, for a request that goes on to fill, revalidate or purge.
    pub fn into_key(self) -> PrimaryKey {
        match self {
            KeyText::Inline { path_at, .. } => PrimaryKey {
                text: self.as_str().into(),
                path_at,
            },
            KeyText::Owned(key) => key,
        }
    }
}

/// The parts of a key, as the key settings pick them.
struct Parts<'a> {
    method: &'a str,
    host: Option<&'a str>,
    path: &'a str,
    query: &'a str,
}

impl<'a> Parts<'a> {
    fn of(
        config: &CacheKeyConfig,
        method: &'a str,
        host: Option<&'a str>,
        path: &'a str,
        query: &'a str,
    ) -> Parts<'a> {
        Parts {
            method: if config.method { method } else { "-" },
            host: host.filter(|_| config.host).map(without_default_port),
            path,
            query: if config.query == CacheQuery::Ignore {
                ""
            } else {
                query
            },
        }
    }

    /// The text's length, or more (empty query parameters are dropped when sorting).
    fn max_len(&self) -> usize {
        let host = self.host.map_or(1, str::len);
        let query = if self.query.is_empty() {
            0
        } else {
            self.query.len() + 1
        };
        self.method.len() + host + self.path.len() + query + 2
    }

    /// Writes the key text; returns where the path starts.
    fn write(&self, config: &CacheKeyConfig, out: &mut impl KeyOut) -> u32 {
        out.put(self.method);
        out.put(" ");
        match self.host {
            Some(host) => {
                let start = out.len();
                out.put(host);
                // Hosts are nearly always sent in lower case: look before writing.
                if has_ascii_uppercase(host.as_bytes()) {
                    out.lowercase_from(start);
                }
            }
            None => out.put("-"),
        }
        out.put(" ");
        let path_at = out.len() as u32;
        out.put(self.path);
        if self.query.is_empty() {
            return path_at;
        }
        if config.query == CacheQuery::Sorted {
            let mut params: Vec<&str> = self.query.split('&').filter(|p| !p.is_empty()).collect();
            params.sort_unstable();
            for (i, param) in params.iter().enumerate() {
                out.put(if i == 0 { "?" } else { "&" });
                out.put(param);
            }
        } else {
            out.put("?");
            out.put(self.query);
        }
        path_at
    }
}

impl PrimaryKey {
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

/// Whether `bytes` hold an ASCII capital letter, eight bytes at a time.
fn has_ascii_uppercase(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let capitals = |word: u64| {
        // Per byte, without carries between bytes: the high bit of `seven + 0x80 - c` is
        // set when the byte's low seven bits are at least `c`.
        let seven = word & (0x7f * ONES);
        let from_a = seven + (0x80 - u64::from(b'A')) * ONES;
        let past_z = seven + (0x80 - u64::from(b'Z') - 1) * ONES;
        from_a & !past_z & !word & (0x80 * ONES) != 0
    };
    let mut chunks = bytes.chunks_exact(8);
    let found = chunks
        .by_ref()
        .any(|c| capitals(u64::from_le_bytes(c.try_into().expect("8 bytes"))));
    let mut last = [0; 8];
    last[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    found || capitals(u64::from_le_bytes(last))
}

/// A host without the port when it is 80 (the listener's scheme is HTTP).
fn without_default_port(host: &str) -> &str {
    host.strip_suffix(":80").unwrap_or(host)
}

/// Normalises a host for comparisons with key hosts.
pub fn normal_host(host: &str) -> String {
    without_default_port(host).to_ascii_lowercase()
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
        let k = KeyText::new(&full, "GET", Some("Example.COM:80"), "/a/b", "y=2&x=1").into_key();
        assert_eq!(&*k.text, "- example.com /a/b?y=2&x=1");
        assert_eq!((k.host(), k.path()), ("example.com", "/a/b?y=2&x=1"));
        let sorted = config(true, true, CacheQuery::Sorted);
        let s = KeyText::new(&sorted, "HEAD", Some("h:8080"), "/a", "y=2&&x=1").into_key();
        assert_eq!(&*s.text, "HEAD h:8080 /a?x=1&y=2");
        let ignore = config(false, false, CacheQuery::Ignore);
        let i = KeyText::new(&ignore, "GET", Some("h"), "/a", "x=1").into_key();
        assert_eq!(&*i.text, "- - /a");
        assert_eq!((i.host(), i.path()), ("-", "/a"));
        let none = KeyText::new(&full, "GET", None, "/", "").into_key();
        assert_eq!(&*none.text, "- - /");
    }

    #[test]
    fn a_long_key_is_built_on_the_heap_with_the_same_text() {
        let full = config(true, true, CacheQuery::Full);
        let short = KeyText::new(&full, "GET", Some("Shop.Example"), "/p", "q=1");
        assert!(matches!(short, KeyText::Inline { .. }));
        assert_eq!(short.as_str(), "GET shop.example /p?q=1");
        let path = format!("/{}", "x".repeat(INLINE_KEY));
        let long = KeyText::new(&full, "GET", Some("Shop.Example"), &path, "q=1");
        assert!(matches!(long, KeyText::Owned(_)));
        assert_eq!(long.as_str(), format!("GET shop.example {path}?q=1"));
        let key = long.into_key();
        assert_eq!(
            (key.host(), key.path()),
            ("shop.example", &*format!("{path}?q=1"))
        );
        // Right at the bound, both ways of building agree too.
        let edge = "/".to_owned() + &"y".repeat(INLINE_KEY - "GET h ?q=1".len() - 1);
        let at_bound = KeyText::new(&full, "GET", Some("h"), &edge, "q=1");
        assert!(matches!(at_bound, KeyText::Inline { .. }));
        assert_eq!(at_bound.as_str().len(), INLINE_KEY);
        assert_eq!(at_bound.into_key().path(), format!("{edge}?q=1"));
    }

    #[test]
    fn capitals_are_found_at_every_position() {
        let naive = |b: &[u8]| b.iter().any(u8::is_ascii_uppercase);
        for len in 0..20 {
            for at in 0..len {
                for byte in [b'A', b'Z', b'M', b'a', b'z', b'@', b'[', 0xC1, 0xDA, 0x80, 0xFF] {
                    let mut bytes = vec![b'x'; len];
                    bytes[at] = byte;
                    assert_eq!(has_ascii_uppercase(&bytes), naive(&bytes), "{bytes:?}");
                }
            }
        }
    }
}
