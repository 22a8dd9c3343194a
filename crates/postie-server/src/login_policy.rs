//! Login policy, shared by all sessions of a server: the brute-force brake and LOGIN-DELAY.
//!
//! The policy (how long to hold an answer, given the failures counted) is [`FailureBrake`];
//! the counts and the last login times are kept by a [`LoginRecords`]: in this process
//! ([`LocalRecords`]), or in a database every front end shares, so that spreading attempts
//! over several front ends gains an attacker nothing.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures are forgotten after this long without a new one.
pub const FORGET_FAILURES_AFTER: Duration = Duration::from_secs(15 * 60);
const MAX_DELAY: Duration = Duration::from_secs(60);
/// The most a real user waits while someone else guesses their password from elsewhere.
const MAX_USER_DELAY: Duration = Duration::from_secs(10);
/// Failures of one user that cost nothing: the real user mistyping.
const FREE_USER_FAILURES: u32 = 3;
const TRACKED_ADDRESSES: usize = 100_000;

/// Failed logins within [`FORGET_FAILURES_AFTER`]: of one client address, and of one user
/// name from any address.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecentFailures {
    pub address: u32,
    pub user: u32,
}

/// The records could not be read or written (a database that does not answer).
#[derive(Debug, thiserror::Error)]
#[error("login records: {0}")]
pub struct LoginRecordsError(pub String);

/// What a [`LoginRecords`] call returns.
pub type RecordsFuture<'a, T> =
    Pin<Box<dyn Future<Output = Result<T, LoginRecordsError>> + Send + 'a>>;

/// Where the failure counts and the last login times are kept. One call per login attempt
/// reaches it (two with LOGIN-DELAY); nothing is held between calls, so a slow store of
/// records slows the logins waiting on it and serializes nothing else.
pub trait LoginRecords: Send + Sync + 'static {
    /// The recent failures of `ip`, and of `user` when the client named one.
    fn recent_failures<'a>(
        &'a self,
        ip: IpAddr,
        user: Option<&'a str>,
    ) -> RecordsFuture<'a, RecentFailures>;

    /// Counts a failure of `ip` (and of `user`); returns the recent failures before it.
    fn record_failure<'a>(
        &'a self,
        ip: IpAddr,
        user: Option<&'a str>,
    ) -> RecordsFuture<'a, RecentFailures>;

    /// Records a login of `user` now, unless the previous one is less than `delay` ago
    /// (then `false`, and nothing is recorded).
    fn try_login<'a>(&'a self, user: &'a str, delay: Duration) -> RecordsFuture<'a, bool>;
}

/// How long to hold the answer to a login attempt, given the failures before it: doubling
/// from the base delay with each recent failure of the address (capped at a minute), and,
/// after a few free ones, of the user from any address (capped lower, so an attacker cannot
/// lock the real user out). The answer is held whether the password was right or wrong: an
/// attacker who gives up waiting learns nothing, and cannot get around the delay by
/// reconnecting.
#[derive(Debug)]
pub(crate) struct FailureBrake {
    /// Milliseconds; changes on reload while the failures remembered stay.
    base_ms: AtomicU64,
}

impl FailureBrake {
    pub(crate) fn new(base: Duration) -> Self {
        FailureBrake {
            base_ms: AtomicU64::new(millis(base)),
        }
    }

    pub(crate) fn set_base(&self, base: Duration) {
        self.base_ms.store(millis(base), Ordering::Relaxed);
    }

    pub(crate) fn delay(&self, failures: RecentFailures) -> Duration {
        let base = Duration::from_millis(self.base_ms.load(Ordering::Relaxed));
        let by_address = match failures.address {
            0 => Duration::ZERO,
            n => doubled(base, n, MAX_DELAY),
        };
        let by_user = match failures.user.saturating_sub(FREE_USER_FAILURES) {
            0 => Duration::ZERO,
            n => doubled(base, n, MAX_USER_DELAY),
        };
        by_address.max(by_user)
    }
}

/// `base` doubled for each failure after the first, at most `cap` (or `base` if it is more).
fn doubled(base: Duration, failures: u32, cap: Duration) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    base.saturating_mul(1 << doublings).min(cap.max(base))
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The records of one process, for a server that is the only front end of its store. Memory
/// stays bounded: at most [`TRACKED_ADDRESSES`] entries per map.
#[derive(Debug, Default)]
pub struct LocalRecords {
    addresses: Mutex<HashMap<IpAddr, (u32, Instant)>>,
    users: Mutex<HashMap<String, (u32, Instant)>>,
    last_logins: Mutex<HashMap<String, Instant>>,
}

impl LocalRecords {
    fn recent_at(&self, ip: IpAddr, user: Option<&str>, now: Instant) -> RecentFailures {
        RecentFailures {
            address: recent(&self.addresses, &ip, now),
            user: user.map_or(0, |user| recent(&self.users, user, now)),
        }
    }

    fn record_at(&self, ip: IpAddr, user: Option<&str>, now: Instant) -> RecentFailures {
        let before = self.recent_at(ip, user, now);
        record(&self.addresses, ip, now);
        if let Some(user) = user {
            record(&self.users, user.to_owned(), now);
        }
        before
    }

    fn try_login_at(&self, user: &str, delay: Duration, now: Instant) -> bool {
        let mut last = self.last_logins.lock().unwrap_or_else(|e| e.into_inner());
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

impl LoginRecords for LocalRecords {
    fn recent_failures<'a>(
        &'a self,
        ip: IpAddr,
        user: Option<&'a str>,
    ) -> RecordsFuture<'a, RecentFailures> {
        let failures = self.recent_at(ip, user, Instant::now());
        Box::pin(async move { Ok(failures) })
    }

    fn record_failure<'a>(
        &'a self,
        ip: IpAddr,
        user: Option<&'a str>,
    ) -> RecordsFuture<'a, RecentFailures> {
        let before = self.record_at(ip, user, Instant::now());
        Box::pin(async move { Ok(before) })
    }

    fn try_login<'a>(&'a self, user: &'a str, delay: Duration) -> RecordsFuture<'a, bool> {
        let recorded = self.try_login_at(user, delay, Instant::now());
        Box::pin(async move { Ok(recorded) })
    }
}

fn record<K: std::hash::Hash + Eq>(map: &Mutex<HashMap<K, (u32, Instant)>>, key: K, now: Instant) {
    let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
    if map.len() >= TRACKED_ADDRESSES {
        map.retain(|_, (_, last)| now.duration_since(*last) < FORGET_FAILURES_AFTER);
        // Still full of fresh entries: a flood of made-up names or addresses. Memory stays
        // bounded; the delays start again from nothing, which the per-address counts of the
        // flood itself soon restore.
        if map.len() >= TRACKED_ADDRESSES {
            map.clear();
        }
    }
    let entry = map.entry(key).or_insert((0, now));
    if now.duration_since(entry.1) >= FORGET_FAILURES_AFTER {
        entry.0 = 0;
    }
    entry.0 = entry.0.saturating_add(1);
    entry.1 = now;
}

/// Failures of `key` within the quiet period (0 when none).
fn recent<K, Q>(map: &Mutex<HashMap<K, (u32, Instant)>>, key: &Q, now: Instant) -> u32
where
    K: std::borrow::Borrow<Q> + std::hash::Hash + Eq,
    Q: std::hash::Hash + Eq + ?Sized,
{
    let map = map.lock().unwrap_or_else(|e| e.into_inner());
    map.get(key)
        .filter(|(_, last)| now.duration_since(*last) < FORGET_FAILURES_AFTER)
        .map_or(0, |(count, _)| *count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_are_forgotten() {
        let brake = FailureBrake::new(Duration::from_secs(2));
        let records = LocalRecords::default();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let start = Instant::now();
        assert_eq!(
            brake.delay(records.recent_at(ip, None, start)),
            Duration::ZERO
        );
        let mut delays = Vec::new();
        for _ in 0..3 {
            records.record_at(ip, None, start);
            delays.push(brake.delay(records.recent_at(ip, None, start)).as_secs());
        }
        assert_eq!(delays, [2, 4, 8]);
        for _ in 0..20 {
            records.record_at(ip, None, start);
        }
        assert_eq!(brake.delay(records.recent_at(ip, None, start)), MAX_DELAY);
        let later = start + FORGET_FAILURES_AFTER * 2;
        assert_eq!(
            brake.delay(records.recent_at(ip, None, later)),
            Duration::ZERO
        );
    }

    #[test]
    fn recording_returns_the_failures_before_it() {
        let records = LocalRecords::default();
        let ip: IpAddr = "192.0.2.8".parse().unwrap();
        let now = Instant::now();
        assert_eq!(
            records.record_at(ip, Some("alice"), now),
            RecentFailures::default()
        );
        assert_eq!(
            records.record_at(ip, Some("alice"), now),
            RecentFailures {
                address: 1,
                user: 1
            }
        );
    }

    #[test]
    fn a_user_under_attack_costs_its_owner_a_bounded_wait() {
        let brake = FailureBrake::new(Duration::from_secs(2));
        let records = LocalRecords::default();
        let start = Instant::now();
        let owner: IpAddr = "198.51.100.1".parse().unwrap();
        for _ in 0..FREE_USER_FAILURES {
            records.record_at(owner, Some("alice"), start);
        }
        let elsewhere: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(
            brake.delay(records.recent_at(elsewhere, Some("alice"), start)),
            Duration::ZERO,
            "mistypes are free"
        );
        // Ten thousand guesses from as many addresses.
        for i in 0..10_000u32 {
            let attacker = IpAddr::from([10, (i >> 16) as u8, (i >> 8) as u8, i as u8]);
            records.record_at(attacker, Some("alice"), start);
        }
        assert_eq!(
            brake.delay(records.recent_at(elsewhere, Some("alice"), start)),
            MAX_USER_DELAY
        );
        assert_eq!(
            brake.delay(records.recent_at(elsewhere, Some("bob"), start)),
            Duration::ZERO
        );
    }

    #[test]
    fn login_delay() {
        let records = LocalRecords::default();
        let now = Instant::now();
        let minute = Duration::from_secs(60);
        assert!(records.try_login_at("a", minute, now));
        assert!(!records.try_login_at("a", minute, now + Duration::from_secs(10)));
        assert!(records.try_login_at("b", minute, now));
        assert!(records.try_login_at("a", minute, now + Duration::from_secs(61)));
    }
}
