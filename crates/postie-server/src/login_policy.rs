//! Login policy, shared by all sessions of a server: the brute-force brake and LOGIN-DELAY.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Remembers failed logins per client address and per user name, and says how long to hold
/// the answer to the next login attempt: doubling from the base delay with each recent failure
/// of the address (capped at a minute), and, after a few free ones, of the user from any
/// address (capped lower, so an attacker cannot lock the real user out). Failures are
/// forgotten after a quiet period. The answer is held whether the password was right or
/// wrong: an attacker who gives up waiting learns nothing, and cannot get around the delay
/// by reconnecting.
#[derive(Debug)]
pub(crate) struct FailureTracker {
    /// Milliseconds; changes on reload while the failures remembered stay.
    base_ms: AtomicU64,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
    users: Mutex<HashMap<String, (u32, Instant)>>,
}

const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
const MAX_DELAY: Duration = Duration::from_secs(60);
/// The most a real user waits while someone else guesses their password from elsewhere.
const MAX_USER_DELAY: Duration = Duration::from_secs(10);
/// Failures of one user that cost nothing: the real user mistyping.
const FREE_USER_FAILURES: u32 = 3;
const TRACKED_ADDRESSES: usize = 100_000;

impl FailureTracker {
    pub(crate) fn new(base: Duration) -> Self {
        FailureTracker {
            base_ms: AtomicU64::new(millis(base)),
            failures: Mutex::new(HashMap::new()),
            users: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn set_base(&self, base: Duration) {
        self.base_ms.store(millis(base), Ordering::Relaxed);
    }

    /// Records a failed login from `ip`, for `user` when the client named one.
    pub(crate) fn failed(&self, ip: IpAddr, user: Option<&str>, now: Instant) {
        record(&self.failures, ip, now);
        if let Some(user) = user {
            record(&self.users, user.to_owned(), now);
        }
    }

    /// How long to hold the answer to a login attempt from `ip` for `user`.
    pub(crate) fn delay(&self, ip: IpAddr, user: Option<&str>, now: Instant) -> Duration {
        let base = Duration::from_millis(self.base_ms.load(Ordering::Relaxed));
        let by_address = recent(&self.failures, &ip, now)
            .map_or(Duration::ZERO, |n| doubled(base, n, MAX_DELAY));
        let by_user = user
            .and_then(|user| recent(&self.users, user, now))
            .and_then(|n| n.checked_sub(FREE_USER_FAILURES))
            .filter(|&n| n > 0)
            .map_or(Duration::ZERO, |n| doubled(base, n, MAX_USER_DELAY));
        by_address.max(by_user)
    }
}

/// `base` doubled for each failure after the first, at most `cap` (or `base` if it is more).
fn doubled(base: Duration, failures: u32, cap: Duration) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    base.saturating_mul(1 << doublings).min(cap.max(base))
}

fn record<K: std::hash::Hash + Eq>(map: &Mutex<HashMap<K, (u32, Instant)>>, key: K, now: Instant) {
    let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
    if map.len() >= TRACKED_ADDRESSES {
        map.retain(|_, (_, last)| now.duration_since(*last) < FORGET_AFTER);
        // Still full of fresh entries: a flood of made-up names or addresses. Memory stays
        // bounded; the delays start again from nothing, which the per-address counts of the
        // flood itself soon restore.
        if map.len() >= TRACKED_ADDRESSES {
            map.clear();
        }
    }
    let entry = map.entry(key).or_insert((0, now));
    if now.duration_since(entry.1) >= FORGET_AFTER {
        entry.0 = 0;
    }
    entry.0 = entry.0.saturating_add(1);
    entry.1 = now;
}

/// Failures of `key` within the quiet period, if any.
fn recent<K, Q>(map: &Mutex<HashMap<K, (u32, Instant)>>, key: &Q, now: Instant) -> Option<u32>
where
    K: std::borrow::Borrow<Q> + std::hash::Hash + Eq,
    Q: std::hash::Hash + Eq + ?Sized,
{
    let map = map.lock().unwrap_or_else(|e| e.into_inner());
    map.get(key)
        .filter(|(_, last)| now.duration_since(*last) < FORGET_AFTER)
        .map(|(count, _)| *count)
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The last successful login of each user, for LOGIN-DELAY.
#[derive(Debug, Default)]
pub(crate) struct LoginTimes {
    last: Mutex<HashMap<String, Instant>>,
}

impl LoginTimes {
    /// Records a login at `now` unless the previous one is less than `delay` ago.
    pub(crate) fn try_login(&self, user: &str, delay: Duration, now: Instant) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last
            .get(user)
            .is_some_and(|at| now.duration_since(*at) < delay)
        {
            return false;
        }
        if last.len() >= TRACKED_ADDRESSES {
            last.retain(|_, at| now.duration_since(*at) < delay);
        }
        last.insert(user.to_owned(), now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_are_forgotten() {
        let tracker = FailureTracker::new(Duration::from_secs(2));
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let start = Instant::now();
        assert_eq!(tracker.delay(ip, None, start), Duration::ZERO);
        let mut delays = Vec::new();
        for _ in 0..3 {
            tracker.failed(ip, None, start);
            delays.push(tracker.delay(ip, None, start).as_secs());
        }
        assert_eq!(delays, [2, 4, 8]);
        for _ in 0..20 {
            tracker.failed(ip, None, start);
        }
        assert_eq!(tracker.delay(ip, None, start), MAX_DELAY);
        assert_eq!(
            tracker.delay(ip, None, start + FORGET_AFTER * 2),
            Duration::ZERO
        );
    }

    #[test]
    fn a_user_under_attack_costs_its_owner_a_bounded_wait() {
        let tracker = FailureTracker::new(Duration::from_secs(2));
        let start = Instant::now();
        let owner: IpAddr = "198.51.100.1".parse().unwrap();
        for _ in 0..FREE_USER_FAILURES {
            tracker.failed(owner, Some("alice"), start);
        }
        let elsewhere: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(
            tracker.delay(elsewhere, Some("alice"), start),
            Duration::ZERO,
            "mistypes are free"
        );
        // Ten thousand guesses from as many addresses.
        for i in 0..10_000u32 {
            let attacker = IpAddr::from([10, (i >> 16) as u8, (i >> 8) as u8, i as u8]);
            tracker.failed(attacker, Some("alice"), start);
        }
        assert_eq!(
            tracker.delay(elsewhere, Some("alice"), start),
            MAX_USER_DELAY
        );
        assert_eq!(tracker.delay(elsewhere, Some("bob"), start), Duration::ZERO);
    }

    #[test]
    fn login_delay() {
        let times = LoginTimes::default();
        let now = Instant::now();
        assert!(times.try_login("a", Duration::from_secs(60), now));
        assert!(!times.try_login("a", Duration::from_secs(60), now + Duration::from_secs(10)));
        assert!(times.try_login("b", Duration::from_secs(60), now));
        assert!(times.try_login("a", Duration::from_secs(60), now + Duration::from_secs(61)));
    }
}
