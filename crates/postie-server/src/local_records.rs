//! The login records of one process, for a server that is the only front end of its store:
//! failure counts in memory (bounded, see `failure_counts.rs`), known networks in memory and
//! in a state file (`known_networks.rs`), last logins for LOGIN-DELAY.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tracing::warn;

use crate::failure_counts::FailureCounts;
use crate::known_networks::{FileWrite, KnownNetworks};
use crate::login_policy::{LoginHistory, LoginRecords, RecordsFuture};

/// Entries per map: a few tens of megabytes at most.
const TRACKED: usize = 100_000;

#[derive(Debug)]
pub struct LocalRecords {
    networks: Mutex<FailureCounts<IpAddr>>,
    users: Mutex<FailureCounts<String>>,
    known: Mutex<KnownNetworks>,
    /// The generation of the known networks last written, held while writing.
    written: Arc<Mutex<u64>>,
    last_logins: Mutex<HashMap<String, Instant>>,
}

impl Default for LocalRecords {
    /// Records that forget the known networks when the process ends.
    fn default() -> Self {
        LocalRecords::with_known(KnownNetworks::in_memory(TRACKED))
    }
}

impl LocalRecords {
    /// Records that keep the known networks in `path` (read now, written as they change).
    pub fn with_state_file(path: PathBuf) -> io::Result<Self> {
        Ok(LocalRecords::with_known(KnownNetworks::load(
            path, TRACKED,
        )?))
    }

    fn with_known(known: KnownNetworks) -> Self {
        LocalRecords {
            networks: Mutex::new(FailureCounts::new(TRACKED)),
            users: Mutex::new(FailureCounts::new(TRACKED)),
            known: Mutex::new(known),
            written: Arc::new(Mutex::new(0)),
            last_logins: Mutex::new(HashMap::new()),
        }
    }

    fn history_at(&self, network: IpAddr, user: Option<&str>, now: Instant) -> LoginHistory {
        LoginHistory {
            address_failures: lock(&self.networks).recent(&network, now),
            user_failures: user.map_or(0, |user| lock(&self.users).recent(user, now)),
            known_network: user
                .is_some_and(|user| lock(&self.known).is_known(user, network, SystemTime::now())),
        }
    }

    fn record_failure_at(&self, network: IpAddr, user: Option<&str>, now: Instant) -> LoginHistory {
        let before = self.history_at(network, user, now);
        lock(&self.networks).record(network, now);
        if let Some(user) = user {
            lock(&self.users).record(user.to_owned(), now);
        }
        before
    }

    fn record_success_at(&self, network: IpAddr, user: &str, now: SystemTime) {
        lock(&self.users).halve(user);
        if lock(&self.known).remember(user, network, now) {
            lock(&self.networks).halve(&network);
        }
    }

    fn try_login_at(&self, user: &str, delay: Duration, now: Instant) -> bool {
        let mut last = lock(&self.last_logins);
        if last
            .get(user)
            .is_some_and(|at| now.duration_since(*at) < delay)
        {
            return false;
        }
        if last.len() >= TRACKED {
            last.retain(|_, at| now.duration_since(*at) < delay);
        }
        last.insert(user.to_owned(), now);
        true
    }

    /// Writes the known networks on the blocking pool if they changed and are due.
    fn write_known_if_due(&self) {
        let Some(write) = lock(&self.known).due_write(Instant::now(), false) else {
            return;
        };
        let written = Arc::clone(&self.written);
        tokio::task::spawn_blocking(move || apply(write, &written));
    }
}

fn apply(write: FileWrite, written: &Mutex<u64>) {
    let path = write.path.clone();
    if let Err(error) = write.apply(&mut lock(written)) {
        warn!(
            path = %path.display(),
            %error,
            "cannot save the known networks (kept in memory; fix the state directory's permissions or space)"
        );
    }
}

impl Drop for LocalRecords {
    fn drop(&mut self) {
        if let Some(write) = lock(&self.known).due_write(Instant::now(), true) {
            apply(write, &self.written);
        }
    }
}

impl LoginRecords for LocalRecords {
    fn history<'a>(
        &'a self,
        network: IpAddr,
        user: Option<&'a str>,
    ) -> RecordsFuture<'a, LoginHistory> {
        let history = self.history_at(network, user, Instant::now());
        self.write_known_if_due();
        Box::pin(async move { Ok(history) })
    }

    fn record_failure<'a>(
        &'a self,
        network: IpAddr,
        user: Option<&'a str>,
    ) -> RecordsFuture<'a, LoginHistory> {
        let before = self.record_failure_at(network, user, Instant::now());
        Box::pin(async move { Ok(before) })
    }

    fn record_success<'a>(&'a self, network: IpAddr, user: &'a str) -> RecordsFuture<'a, ()> {
        self.record_success_at(network, user, SystemTime::now());
        self.write_known_if_due();
        Box::pin(async move { Ok(()) })
    }

    fn try_login<'a>(&'a self, user: &'a str, delay: Duration) -> RecordsFuture<'a, bool> {
        let recorded = self.try_login_at(user, delay, Instant::now());
        Box::pin(async move { Ok(recorded) })
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recording_returns_the_history_before_it() {
        let records = LocalRecords::default();
        let network: IpAddr = "192.0.2.8".parse().unwrap();
        let now = Instant::now();
        assert_eq!(
            records.record_failure_at(network, Some("alice"), now),
            LoginHistory::default()
        );
        assert_eq!(
            records.record_failure_at(network, Some("alice"), now),
            LoginHistory {
                address_failures: 1,
                user_failures: 1,
                known_network: false,
            }
        );
    }

    #[test]
    fn a_success_makes_the_pair_known_and_halves_the_address_once_per_user() {
        let records = LocalRecords::default();
        let network: IpAddr = "192.0.2.9".parse().unwrap();
        let now = Instant::now();
        for _ in 0..8 {
            records.record_failure_at(network, Some("mallory"), now);
        }
        for _ in 0..3 {
            records.record_failure_at(network, Some("alice"), now);
        }
        let history = records.history_at(network, Some("alice"), now);
        assert_eq!(history.address_failures, 11);
        let wall = SystemTime::now();
        for _ in 0..5 {
            records.record_success_at(network, "alice", wall);
        }
        let history = records.history_at(network, Some("alice"), now);
        assert!(history.known_network);
        assert_eq!(history.address_failures, 5, "one halving for alice");
        assert_eq!(history.user_failures, 0, "halved at every success of hers");
        records.record_success_at(network, "bob", wall);
        assert_eq!(records.history_at(network, None, now).address_failures, 2);
        assert!(
            !records
                .history_at(network, Some("carol"), now)
                .known_network
        );
    }

    #[tokio::test]
    async fn local_records_keep_the_contract() {
        crate::records_contract::check(&LocalRecords::default()).await;
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
