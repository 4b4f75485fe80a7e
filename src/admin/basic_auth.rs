//! HTTP Basic credentials for the HAProxy stats URI (HAProxy's `stats auth`): the
//! `Authorization: Basic` header checked against the Argon2 hashes of `haproxy_compat.users`,
//! and [`hash_password`] for `director --hash-password`.
//!
//! Control plane, reachable from the proxy listener. An Argon2 verification costs tens of
//! milliseconds of CPU by design, so it never runs on a worker thread: it runs on tokio's
//! blocking pool, at most [`CONCURRENT_VERIFICATIONS`] at a time (a flood of wrong passwords
//! waits for those rather than filling the pool). A header value that verified is remembered by
//! its SHA-256, with the user and hash it matched, in a bounded map, so a scraper sending the
//! same credentials every few seconds costs one hash lookup after the first. A remembered header
//! counts only while that user still has that hash, so a reload that changes or removes the
//! user revokes it. Failures are not remembered.

use std::sync::Arc;

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use base64::Engine;
use quick_cache::sync::Cache;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::config::StatsUser;

/// Verified header values remembered at most.
const REMEMBERED: usize = 256;

/// Argon2 verifications running at once.
pub const CONCURRENT_VERIFICATIONS: usize = 2;

/// The verifier and its memory of verified headers; one per director, shared by the listeners.
pub struct BasicAuth {
    /// SHA-256 of a verified `Authorization` value -> (user, the password hash it matched).
    verified: Cache<[u8; 32], Arc<(String, String)>>,
    permits: Semaphore,
}

impl Default for BasicAuth {
    fn default() -> Self {
        BasicAuth {
            verified: Cache::new(REMEMBERED),
            permits: Semaphore::new(CONCURRENT_VERIFICATIONS),
        }
    }
}

impl BasicAuth {
    /// Whether `authorization` (the whole `Authorization` header value) is `Basic` with the
    /// name and password of one of `users`.
    pub async fn allows(&self, authorization: &[u8], users: &[StatsUser]) -> bool {
        let key: [u8; 32] = Sha256::digest(authorization).into();
        if let Some(known) = self.verified.get(&key) {
            let (user, hash) = &*known;
            return users.iter().any(|u| &u.user == user && &u.password_hash == hash);
        }
        let Some((user, password)) = parse_basic(authorization) else {
            return false;
        };
        let Some(entry) = users.iter().find(|u| u.user == user) else {
            return false;
        };
        let Ok(_permit) = self.permits.acquire().await else {
            return false;
        };
        let hash = entry.password_hash.clone();
        let checked = hash.clone();
        let ok = actix_web::web::block(move || verify_password(password.as_bytes(), &checked))
            .await
            .unwrap_or(false);
        if ok {
            self.verified.insert(key, Arc::new((user, hash)));
        }
        ok
    }
}

/// `Basic base64(user:password)` -> `(user, password)`; the scheme is case-insensitive.
pub fn parse_basic(authorization: &[u8]) -> Option<(String, String)> {
    let text = std::str::from_utf8(authorization).ok()?.trim();
    let (scheme, encoded) = text.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// Whether `password` matches the Argon2 PHC string `hash` (with the parameters it names).
pub fn verify_password(password: &[u8], hash: &str) -> bool {
    Argon2::default().verify_password(password, hash).is_ok()
}

/// An Argon2id PHC string for `password` with a random salt and the crate's default
/// parameters (OWASP's recommendation: 19 MiB, 2 passes, 1 lane).
pub fn hash_password(password: &str) -> Result<String, String> {
    if password.is_empty() {
        return Err("the password is empty".to_owned());
    }
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// A PHC string with cheap parameters, for tests only (a debug build verifies it quickly).
#[cfg(test)]
pub fn cheap_hash(password: &str) -> String {
    use argon2::{Algorithm, Params, Version};
    let params = Params::new(64, 1, 1, None).expect("valid parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password.as_bytes())
        .expect("hashable")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users(hash: &str) -> Vec<StatsUser> {
        vec![StatsUser {
            user: "stats".to_owned(),
            password_hash: hash.to_owned(),
        }]
    }

    fn basic(credentials: &str) -> Vec<u8> {
        let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
        format!("Basic {encoded}").into_bytes()
    }

    #[test]
    fn the_header_parses_into_user_and_password() {
        assert_eq!(
            parse_basic(&basic("stats:s3cr:et")),
            Some(("stats".to_owned(), "s3cr:et".to_owned()))
        );
        assert_eq!(
            parse_basic(b"basic c3RhdHM6eA=="),
            Some(("stats".into(), "x".into()))
        );
        assert_eq!(parse_basic(b"Bearer abc"), None);
        assert_eq!(parse_basic(b"Basic !!!"), None);
        assert_eq!(parse_basic(&basic("no-colon")), None);
    }

    #[test]
    fn a_made_hash_verifies_its_password_only() {
        let hash = hash_password("correct horse").expect("hash");
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(crate::config::check_password_hash(&hash).is_ok());
        assert!(verify_password(b"correct horse", &hash));
        assert!(!verify_password(b"correct horsf", &hash));
        assert!(hash_password("").is_err());
    }

    #[actix_rt::test]
    async fn verified_headers_are_remembered_until_the_user_changes() {
        let auth = BasicAuth::default();
        let hash = cheap_hash("pw");
        assert!(auth.allows(&basic("stats:pw"), &users(&hash)).await);
        assert!(!auth.allows(&basic("stats:wrong"), &users(&hash)).await);
        assert!(!auth.allows(&basic("other:pw"), &users(&hash)).await);
        assert_eq!(auth.verified.len(), 1);
        // Remembered: passes without a verification, as long as the user keeps that hash.
        assert!(auth.allows(&basic("stats:pw"), &users(&hash)).await);
        let changed = cheap_hash("new");
        assert!(!auth.allows(&basic("stats:pw"), &users(&changed)).await);
        assert!(!auth.allows(&basic("stats:pw"), &[]).await);
    }
}
