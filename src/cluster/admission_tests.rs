//! Unit tests of the admission state (no runtime needed).
use super::*;
