//! The dashboard's session cookie: what `POST /login` issues instead of the token itself.
//!
//! Control plane. A session value is `EXPIRY.NONCE.TAG`: the expiry in Unix seconds, 16 random
//! bytes (hex), and an HMAC-SHA256 tag (hex) over `EXPIRY.NONCE`. The HMAC key is derived from
//! the admin token, so a new token in `config.yaml` ends every session at the next reload,
//! and the cookie never holds the token: a leaked cookie is good for `session_ttl` at most.
//! Pure functions of the clock and the random bytes they are given ([`issue`], [`verify`]),
//! plus the cookie's attributes.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::cookie::{time, Cookie, SameSite};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "director_session";

/// Random bytes in a session value, so that two logins in one second differ.
const NONCE_LEN: usize = 16;
/// Bytes of an HMAC-SHA256 tag.
const TAG_LEN: usize = 32;
/// Separates the key derivation from any other use of the token.
const KEY_CONTEXT: &[u8] = b"director admin session key v1\0";
/// How far a session's expiry may lie beyond `now + session_ttl`: the clock may have been set
/// back a little since it was issued. Beyond that, a lowered `session_ttl` shortens it.
const CLOCK_SLACK: Duration = Duration::from_secs(60);

type HmacSha256 = Hmac<Sha256>;

/// Why a session value is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("not a session value")]
    Malformed,
    #[error("the session was not signed with the current admin token")]
    Forged,
    #[error("the session has expired")]
    Expired,
    #[error("the session lasts longer than admin.session_ttl allows")]
    TooLong,
    #[error("the operating system gave no random bytes: {0}")]
    NoRandomness(getrandom::Error),
}

/// The key sessions are signed with, derived from the admin token.
#[derive(Clone)]
pub struct SessionKey([u8; TAG_LEN]);

impl SessionKey {
    /// `SHA-256(context || token)`: the token itself never signs anything.
    pub fn for_token(token: &str) -> SessionKey {
        let digest = Sha256::new()
            .chain_update(KEY_CONTEXT)
            .chain_update(token.as_bytes())
            .finalize();
        let mut key = [0u8; TAG_LEN];
        key.copy_from_slice(&digest);
        SessionKey(key)
    }

    /// A MAC keyed with this key. HMAC pads a key shorter than the hash's block to the block
    /// with zeros, so the padded array is the same key (and needs no fallible constructor).
    fn mac(&self) -> HmacSha256 {
        let mut block = [0u8; 64];
        block[..TAG_LEN].copy_from_slice(&self.0);
        HmacSha256::new(&block.into())
    }
}

/// A session value that expires `ttl` after `now` (Unix seconds).
pub fn issue(key: &SessionKey, now: u64, ttl: Duration, nonce: &[u8; NONCE_LEN]) -> String {
    let expiry = now.saturating_add(ttl.as_secs());
    let signed = format!("{expiry}.{}", hex(nonce));
    let mut mac = key.mac();
    mac.update(signed.as_bytes());
    let tag = mac.finalize().into_bytes();
    format!("{signed}.{}", hex(&tag))
}

/// Checks `value` at `now` (Unix seconds): signed with `key`, not expired, and not lasting
/// longer than `ttl` from now. Returns its expiry. The tag is compared in constant time.
pub fn verify(key: &SessionKey, value: &str, now: u64, ttl: Duration) -> Result<u64, SessionError> {
    let (signed, tag) = value.rsplit_once('.').ok_or(SessionError::Malformed)?;
    let (expiry, nonce) = signed.split_once('.').ok_or(SessionError::Malformed)?;
    let well_formed = (1..=20).contains(&expiry.len())
        && expiry.bytes().all(|b| b.is_ascii_digit())
        && unhex::<NONCE_LEN>(nonce).is_some();
    let tag = unhex::<TAG_LEN>(tag)
        .filter(|_| well_formed)
        .ok_or(SessionError::Malformed)?;
    let mut mac = key.mac();
    mac.update(signed.as_bytes());
    mac.verify_slice(&tag).map_err(|_| SessionError::Forged)?;
    let expiry: u64 = expiry.parse().map_err(|_| SessionError::Malformed)?;
    if expiry <= now {
        return Err(SessionError::Expired);
    }
    let longest = now
        .saturating_add(ttl.as_secs())
        .saturating_add(CLOCK_SLACK.as_secs());
    if expiry > longest {
        return Err(SessionError::TooLong);
    }
    Ok(expiry)
}

/// A fresh session value for `token`, valid for `ttl` from now.
pub fn new_session(token: &str, ttl: Duration) -> Result<String, SessionError> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(SessionError::NoRandomness)?;
    Ok(issue(&SessionKey::for_token(token), unix_now(), ttl, &nonce))
}

/// Whether `value` is a valid session for `token` right now.
pub fn is_valid(token: &str, value: &str, ttl: Duration) -> bool {
    verify(&SessionKey::for_token(token), value, unix_now(), ttl).is_ok()
}

/// The session cookie: never readable by scripts (`HttpOnly`), never sent with a request from
/// another site (`SameSite=Strict`), gone after `ttl` (`Max-Age`), and `Secure` when the login
/// came over TLS.
pub fn cookie(value: String, ttl: Duration, secure: bool) -> Cookie<'static> {
    let max_age = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
    Cookie::build(SESSION_COOKIE, value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .max_age(time::Duration::seconds(max_age))
        .finish()
}

/// A cookie that makes the browser forget the session.
pub fn removal_cookie(secure: bool) -> Cookie<'static> {
    let mut cookie = cookie(String::new(), Duration::ZERO, secure);
    cookie.make_removal();
    cookie
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// `N` bytes from exactly `2 * N` lower-case hex digits.
fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    if text.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
        *byte = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "session-test-token-0123";
    const NOW: u64 = 1_700_000_000;
    const TTL: Duration = Duration::from_secs(12 * 3600);
    const NONCE: [u8; NONCE_LEN] = [7; NONCE_LEN];

    fn key() -> SessionKey {
        SessionKey::for_token(TOKEN)
    }

    #[test]
    fn round_trip() {
        let value = issue(&key(), NOW, TTL, &NONCE);
        assert_eq!(verify(&key(), &value, NOW, TTL), Ok(NOW + TTL.as_secs()));
        assert_eq!(
            verify(&key(), &value, NOW + TTL.as_secs() - 1, TTL),
            Ok(NOW + TTL.as_secs())
        );
        assert!(
            !value.contains(TOKEN),
            "the cookie does not hold the token: {value}"
        );
        let (expiry, rest) = value.split_once('.').expect("three parts");
        assert_eq!(expiry, (NOW + TTL.as_secs()).to_string());
        let (nonce, tag) = rest.split_once('.').expect("three parts");
        assert_eq!((nonce.len(), tag.len()), (32, 64), "{value}");
        assert!(
            value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.'),
            "a plain cookie value"
        );
        assert_ne!(
            value,
            issue(&key(), NOW, TTL, &[8; NONCE_LEN]),
            "the nonce counts"
        );
    }

    #[test]
    fn expiry() {
        let value = issue(&key(), NOW, TTL, &NONCE);
        let end = NOW + TTL.as_secs();
        assert_eq!(verify(&key(), &value, end, TTL), Err(SessionError::Expired));
        assert_eq!(
            verify(&key(), &value, end + 3600, TTL),
            Err(SessionError::Expired)
        );
        // A lowered session_ttl shortens the sessions already issued.
        assert_eq!(
            verify(&key(), &value, NOW, Duration::from_secs(3600)),
            Err(SessionError::TooLong)
        );
        // A clock set back by less than a minute does not log anybody out.
        assert!(verify(&key(), &value, NOW - 30, TTL).is_ok());
        assert_eq!(verify(&key(), &value, NOW - 120, TTL), Err(SessionError::TooLong));
    }

    #[test]
    fn tampering() {
        let value = issue(&key(), NOW, TTL, &NONCE);
        let (expiry, rest) = value.split_once('.').expect("parts");
        // A later expiry with the old tag.
        let later = format!("{}.{rest}", expiry.parse::<u64>().expect("number") + 3600);
        assert_eq!(
            verify(&key(), &later, NOW, Duration::from_secs(24 * 3600)),
            Err(SessionError::Forged)
        );
        // Another nonce, a flipped tag digit.
        let other_nonce = format!("{expiry}.{}{}", "8".repeat(32), &rest[32..]);
        assert_eq!(verify(&key(), &other_nonce, NOW, TTL), Err(SessionError::Forged));
        let last = value.chars().last().expect("tag");
        let flipped = format!(
            "{}{}",
            &value[..value.len() - 1],
            if last == '0' { '1' } else { '0' }
        );
        assert_eq!(verify(&key(), &flipped, NOW, TTL), Err(SessionError::Forged));
        for bad in [
            "",
            "garbage",
            "1.2",
            "1.2.3.4",
            TOKEN,
            &value[..value.len() - 2],
            &value.to_uppercase(),
            &format!("-1.{rest}"),
            &format!("{}.{rest}", "9".repeat(21)),
            &format!("{value}."),
        ] {
            assert_eq!(
                verify(&key(), bad, NOW, TTL),
                Err(SessionError::Malformed),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn another_token_refuses_the_session() {
        let value = issue(&key(), NOW, TTL, &NONCE);
        let other = SessionKey::for_token("another-token-0123456");
        assert_eq!(verify(&other, &value, NOW, TTL), Err(SessionError::Forged));
        assert!(is_valid(
            TOKEN,
            &new_session(TOKEN, TTL).expect("random bytes"),
            TTL
        ));
        assert!(!is_valid(
            "another-token-0123456",
            &new_session(TOKEN, TTL).expect("random bytes"),
            TTL
        ));
    }

    #[test]
    fn cookie_attributes() {
        let text = cookie("v".into(), TTL, false).to_string();
        for attribute in [
            "director_session=v",
            "HttpOnly",
            "SameSite=Strict",
            "Path=/",
            "Max-Age=43200",
        ] {
            assert!(text.contains(attribute), "{attribute} missing: {text}");
        }
        assert!(!text.contains("Secure"), "{text}");
        assert!(cookie("v".into(), TTL, true).to_string().contains("; Secure"));
        let removal = removal_cookie(false).to_string();
        assert!(
            removal.contains("Max-Age=0") && removal.contains("Path=/"),
            "{removal}"
        );
    }

    #[test]
    fn hex_round_trip() {
        let bytes = [0x00, 0x0f, 0xa5, 0xff];
        assert_eq!(hex(&bytes), "000fa5ff");
        assert_eq!(unhex::<4>("000fa5ff"), Some(bytes));
        assert_eq!(unhex::<4>("000fa5f"), None);
        assert_eq!(unhex::<4>("000fa5fg"), None);
        assert_eq!(unhex::<4>("000FA5FF"), None, "lower case only");
    }
}
