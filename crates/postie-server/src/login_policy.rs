//! Login policy, shared by all sessions of a server: the brute-force brake and LOGIN-DELAY.
//!
//! The policy (how long to hold an answer, given what is known of the attempt) is
//! [`FailureBrake`]; the failure counts, the networks each user logged in from and the last
//! login times are kept by a [`LoginRecords`]: in this process ([`crate::LocalRecords`]), or in
//! a database every front end shares, so that spreading attempts over several front ends gains
//! an attacker nothing.
//!
//! The brake holds attackers, not the people who share their network: a user answering from
//! a network they logged in from before (a known pair) waits only for their own user's recent
//! failures, whatever the rest of the address does; everyone else also waits for the
//! address's failures (at most [`MAX_ADDRESS_DELAY`]) and, while failures across all users
//! come faster than the spraying rate, for a raised delay.

use std::future::Future;
use std::net::{IpAddr, Ipv6Addr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use postie_proto::proxy::ProxyNetworks;

use crate::spray::SprayGauge;

/// Failures are forgotten after this long without a new one. It is also the window in which
/// one user's success lowers an address's count at most once.
pub const FORGET_FAILURES_AFTER: Duration = Duration::from_secs(15 * 60);
/// How long a network a user logged in from stays known without a new login from it.
pub const REMEMBER_NETWORKS_FOR: Duration = Duration::from_secs(30 * 24 * 3600);
/// The most an address's failures (or spraying) hold an attempt from an unknown network:
/// Dovecot's cap, well under the minute after which mail clients give up.
pub const MAX_ADDRESS_DELAY: Duration = Duration::from_secs(15);
/// The most a real user waits while someone else guesses their password.
pub const MAX_USER_DELAY: Duration = Duration::from_secs(10);
/// Failures of one user that cost nothing: the real user mistyping.
const FREE_USER_FAILURES: u32 = 3;

/// What the records know of a login attempt, before it is decided: the recent failures of
/// its network and of the user name it claims (within [`FORGET_FAILURES_AFTER`]), and whether
/// that user logged in from that network before (within [`REMEMBER_NETWORKS_FOR`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoginHistory {
    pub address_failures: u32,
    pub user_failures: u32,
    pub known_network: bool,
}

/// The records could not be read or written (a database that does not answer).
#[derive(Debug, thiserror::Error)]
#[error("login records: {0}")]
pub struct LoginRecordsError(pub String);

/// What a [`LoginRecords`] call returns.
pub type RecordsFuture<'a, T> =
    Pin<Box<dyn Future<Output = Result<T, LoginRecordsError>> + Send + 'a>>;

/// Where failure counts, known networks and last login times are kept. `network` is always
/// the client's network as [`BrakeSettings::network_of`] gives it (an IPv4 address, an IPv6
/// prefix). Two or three calls per login attempt reach it; nothing is held between calls, so
/// a slow store of records slows the logins waiting on it and serializes nothing else.
pub trait LoginRecords: Send + Sync + 'static {
    /// What is known of an attempt from `network` for `user`, when the client named one.
    fn history<'a>(
        &'a self,
        network: IpAddr,
        user: Option<&'a str>,
    ) -> RecordsFuture<'a, LoginHistory>;

    /// Counts a failure of `network` (and of `user`); returns the history before it.
    fn record_failure<'a>(
        &'a self,
        network: IpAddr,
        user: Option<&'a str>,
    ) -> RecordsFuture<'a, LoginHistory>;

    /// Remembers that `user` logged in from `network`, and halves the user's failure count
    /// (only the password's owner can log in, so a guesser cannot use this). The first such
    /// success of this pair within [`FORGET_FAILURES_AFTER`] also halves the network's count;
    /// later ones in the same window do not, so one valid account cannot keep an address's
    /// count down while it guesses others.
    fn record_success<'a>(&'a self, network: IpAddr, user: &'a str) -> RecordsFuture<'a, ()>;

    /// Records a login of `user` now, unless the previous one is less than `delay` ago
    /// (then `false`, and nothing is recorded).
    fn try_login<'a>(&'a self, user: &'a str, delay: Duration) -> RecordsFuture<'a, bool>;
}

/// `[auth]`'s brake settings besides the base delay.
#[derive(Debug, Clone)]
pub struct BrakeSettings {
    /// IPv6 clients are counted by this prefix (a /64 is what one subscriber gets).
    pub ipv6_prefix: u8,
    /// Addresses never delayed for the failures of others (a webmail, an internal relay).
    pub trusted_networks: ProxyNetworks,
    /// Failures per minute across all users above which attempts from unknown networks
    /// wait longer (password spraying).
    pub spray_failures_per_minute: u32,
}

impl Default for BrakeSettings {
    fn default() -> Self {
        BrakeSettings {
            ipv6_prefix: 64,
            trusted_networks: ProxyNetworks::default(),
            spray_failures_per_minute: 60,
        }
    }
}

impl BrakeSettings {
    /// The network `ip` is counted as: an IPv4 address itself (also seen as `::ffff:a.b.c.d`),
    /// an IPv6 address cut to its prefix.
    pub fn network_of(&self, ip: IpAddr) -> IpAddr {
        match ip.to_canonical() {
            IpAddr::V4(v4) => IpAddr::V4(v4),
            IpAddr::V6(v6) => {
                let bits = u32::from(self.ipv6_prefix.min(128));
                let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
            }
        }
    }
}

/// How long to hold the answer to a login attempt. From a known network: the user's own
/// recent failures after a few free ones, doubling from the base delay up to
/// [`MAX_USER_DELAY`]. From elsewhere, also the network's failures, doubling up to
/// [`MAX_ADDRESS_DELAY`], and the spraying delay; trusted networks skip those two. The
/// answer is held whether the password was right or wrong (whether the pair is known does
/// not depend on the password): an attacker who gives up waiting learns nothing, and cannot
/// get around the delay by reconnecting.
#[derive(Debug)]
pub(crate) struct FailureBrake {
    /// Milliseconds; changes on reload while the failures remembered stay.
    base_ms: AtomicU64,
    spray: SprayGauge,
}

impl FailureBrake {
    pub(crate) fn new(base: Duration) -> Self {
        FailureBrake {
            base_ms: AtomicU64::new(millis(base)),
            spray: SprayGauge::default(),
        }
    }

    pub(crate) fn set_base(&self, base: Duration) {
        self.base_ms.store(millis(base), Ordering::Relaxed);
    }

    /// Counts a failed login towards the spraying rate.
    pub(crate) fn failed(&self, now: Instant) {
        self.spray.count(now);
    }

    pub(crate) fn delay(
        &self,
        history: LoginHistory,
        trusted: bool,
        settings: &BrakeSettings,
        now: Instant,
    ) -> Duration {
        let base = Duration::from_millis(self.base_ms.load(Ordering::Relaxed));
        let by_user = match history.user_failures.saturating_sub(FREE_USER_FAILURES) {
            0 => Duration::ZERO,
            n => doubled(base, n, MAX_USER_DELAY),
        };
        if history.known_network || trusted {
            return by_user;
        }
        let by_address = match history.address_failures {
            0 => Duration::ZERO,
            n => doubled(base, n, MAX_ADDRESS_DELAY),
        };
        let by_spraying = match self.spray.level(now, settings.spray_failures_per_minute) {
            0 => Duration::ZERO,
            level => doubled(base, level, MAX_ADDRESS_DELAY),
        };
        by_user.max(by_address).max(by_spraying)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn history(address_failures: u32, user_failures: u32, known_network: bool) -> LoginHistory {
        LoginHistory {
            address_failures,
            user_failures,
            known_network,
        }
    }

    #[test]
    fn an_unknown_network_waits_for_the_address_up_to_fifteen_seconds() {
        let brake = FailureBrake::new(Duration::from_secs(2));
        let settings = BrakeSettings::default();
        let now = Instant::now();
        let delays: Vec<u64> = (0..6)
            .map(|n| {
                brake
                    .delay(history(n, 0, false), false, &settings, now)
                    .as_secs()
            })
            .collect();
        assert_eq!(delays, [0, 2, 4, 8, 15, 15]);
    }

    #[test]
    fn a_known_network_or_a_trusted_one_waits_only_for_the_users_own_failures() {
        let brake = FailureBrake::new(Duration::from_secs(2));
        let settings = BrakeSettings::default();
        let now = Instant::now();
        assert_eq!(
            brake.delay(history(40, 0, true), false, &settings, now),
            Duration::ZERO
        );
        assert_eq!(
            brake.delay(history(40, 3, false), true, &settings, now),
            Duration::ZERO,
            "mistypes are free"
        );
        assert_eq!(
            brake.delay(history(40, 40, true), false, &settings, now),
            MAX_USER_DELAY
        );
    }

    #[test]
    fn spraying_raises_the_delay_of_unknown_networks_only() {
        let brake = FailureBrake::new(Duration::from_secs(1));
        let settings = BrakeSettings {
            spray_failures_per_minute: 10,
            ..BrakeSettings::default()
        };
        let now = Instant::now();
        for _ in 0..10 {
            brake.failed(now);
        }
        let fresh = history(0, 0, false);
        assert_eq!(brake.delay(fresh, false, &settings, now), Duration::ZERO);
        for _ in 0..30 {
            brake.failed(now);
        }
        assert_eq!(
            brake.delay(fresh, false, &settings, now),
            Duration::from_secs(4),
            "four times the rate: two doublings"
        );
        assert_eq!(
            brake.delay(history(0, 0, true), false, &settings, now),
            Duration::ZERO
        );
        assert_eq!(brake.delay(fresh, true, &settings, now), Duration::ZERO);
    }

    #[test]
    fn ipv6_is_counted_by_prefix_and_ipv4_by_address() {
        let settings = BrakeSettings::default();
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        assert_eq!(settings.network_of(a), settings.network_of(b));
        assert_eq!(
            settings.network_of(a),
            "2001:db8:1:2::".parse::<IpAddr>().unwrap()
        );
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(
            settings.network_of(mapped),
            "192.0.2.7".parse::<IpAddr>().unwrap()
        );
        let whole = BrakeSettings {
            ipv6_prefix: 128,
            ..BrakeSettings::default()
        };
        assert_ne!(whole.network_of(a), whole.network_of(b));
    }
}
