//! Size syntax of `config.yaml` (control plane): a whole number of bytes (`65536`) or a number
//! with a unit: `KiB`, `MiB`, `GiB` (powers of 1024) or `KB`, `MB`, `GB` (powers of 1000), and
//! `B`. `"256MiB"`, `"1.5GiB"`, `"64KB"`.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// The units a size may use, for error messages.
const UNITS: &str = "B, KiB, MiB, GiB, KB, MB, GB";

/// Parses a size: whole bytes, or a number (decimals allowed) and a unit.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let s = text.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let not_a_size = || format!("`{text}` is not a size; expected e.g. \"256MiB\" (units: {UNITS})");
    if number.is_empty()
        || number.starts_with('.')
        || number.ends_with('.')
        || number.matches('.').count() > 1
    {
        return Err(not_a_size());
    }
    let scale: u64 = match unit {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return Err(format!("unknown size unit `{unit}` (units: {UNITS})")),
    };
    let value: f64 = number.parse().map_err(|_| not_a_size())?;
    let bytes = value * scale as f64;
    if !(bytes.is_finite() && bytes < u64::MAX as f64) {
        return Err(format!("`{text}` is too large"));
    }
    if unit.is_empty() || unit == "B" {
        if number.contains('.') {
            return Err(format!("`{text}`: a number of bytes must be whole"));
        }
        return number.parse().map_err(|_| format!("`{text}` is too large"));
    }
    Ok(bytes.round() as u64)
}

/// A size field: a whole number of bytes or a string with a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SizeValue(pub(super) u64);

impl<'de> Deserialize<'de> for SizeValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SizeVisitor)
    }
}

struct SizeVisitor;

impl Visitor<'_> for SizeVisitor {
    type Value = SizeValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a size: whole bytes or a number with a unit (units: {UNITS})")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        parse_size(v).map(SizeValue).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(SizeValue(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        u64::try_from(v)
            .map(SizeValue)
            .map_err(|_| E::custom("a size can't be negative"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_with_and_without_units() {
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("12B"), Ok(12));
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size(" 64KB "), Ok(64_000));
        assert_eq!(parse_size("2GB"), Ok(2_000_000_000));
    }

    #[test]
    fn bad_sizes_are_refused() {
        for bad in [
            "",
            "MiB",
            "1.5",
            "1..5MiB",
            ".5MiB",
            "5mb",
            "5 MiB",
            "-1MiB",
            "99999999999GiB",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}
