//! Request coalescing: one request per key fetches a missing or expired object while the
//! others for the same key wait for it (`update: locked`), or one background request refreshes
//! it (`update: shadowed`).
//!
//! Hot path only on misses. The table is a map from key to the fill in progress, under a lock
//! held for a map operation only. A waiter holds a receiver of the fill's channel; the leader's
//! guard closes the channel when it drops — after the object was stored, or when the fill was
//! abandoned (client abort, uncacheable answer, error) — which wakes every waiter at once, on
//! whatever worker it runs. Waiters then look the key up again, or go to the backend
//! themselves after `lock_timeout`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;

/// The fills in progress of one cache.
#[derive(Default)]
pub struct FillLocks {
    fills: Mutex<HashMap<Box<str>, watch::Receiver<()>>>,
}

/// The outcome of asking to fill a key.
pub enum Lock {
    /// Nobody is fetching the key: this request does, and the guard releases the others.
    Leader(FillGuard),
    /// Another request is fetching it: wait for it.
    Follower(FillWait),
}

impl FillLocks {
    /// Becomes the leader of `key`'s fill, or a follower of the one in progress.
    pub fn acquire(self: &Arc<Self>, key: &str) -> Lock {
        let mut fills = self.fills.lock();
        if let Some(rx) = fills.get(key) {
            return Lock::Follower(FillWait(rx.clone()));
        }
        let (tx, rx) = watch::channel(());
        fills.insert(key.into(), rx);
        Lock::Leader(FillGuard {
            locks: self.clone(),
            key: key.into(),
            _done: tx,
        })
    }

    /// Leads `key`'s fill only if nobody does (a background refresh that must not wait).
    pub fn try_lead(self: &Arc<Self>, key: &str) -> Option<FillGuard> {
        match self.acquire(key) {
            Lock::Leader(guard) => Some(guard),
            Lock::Follower(_) => None,
        }
    }

    /// Fills in progress.
    pub fn in_progress(&self) -> usize {
        self.fills.lock().len()
    }
}

/// The leader's hold on a key; dropping it ends the fill and wakes the waiters.
pub struct FillGuard {
    locks: Arc<FillLocks>,
    key: Box<str>,
    /// Dropped with the guard, which closes the channel the waiters watch.
    _done: watch::Sender<()>,
}

impl Drop for FillGuard {
    fn drop(&mut self) {
        // Removed before the sender drops (field order), so a request arriving after the
        // wake-up finds the stored object or leads a new fill, never a finished one.
        self.locks.fills.lock().remove(&self.key);
    }
}

/// A follower's wait for a fill.
pub struct FillWait(watch::Receiver<()>);

impl FillWait {
    /// Waits until the fill ended (true) or `timeout` passed (false).
    pub async fn wait(mut self, timeout: Duration) -> bool {
        // The channel never carries a value: `changed` returns an error once it is closed.
        tokio::time::timeout(timeout, self.0.changed()).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_leader_per_key_and_every_follower_wakes_when_it_ends() {
        let locks = Arc::new(FillLocks::default());
        let Lock::Leader(guard) = locks.acquire("k") else {
            panic!("the first request leads");
        };
        assert!(
            matches!(locks.acquire("other"), Lock::Leader(_)),
            "keys are independent"
        );
        let waits: Vec<_> = (0..5)
            .map(|_| match locks.acquire("k") {
                Lock::Follower(w) => tokio::spawn(w.wait(Duration::from_secs(5))),
                Lock::Leader(_) => panic!("a second leader"),
            })
            .collect();
        assert!(locks.try_lead("k").is_none());
        drop(guard);
        for w in waits {
            assert!(w.await.expect("task"), "woken, not timed out");
        }
        assert_eq!(locks.in_progress(), 0);
        assert!(
            matches!(locks.acquire("k"), Lock::Leader(_)),
            "a new fill may start"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_follower_gives_up_after_the_timeout() {
        let locks = Arc::new(FillLocks::default());
        let _guard = locks.try_lead("k").expect("leader");
        let Lock::Follower(w) = locks.acquire("k") else {
            panic!("follower");
        };
        assert!(!w.wait(Duration::from_millis(100)).await);
    }
}
