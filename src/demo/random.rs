//! Randomness for the demo without another crate: a small shared generator for latencies and
//! traffic (SplitMix64, lock-free, not for secrets), and admin tokens read from the OS.

use std::collections::hash_map::RandomState;
use std::fmt::Write as _;
use std::hash::{BuildHasher, Hasher};
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};

/// SplitMix64 over an atomic counter: each call takes the next state, so the generator can be
/// shared by tasks without a lock.
#[derive(Debug)]
pub struct Rng(AtomicU64);

/// SplitMix64's increment (the golden ratio in 64 bits).
const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

impl Rng {
    /// A generator seeded from the standard library's per-process random hash keys.
    pub fn seeded() -> Rng {
        Rng(AtomicU64::new(RandomState::new().build_hasher().finish()))
    }

    /// A generator with a fixed seed (tests).
    #[cfg(test)]
    pub fn with_seed(seed: u64) -> Rng {
        Rng(AtomicU64::new(seed))
    }

    pub fn next_u64(&self) -> u64 {
        let mut z = self.0.fetch_add(GAMMA, Ordering::Relaxed).wrapping_add(GAMMA);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `low..=high` (the slight modulo bias does not matter here).
    pub fn between(&self, low: u64, high: u64) -> u64 {
        low + self.next_u64() % (high - low + 1)
    }

    /// True about once in `n` calls.
    pub fn one_in(&self, n: u64) -> bool {
        self.next_u64().is_multiple_of(n.max(1))
    }
}

/// A fresh admin token: 32 hex characters (128 bits) from `/dev/urandom`, or, should that be
/// unreadable, from the standard library's randomly keyed hashers (seeded by the OS too).
pub fn admin_token() -> String {
    let mut bytes = [0u8; 16];
    let from_os = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if from_os.is_err() {
        for (i, half) in bytes.chunks_mut(8).enumerate() {
            let mut hasher = RandomState::new().build_hasher();
            hasher.write_usize(i);
            half.copy_from_slice(&hasher.finish().to_le_bytes());
        }
    }
    bytes.iter().fold(String::with_capacity(32), |mut hex, b| {
        let _ = write!(hex, "{b:02x}");
        hex
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_32_hex_characters_and_differ() {
        let (a, b) = (admin_token(), admin_token());
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert!(a.len() >= crate::config::MIN_TOKEN_LEN);
    }

    #[test]
    fn between_stays_in_range_and_spreads() {
        let rng = Rng::with_seed(7);
        let draws: Vec<u64> = (0..1000).map(|_| rng.between(3, 6)).collect();
        assert!(draws.iter().all(|d| (3..=6).contains(d)));
        for value in 3..=6 {
            assert!(draws.contains(&value), "{value} never drawn");
        }
    }
}
