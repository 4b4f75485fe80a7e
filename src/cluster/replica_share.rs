//! This replica's share of each backend's capacity when several replicas share a backend
//! (control plane, pure): `capacity / live replicas`, the remainder going one unit each to the
//! first replicas in name order, so the shares of all replicas add up to exactly the capacity.
//!
//! With fewer capacity units than replicas, some replicas get a share of 0: they send that
//! backend nothing (its slot is out of service on that replica; requests there take another
//! backend or queue). Rounding up instead (a share of at least 1) would let the replicas
//! together exceed the capacity, which is the one thing the split exists to prevent.

use serde::Serialize;

/// Where this replica stands among the live replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ReplicaShare {
    /// This replica's position among the live replicas sorted by id (0-based).
    pub rank: usize,
    /// Live replicas, this one included (at least 1).
    pub count: usize,
}

impl Default for ReplicaShare {
    /// Alone: the whole capacity.
    fn default() -> Self {
        ReplicaShare { rank: 0, count: 1 }
    }
}

impl ReplicaShare {
    /// The share of `me` among `replicas` (ids; `me` counts even when absent from the list,
    /// as before its own registration shows up).
    pub fn among<'a>(me: &str, replicas: impl IntoIterator<Item = &'a str>) -> ReplicaShare {
        let mut ids: Vec<&str> = replicas.into_iter().collect();
        ids.push(me);
        ids.sort_unstable();
        ids.dedup();
        let rank = ids.iter().position(|id| *id == me).unwrap_or(0);
        ReplicaShare {
            rank,
            count: ids.len(),
        }
    }

    /// This replica's part of `capacity` (0 = unlimited stays unlimited). A result of 0 for a
    /// limited backend means none at all (see the module docs).
    pub fn of(&self, capacity: u32) -> u32 {
        if capacity == 0 || self.count <= 1 {
            return capacity;
        }
        let count = self.count as u32;
        let extra = u32::from((self.rank as u32) < capacity % count);
        capacity / count + extra
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shares(capacity: u32, count: usize) -> Vec<u32> {
        (0..count)
            .map(|rank| ReplicaShare { rank, count }.of(capacity))
            .collect()
    }

    #[test]
    fn shares_add_up_to_the_capacity_exactly() {
        assert_eq!(shares(6, 3), [2, 2, 2]);
        assert_eq!(shares(6, 2), [3, 3]);
        assert_eq!(shares(7, 3), [3, 2, 2]);
        assert_eq!(
            shares(2, 3),
            [1, 1, 0],
            "fewer units than replicas: some get none"
        );
        assert_eq!(shares(0, 3), [0, 0, 0], "unlimited stays unlimited");
        for capacity in 1..40 {
            for count in 1..9 {
                assert_eq!(shares(capacity, count).iter().sum::<u32>(), capacity);
            }
        }
    }

    #[test]
    fn rank_by_sorted_id_counting_oneself() {
        let share = ReplicaShare::among("b", ["c", "a"]);
        assert_eq!(share, ReplicaShare { rank: 1, count: 3 });
        assert_eq!(
            ReplicaShare::among("b", ["b", "a"]),
            ReplicaShare { rank: 1, count: 2 }
        );
        assert_eq!(ReplicaShare::among("z", []), ReplicaShare::default());
    }
}
