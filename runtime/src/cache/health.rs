//! Per-server health for the memcached backend: mark-down, owed invalidations and
//! background probing (issue: a hung cache server must not hang the application).
//!
//! A server that fails or times out once is **marked down**. While it is down, the
//! ops routed to it fail at once with [`CacheError::Down`](super::CacheError::Down):
//! reads become misses that the database answers, and no call waits for the server
//! again. Its keys are never sent to another server, which would break the leases'
//! and the CAS tokens' per-server guarantees.
//!
//! A down server may come back holding values that are stale: every invalidation
//! (delete or append) routed to it while it was down, or lost to its failure, did not
//! reach it. Those keys are **owed**: recorded here, under the same lock that decides
//! "down", and deleted on the server by the probe before the server is marked up
//! again. A key deleted from memcached is always safe (its next reader fills it from
//! the database under a lease), so this process never reads a value that one of its
//! own writes should have removed. Other processes learn of the lost invalidations
//! through the durable outbox, within its configured bound, as before.
//!
//! The **prober** is one background thread per client, started when a server goes
//! down and ending when none is: it dials each down server after a delay that doubles
//! with every failed probe up to a ceiling, with jitter so that many processes do not
//! probe in step. A probe sends the owed deletes and a no-op (`mn`), and the server
//! is up again only when every one of them was answered within the I/O timeout.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The first probe of a server follows its mark-down after this long.
pub(crate) const FIRST_PROBE: Duration = Duration::from_millis(50);

/// The delay between probes of a server that stays down stops doubling here.
pub(crate) const MAX_PROBE_INTERVAL: Duration = Duration::from_secs(2);

/// Keys one server may owe. Past this bound a failed invalidation is not recorded;
/// [`Health::owes_all`] then says no for it, and the store falls back to bypassing the
/// cache for its own reads until the outbox entry is applied (the slow path, which is
/// always correct).
pub(crate) const MAX_OWED_KEYS: usize = 200_000;

/// Counters of every server of one client, for `Store::stats`.
#[derive(Debug, Default)]
pub(crate) struct HealthCounters {
    pub(crate) markdowns: AtomicU64,
    pub(crate) probes: AtomicU64,
    pub(crate) skipped_ops: AtomicU64,
    /// Milliseconds of finished down periods (a period still running is added when
    /// the counters are read).
    pub(crate) down_ms: AtomicU64,
}

/// The health of one server.
#[derive(Debug, Default)]
pub(crate) struct Health {
    /// Mirrors `state.down` for the lock-free check on every batch; the lock decides.
    down: AtomicBool,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    down: bool,
    down_since: Option<Instant>,
    /// Failed probes since the mark-down.
    attempts: u32,
    next_probe: Option<Instant>,
    owed: HashSet<String>,
}

/// What [`Health::take_owed`] hands the probe: the keys to delete before the server
/// may serve again.
#[derive(Debug)]
pub(crate) struct Owed {
    pub(crate) keys: Vec<String>,
}

impl Health {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section below leaves the state whole before it could panic.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the server is marked down (a hint; [`Health::skip_if_down`] decides).
    pub(crate) fn is_down(&self) -> bool {
        self.down.load(Ordering::Acquire)
    }

    /// If the server is down, records `invalidations` as owed and returns true: the
    /// caller fails its ops at once. The decision and the record are one step, so a
    /// probe that marks the server up cannot slip between them and leave a skipped
    /// invalidation unrecorded.
    pub(crate) fn skip_if_down<'k>(
        &self,
        invalidations: impl Iterator<Item = &'k str>,
        counters: &HealthCounters,
        ops: usize,
    ) -> bool {
        if !self.is_down() {
            return false;
        }
        let mut state = self.lock();
        if !state.down {
            return false;
        }
        state.owe(invalidations);
        counters.skipped_ops.fetch_add(ops as u64, Ordering::Relaxed);
        true
    }

    /// Marks the server down after a failure, owing `invalidations` (the deletes and
    /// appends of the failed exchange, which may or may not have been applied).
    /// Returns true when this call took the server down (the prober must run).
    pub(crate) fn mark_down<'k>(
        &self,
        invalidations: impl Iterator<Item = &'k str>,
        counters: &HealthCounters,
    ) -> bool {
        let mut state = self.lock();
        state.owe(invalidations);
        if state.down {
            return false;
        }
        let now = Instant::now();
        state.down = true;
        state.down_since = Some(now);
        state.attempts = 0;
        state.next_probe = Some(now + FIRST_PROBE);
        self.down.store(true, Ordering::Release);
        counters.markdowns.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Whether every one of `keys` is owed, and so deleted before the server serves
    /// again.
    pub(crate) fn owes_all<'k>(&self, mut keys: impl Iterator<Item = &'k str>) -> bool {
        let state = self.lock();
        keys.all(|k| state.owed.contains(k))
    }

    /// When the next probe is due, if the server is down.
    pub(crate) fn next_probe(&self) -> Option<Instant> {
        if !self.is_down() {
            return None;
        }
        self.lock().next_probe
    }

    /// The keys a probe must delete now (a copy: they stay owed until the server is
    /// marked up).
    pub(crate) fn take_owed(&self) -> Owed {
        Owed { keys: self.lock().owed.iter().cloned().collect() }
    }

    /// After a successful probe that deleted `deleted`: marks the server up unless
    /// more keys became owed meanwhile (then returns false and the probe deletes
    /// those too, on the same connection).
    pub(crate) fn mark_up(&self, deleted: &[String], counters: &HealthCounters) -> bool {
        let mut state = self.lock();
        for key in deleted {
            state.owed.remove(key);
        }
        if !state.owed.is_empty() {
            return false;
        }
        if let Some(since) = state.down_since.take() {
            counters.down_ms.fetch_add(since.elapsed().as_millis() as u64, Ordering::Relaxed);
        }
        state.down = false;
        state.attempts = 0;
        state.next_probe = None;
        self.down.store(false, Ordering::Release);
        true
    }

    /// After a failed probe: the next one waits twice as long (up to
    /// [`MAX_PROBE_INTERVAL`]), scaled by `jitter` in [0.5, 1].
    pub(crate) fn probe_failed(&self, jitter: f64) {
        let mut state = self.lock();
        state.attempts = state.attempts.saturating_add(1);
        let doubled = FIRST_PROBE.saturating_mul(1u32 << state.attempts.min(16));
        let delay = doubled.min(MAX_PROBE_INTERVAL).mul_f64(jitter.clamp(0.5, 1.0));
        state.next_probe = Some(Instant::now() + delay);
    }

    /// The length of the down period still running, if any, in milliseconds.
    pub(crate) fn running_down_ms(&self) -> u64 {
        if !self.is_down() {
            return 0;
        }
        self.lock().down_since.map_or(0, |since| since.elapsed().as_millis() as u64)
    }
}

impl State {
    fn owe<'k>(&mut self, keys: impl Iterator<Item = &'k str>) {
        for key in keys {
            if self.owed.len() < MAX_OWED_KEYS && !self.owed.contains(key) {
                self.owed.insert(key.to_owned());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skipped_invalidations_are_owed_until_the_probe_deletes_them() {
        let health = Health::default();
        let counters = HealthCounters::default();
        assert!(!health.skip_if_down(["a"].into_iter(), &counters, 1), "an up server is not skipped");
        assert!(health.mark_down(["a"].into_iter(), &counters));
        assert!(!health.mark_down(["b"].into_iter(), &counters), "already down");
        assert!(health.skip_if_down(["c"].into_iter(), &counters, 2));
        assert!(health.owes_all(["a", "b", "c"].into_iter()));
        assert!(!health.owes_all(["d"].into_iter()));
        let owed = health.take_owed();
        assert_eq!(owed.keys.len(), 3);
        // A key owed while the probe ran keeps the server down.
        health.skip_if_down(["e"].into_iter(), &counters, 1);
        assert!(!health.mark_up(&owed.keys, &counters));
        assert!(health.is_down());
        assert!(health.mark_up(&health.take_owed().keys, &counters));
        assert!(!health.is_down());
        assert_eq!(counters.markdowns.load(Ordering::Relaxed), 1);
        assert_eq!(counters.skipped_ops.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn probes_back_off_to_the_ceiling() {
        let health = Health::default();
        let counters = HealthCounters::default();
        health.mark_down(std::iter::empty(), &counters);
        let mut last = Duration::ZERO;
        for _ in 0..12 {
            health.probe_failed(1.0);
            let wait = health.next_probe().map(|at| at.saturating_duration_since(Instant::now())).unwrap_or_default();
            assert!(wait <= MAX_PROBE_INTERVAL);
            assert!(wait + Duration::from_millis(5) >= last.min(MAX_PROBE_INTERVAL - Duration::from_millis(5)));
            last = wait;
        }
        assert!(last > MAX_PROBE_INTERVAL / 2, "reached the ceiling: {last:?}");
    }
}
