//! Duration syntax of `config.yaml` (control plane): `"250ms"`, `"10s"`, `"1.5s"`, `"2m"`, `"1h"`.
//!
//! Owns [`parse_duration`] and the serde adapter the loader uses for duration fields. A bare
//! number is rejected on purpose: `timeout: 10` is ambiguous, so the unit must be written.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// The units a duration may use, for error messages.
const UNITS: &str = "ms, s, m, h";

/// Parses a duration written as a number and a unit: `ms`, `s`, `m` or `h` (`"250ms"`, `"10s"`,
/// `"2m"`, `"1h"`).
///
/// The number may have up to 9 decimal places (`"1.5s"`, `"0.25h"`); the result is exact to the
/// nanosecond (finer fractions are truncated). Surrounding whitespace is ignored, whitespace
/// between number and unit is not allowed, and negative values are rejected.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    if number.is_empty() {
        return Err(format!(
            "`{text}` is not a duration; expected a number with a unit, e.g. \"10s\" (units: {UNITS})"
        ));
    }
    if unit.is_empty() {
        return Err(unit_required(number));
    }
    let unit_nanos: u128 = match unit {
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60 * 1_000_000_000,
        "h" => 3_600 * 1_000_000_000,
        _ => return Err(format!("unknown duration unit `{unit}` (units: {UNITS})")),
    };
    let (whole, fraction) = match number.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (number, ""),
    };
    let malformed = || format!("`{text}` is not a duration: malformed number `{number}`");
    if whole.is_empty() || fraction.contains('.') || (number.contains('.') && fraction.is_empty()) {
        return Err(malformed());
    }
    if fraction.len() > 9 {
        return Err(format!("`{text}` has too many decimal places (at most 9)"));
    }
    let too_large = || format!("`{text}` is too large");
    let whole: u128 = whole.parse().map_err(|_| too_large())?;
    let mut nanos = whole.checked_mul(unit_nanos).ok_or_else(too_large)?;
    if !fraction.is_empty() {
        let digits: u128 = fraction.parse().map_err(|_| malformed())?;
        let scale = 10u128.pow(fraction.len() as u32);
        nanos = nanos
            .checked_add(digits * unit_nanos / scale)
            .ok_or_else(too_large)?;
    }
    let nanos = u64::try_from(nanos).map_err(|_| too_large())?;
    Ok(Duration::from_nanos(nanos))
}

/// The message for a number written without its unit.
fn unit_required(number: impl fmt::Display) -> String {
    format!("a unit is required, e.g. \"{number}s\" (units: {UNITS})")
}

/// A duration field as deserialized from the file: a string for [`parse_duration`]; a bare
/// number is an error that asks for the unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct DurationValue(pub(super) Duration);

impl<'de> Deserialize<'de> for DurationValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(DurationVisitor)
    }
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = DurationValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a duration with a unit, e.g. \"10s\" (units: {UNITS})")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        parse_duration(v).map(DurationValue).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Err(E::custom(unit_required(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Err(E::custom(unit_required(v)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Err(E::custom(unit_required(v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Duration {
        match parse_duration(s) {
            Ok(d) => d,
            Err(e) => panic!("{s:?} should parse: {e}"),
        }
    }

    fn err(s: &str) -> String {
        match parse_duration(s) {
            Ok(d) => panic!("{s:?} should fail, got {d:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn units() {
        assert_eq!(ok("250ms"), Duration::from_millis(250));
        assert_eq!(ok("10s"), Duration::from_secs(10));
        assert_eq!(ok("2m"), Duration::from_secs(120));
        assert_eq!(ok("1h"), Duration::from_secs(3600));
        assert_eq!(ok("0s"), Duration::ZERO);
        assert_eq!(ok(" 15s "), Duration::from_secs(15));
    }

    #[test]
    fn fractions_are_exact() {
        assert_eq!(ok("1.5s"), Duration::from_millis(1500));
        assert_eq!(ok("0.25h"), Duration::from_secs(900));
        assert_eq!(ok("0.5ms"), Duration::from_micros(500));
        assert_eq!(ok("0.000000001s"), Duration::from_nanos(1));
        assert!(err("1.0000000001s").contains("decimal places"));
    }

    #[test]
    fn bare_number_needs_a_unit() {
        let e = err("10");
        assert!(e.contains("unit is required"), "{e}");
        assert!(e.contains("\"10s\""), "{e}");
    }

    #[test]
    fn malformed() {
        assert!(err("").contains("not a duration"));
        assert!(err("s").contains("not a duration"));
        assert!(err("-5s").contains("not a duration"));
        assert!(err("10 s").contains("unknown duration unit"));
        assert!(err("10sec").contains("unknown duration unit `sec`"));
        assert!(err("10us").contains("unknown duration unit"));
        assert!(err("1.s").contains("malformed"));
        assert!(err(".5s").contains("malformed"));
        assert!(err("1.2.3s").contains("malformed"));
        assert!(err("99999999999999999999999h").contains("too large"));
        assert!(err("9999999999999h").contains("too large"));
    }

    #[test]
    fn deserializes_from_string_and_rejects_numbers() {
        let d: DurationValue = serde_json::from_str("\"4s\"").expect("valid");
        assert_eq!(d.0, Duration::from_secs(4));
        let e = serde_json::from_str::<DurationValue>("4").expect_err("bare number");
        assert!(e.to_string().contains("unit is required"), "{e}");
        let e = serde_json::from_str::<DurationValue>("true").expect_err("bool");
        assert!(e.to_string().contains("expected a duration"), "{e}");
    }
}
