//! How the cache changes a request it forwards (pure data, read by both request writers).

use actix_web::http::header::{self, HeaderName};

/// How the cache changes a request it forwards: a full GET (never a range or a conditional of
/// the client's, which the cache answers itself from the object), carrying the stored
/// object's validators when it revalidates one.
#[derive(Debug, Default, Clone)]
pub struct Rewrite {
    /// Send GET for a client's HEAD, so that the body fills the cache.
    pub get_for_head: bool,
    pub if_none_match: Option<actix_web::http::header::HeaderValue>,
    pub if_modified_since: Option<actix_web::http::header::HeaderValue>,
}

impl Rewrite {
    /// Request fields the rewrite replaces: the client's conditionals and ranges.
    pub const REPLACED: [HeaderName; 6] = [
        header::IF_NONE_MATCH,
        header::IF_MODIFIED_SINCE,
        header::IF_MATCH,
        header::IF_UNMODIFIED_SINCE,
        header::IF_RANGE,
        header::RANGE,
    ];

    pub fn replaces(name: &str) -> bool {
        Rewrite::REPLACED.iter().any(|r| r.as_str() == name)
    }

    /// The method to send for the client's `method`.
    pub fn method<'m>(rewrite: Option<&Rewrite>, method: &'m str) -> &'m str {
        match rewrite {
            Some(r) if r.get_for_head && method == "HEAD" => "GET",
            _ => method,
        }
    }

    /// The validators to send, as (name, value).
    pub fn validators(&self) -> impl Iterator<Item = (&'static str, &[u8])> {
        let inm = self
            .if_none_match
            .as_ref()
            .map(|v| ("if-none-match", v.as_bytes()));
        let ims = self
            .if_modified_since
            .as_ref()
            .map(|v| ("if-modified-since", v.as_bytes()));
        inm.into_iter().chain(ims)
    }
}
