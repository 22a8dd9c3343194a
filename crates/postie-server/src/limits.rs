//! Connection limits and the brute-force brake, shared by all sessions of a server.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Counts open connections in total and per client address.
#[derive(Debug)]
pub(crate) struct ConnectionLimits {
    max_total: usize,
    max_per_ip: usize,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// A slot held for the life of one connection.
pub(crate) struct ConnectionSlot {
    limits: Arc<ConnectionLimits>,
    ip: IpAddr,
}

/// Why a connection was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    ServerFull,
    AddressFull,
}

impl ConnectionLimits {
    pub(crate) fn new(max_total: usize, max_per_ip: usize) -> Arc<Self> {
        Arc::new(ConnectionLimits {
            max_total,
            max_per_ip,
            open: Mutex::new((0, HashMap::new())),
        })
    }

    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionSlot, Refusal> {
        let mut guard = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let (total, per_ip) = &mut *guard;
        if *total >= self.max_total {
            return Err(Refusal::ServerFull);
        }
        let count = per_ip.entry(ip).or_insert(0);
        if *count >= self.max_per_ip {
            return Err(Refusal::AddressFull);
        }
        *count += 1;
        *total += 1;
        Ok(ConnectionSlot {
            limits: Arc::clone(self),
            ip,
        })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut guard = self.limits.open.lock().unwrap_or_else(|e| e.into_inner());
        let (total, per_ip) = &mut *guard;
        *total -= 1;
        if let Some(count) = per_ip.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}

/// Remembers failed logins per client address, so the delay grows for an address that keeps
/// failing (doubling from the base delay, capped), and is forgotten after a quiet period.
#[derive(Debug)]
pub(crate) struct FailureTracker {
    base: Duration,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
const MAX_DELAY: Duration = Duration::from_secs(60);
const TRACKED_ADDRESSES: usize = 100_000;

impl FailureTracker {
    pub(crate) fn new(base: Duration) -> Self {
        FailureTracker {
            base,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Records a failure and returns how long to wait before answering it.
    pub(crate) fn failed(&self, ip: IpAddr, now: Instant) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if failures.len() >= TRACKED_ADDRESSES {
            failures.retain(|_, (_, last)| now.duration_since(*last) < FORGET_AFTER);
        }
        let entry = failures.entry(ip).or_insert((0, now));
        if now.duration_since(entry.1) >= FORGET_AFTER {
            entry.0 = 0;
        }
        entry.0 = entry.0.saturating_add(1);
        entry.1 = now;
        let doublings = (entry.0 - 1).min(16);
        self.base
            .saturating_mul(1 << doublings)
            .min(MAX_DELAY.max(self.base))
    }
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
    fn per_address_and_total_limits() {
        let limits = ConnectionLimits::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = limits.admit(a).unwrap();
        let _second = limits.admit(a).unwrap();
        assert_eq!(limits.admit(a).err(), Some(Refusal::AddressFull));
        let _third = limits.admit(b).unwrap();
        assert_eq!(limits.admit(b).err(), Some(Refusal::ServerFull));
        drop(first);
        assert!(limits.admit(a).is_ok());
    }

    #[test]
    fn delays_grow_and_are_forgotten() {
        let tracker = FailureTracker::new(Duration::from_secs(2));
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let start = Instant::now();
        assert_eq!(tracker.failed(ip, start), Duration::from_secs(2));
        assert_eq!(tracker.failed(ip, start), Duration::from_secs(4));
        assert_eq!(tracker.failed(ip, start), Duration::from_secs(8));
        for _ in 0..20 {
            tracker.failed(ip, start);
        }
        assert_eq!(tracker.failed(ip, start), MAX_DELAY);
        assert_eq!(
            tracker.failed(ip, start + FORGET_AFTER * 2),
            Duration::from_secs(2)
        );
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
