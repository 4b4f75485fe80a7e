//! Backend selection within one role: round-robin, chance (fill the first) and least-load.
//!
//! Pure functions over the admission state's slot table; called with the admission lock held,
//! so they allocate nothing and never wait.

use crate::config::{Role, SchedulerKind};

/// What the scheduler needs to know about one backend slot.
pub trait Candidate {
    fn role(&self) -> Role;
    /// Enabled, healthy and not draining.
    fn usable(&self) -> bool;
    /// 0 means unlimited.
    fn capacity(&self) -> u32;
    fn in_flight(&self) -> u32;

    /// Usable and below capacity.
    fn has_room(&self) -> bool {
        self.usable() && (self.capacity() == 0 || self.in_flight() < self.capacity())
    }
}

/// Picks a slot of `role` with room that is not `excluded`, or `None`. `cursor` is the role's
/// round-robin position: `rr` starts one after the previous winner; `least-load` uses it to
/// break ties fairly.
pub fn pick<C: Candidate>(
    kind: SchedulerKind,
    slots: &[C],
    role: Role,
    cursor: &mut usize,
    excluded: impl Fn(usize) -> bool,
) -> Option<usize> {
    let n = slots.len();
    if n == 0 {
        return None;
    }
    let eligible = |i: usize| slots[i].role() == role && slots[i].has_room() && !excluded(i);
    let winner = match kind {
        SchedulerKind::Chance => (0..n).find(|&i| eligible(i)),
        SchedulerKind::RoundRobin => (0..n).map(|k| (*cursor + k) % n).find(|&i| eligible(i)),
        SchedulerKind::LeastLoad => (0..n)
            .map(|k| (*cursor + k) % n)
            .filter(|&i| eligible(i))
            .min_by_key(|&i| load_key(&slots[i])),
    }?;
    *cursor = (winner + 1) % n;
    Some(winner)
}

/// Utilisation as a fraction of capacity, scaled to an integer; an unlimited backend is weighed
/// by its in-flight count alone (as if its capacity were 1).
fn load_key<C: Candidate>(slot: &C) -> u64 {
    let capacity = u64::from(slot.capacity().max(1));
    (u64::from(slot.in_flight()) << 32) / capacity
}

#[cfg(test)]
mod tests {
    use super::*;

    struct S(Role, bool, u32, u32);
    impl Candidate for S {
        fn role(&self) -> Role {
            self.0
        }
        fn usable(&self) -> bool {
            self.1
        }
        fn capacity(&self) -> u32 {
            self.2
        }
        fn in_flight(&self) -> u32 {
            self.3
        }
    }

    fn run(kind: SchedulerKind, slots: &mut [S], picks: usize) -> Vec<usize> {
        let mut cursor = 0;
        (0..picks)
            .map(|_| {
                let i = pick(kind, slots, Role::Active, &mut cursor, |_| false).expect("a slot");
                slots[i].3 += 1;
                i
            })
            .collect()
    }

    #[test]
    fn round_robin_visits_each_in_turn_and_skips_unusable() {
        let mut slots = [
            S(Role::Active, true, 0, 0),
            S(Role::Active, false, 0, 0),
            S(Role::Active, true, 0, 0),
            S(Role::Standby, true, 0, 0),
        ];
        assert_eq!(run(SchedulerKind::RoundRobin, &mut slots, 4), [0, 2, 0, 2]);
    }

    #[test]
    fn chance_fills_the_first_before_the_next() {
        let mut slots = [S(Role::Active, true, 2, 0), S(Role::Active, true, 2, 0)];
        assert_eq!(run(SchedulerKind::Chance, &mut slots, 4), [0, 0, 1, 1]);
        let mut cursor = 0;
        assert_eq!(
            pick(SchedulerKind::Chance, &slots, Role::Active, &mut cursor, |_| {
                false
            }),
            None
        );
    }

    #[test]
    fn least_load_prefers_the_least_utilised() {
        let mut slots = [
            S(Role::Active, true, 4, 3),
            S(Role::Active, true, 4, 0),
            S(Role::Active, true, 8, 2),
        ];
        // 1 has 0/4, then 1 (1/4) ties 2 (2/8): the cursor (after 1) prefers 2.
        assert_eq!(run(SchedulerKind::LeastLoad, &mut slots, 3), [1, 2, 1]);
    }

    #[test]
    fn role_filter_applies() {
        let slots = [S(Role::Backup, true, 0, 0)];
        let mut cursor = 0;
        assert_eq!(
            pick(
                SchedulerKind::RoundRobin,
                &slots,
                Role::Active,
                &mut cursor,
                |_| false
            ),
            None
        );
        assert_eq!(
            pick(
                SchedulerKind::RoundRobin,
                &slots,
                Role::Backup,
                &mut cursor,
                |_| false
            ),
            Some(0)
        );
    }
}
