//! The health state machine of one backend: `rise` consecutive successes bring it online,
//! `fall` consecutive failures take it offline, a passive failure (seen on the request path)
//! takes it offline at once and restarts the count of successes.
//!
//! Pure: no clock, no I/O; the HealthMonitor actor feeds it probe results.

use serde::Serialize;

/// Health of a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Online,
    Offline,
}

/// The outcome of one probe.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeResult {
    pub ok: bool,
    /// `status 200`, `status 503`, `timeout`, `connection refused`, `protocol error: ...`.
    pub detail: String,
    /// Seconds since the Unix epoch.
    pub at: f64,
}

/// Probe results counting toward a health change that has not happened yet: `count` of the
/// `needed` consecutive results (failures toward offline, successes toward online).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HealthProgress {
    pub toward: Health,
    pub count: u32,
    pub needed: u32,
}

/// Consecutive-result counting with hysteresis.
#[derive(Debug, Clone)]
pub struct HealthMachine {
    health: Health,
    rise: u32,
    fall: u32,
    successes: u32,
    failures: u32,
}

impl HealthMachine {
    pub fn new(initial: Health, rise: u32, fall: u32) -> HealthMachine {
        HealthMachine {
            health: initial,
            rise: rise.max(1),
            fall: fall.max(1),
            successes: 0,
            failures: 0,
        }
    }

    pub fn health(&self) -> Health {
        self.health
    }

    /// The results so far toward the other health, `None` when there are none.
    pub fn progress(&self) -> Option<HealthProgress> {
        let (toward, count, needed) = match self.health {
            Health::Online => (Health::Offline, self.failures, self.fall),
            Health::Offline => (Health::Online, self.successes, self.rise),
        };
        (count > 0).then_some(HealthProgress {
            toward,
            count,
            needed,
        })
    }

    /// Records a probe result; returns the new health when it flipped.
    pub fn probe(&mut self, ok: bool) -> Option<Health> {
        if ok {
            self.failures = 0;
            self.successes = self.successes.saturating_add(1);
            if self.health == Health::Offline && self.successes >= self.rise {
                return self.flip(Health::Online);
            }
        } else {
            self.successes = 0;
            self.failures = self.failures.saturating_add(1);
            if self.health == Health::Online && self.failures >= self.fall {
                return self.flip(Health::Offline);
            }
        }
        None
    }

    /// A request failed because of the backend: offline now, and `rise` fresh successes needed.
    pub fn passive_failure(&mut self) -> Option<Health> {
        self.successes = 0;
        self.failures = self.failures.saturating_add(1);
        (self.health == Health::Online)
            .then(|| self.flip(Health::Offline))
            .flatten()
    }

    fn flip(&mut self, to: Health) -> Option<Health> {
        self.health = to;
        self.successes = 0;
        self.failures = 0;
        Some(to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_counts_toward_the_other_health() {
        let mut m = HealthMachine::new(Health::Online, 2, 3);
        assert_eq!(m.progress(), None);
        m.probe(false);
        let toward_offline = |count| HealthProgress {
            toward: Health::Offline,
            count,
            needed: 3,
        };
        assert_eq!(m.progress(), Some(toward_offline(1)));
        m.probe(false);
        assert_eq!(m.progress(), Some(toward_offline(2)));
        m.probe(false);
        assert_eq!(m.health(), Health::Offline);
        assert_eq!(m.progress(), None, "a flip starts afresh");
        m.probe(true);
        let toward_online = HealthProgress {
            toward: Health::Online,
            count: 1,
            needed: 2,
        };
        assert_eq!(m.progress(), Some(toward_online));
        m.probe(false);
        assert_eq!(m.progress(), None);
    }

    #[test]
    fn rise_and_fall_need_consecutive_results() {
        let mut m = HealthMachine::new(Health::Online, 2, 3);
        assert_eq!(m.probe(false), None);
        assert_eq!(m.probe(false), None);
        assert_eq!(m.probe(true), None, "a success breaks the run of failures");
        assert_eq!(m.probe(false), None);
        assert_eq!(m.probe(false), None);
        assert_eq!(m.probe(false), Some(Health::Offline));
        assert_eq!(m.probe(true), None);
        assert_eq!(m.probe(false), None);
        assert_eq!(m.probe(true), None);
        assert_eq!(m.probe(true), Some(Health::Online));
        assert_eq!(m.probe(true), None);
    }

    #[test]
    fn a_passive_failure_takes_it_offline_and_restarts_the_rise() {
        let mut m = HealthMachine::new(Health::Online, 2, 3);
        assert_eq!(m.probe(true), None);
        assert_eq!(m.passive_failure(), Some(Health::Offline));
        assert_eq!(m.passive_failure(), None);
        assert_eq!(
            m.probe(true),
            None,
            "one success is not enough after a passive failure"
        );
        assert_eq!(m.probe(true), Some(Health::Online));
    }

    #[test]
    fn starting_offline_needs_rise_successes() {
        let mut m = HealthMachine::new(Health::Offline, 3, 1);
        assert_eq!(m.probe(true), None);
        assert_eq!(m.probe(true), None);
        assert_eq!(m.probe(true), Some(Health::Online));
        assert_eq!(m.probe(false), Some(Health::Offline), "fall 1");
    }
}
