//! Failure counts kept in memory, bounded: a flood of made-up names or addresses evicts the
//! entries that matter least (the fewest failures, then the oldest) a tenth at a time, so the
//! counts of the addresses that fail most are never forgotten all at once.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::time::Instant;

use crate::login_policy::FORGET_FAILURES_AFTER;

#[derive(Debug)]
pub(crate) struct FailureCounts<K> {
    counts: HashMap<K, (u32, Instant)>,
    capacity: usize,
}

impl<K: Hash + Eq + Clone> FailureCounts<K> {
    pub(crate) fn new(capacity: usize) -> Self {
        FailureCounts {
            counts: HashMap::new(),
            capacity: capacity.max(10),
        }
    }

    /// Failures of `key` within the quiet period (0 when none).
    pub(crate) fn recent<Q>(&self, key: &Q, now: Instant) -> u32
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.counts
            .get(key)
            .filter(|(_, last)| now.duration_since(*last) < FORGET_FAILURES_AFTER)
            .map_or(0, |(count, _)| *count)
    }

    pub(crate) fn record(&mut self, key: K, now: Instant) {
        if self.counts.len() >= self.capacity && !self.counts.contains_key(&key) {
            self.evict(now);
        }
        let entry = self.counts.entry(key).or_insert((0, now));
        if now.duration_since(entry.1) >= FORGET_FAILURES_AFTER {
            entry.0 = 0;
        }
        entry.0 = entry.0.saturating_add(1);
        entry.1 = now;
    }

    /// Halves the count of `key` (a success from it), forgetting it at zero.
    pub(crate) fn halve<Q>(&mut self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if let Some((count, _)) = self.counts.get_mut(key) {
            *count /= 2;
            if *count == 0 {
                self.counts.remove(key);
            }
        }
    }

    fn evict(&mut self, now: Instant) {
        self.counts
            .retain(|_, (_, last)| now.duration_since(*last) < FORGET_FAILURES_AFTER);
        if self.counts.len() < self.capacity {
            return;
        }
        let mut least: Vec<(u32, Instant, K)> = self
            .counts
            .iter()
            .map(|(key, (count, last))| (*count, *last, key.clone()))
            .collect();
        let tenth = self.capacity / 10;
        least.select_nth_unstable_by_key(tenth, |(count, last, _)| (*count, *last));
        for (_, _, key) in least.into_iter().take(tenth) {
            self.counts.remove(&key);
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.counts.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_evicts_the_least_failed_and_keeps_the_worst() {
        let mut counts = FailureCounts::new(1000);
        let now = Instant::now();
        for _ in 0..50 {
            counts.record(u32::MAX, now);
        }
        for key in 0..100_000u32 {
            counts.record(key, now);
            assert!(counts.len() <= 1000);
        }
        assert_eq!(counts.recent(&u32::MAX, now), 50);
        assert!(counts.len() > 800, "evicted a tenth at a time");
    }

    #[test]
    fn counts_are_forgotten_after_a_quiet_period_and_halved_by_a_success() {
        let mut counts = FailureCounts::new(100);
        let now = Instant::now();
        for _ in 0..5 {
            counts.record("a", now);
        }
        counts.halve("a");
        assert_eq!(counts.recent("a", now), 2);
        assert_eq!(counts.recent("a", now + FORGET_FAILURES_AFTER), 0);
        counts.record("a", now + FORGET_FAILURES_AFTER);
        assert_eq!(counts.recent("a", now + FORGET_FAILURES_AFTER), 1);
    }
}
