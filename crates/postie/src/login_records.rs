//! Where the POP3 server keeps its login records (brute-force counts, LOGIN-DELAY's last
//! logins): in the database when the store is PostgreSQL, so that every front end of that
//! store sees every attempt, and in the process otherwise.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use postie_server::{
    LocalRecords, LoginRecords, LoginRecordsError, RecentFailures, RecordsFuture,
    FORGET_FAILURES_AFTER,
};
use postie_store_pg::{FailureCounts, PgLoginState};

use crate::store::ConfiguredStore;

/// The records for a server on `store`.
pub fn open(store: &ConfiguredStore) -> Arc<dyn LoginRecords> {
    match store {
        ConfiguredStore::Maildir(_) => Arc::new(LocalRecords::default()),
        ConfiguredStore::Postgres(store) => Arc::new(DatabaseRecords(state(store))),
    }
}

/// The shared login state of a database store, as the sweep also uses it.
pub fn state(store: &postie_store_pg::PgStore) -> PgLoginState {
    PgLoginState::new(store.pool().clone(), FORGET_FAILURES_AFTER)
}

struct DatabaseRecords(PgLoginState);

impl LoginRecords for DatabaseRecords {
    fn recent_failures<'a>(
        &'a self,
        ip: IpAddr,
        user: Option<&'a str>,
    ) -> RecordsFuture<'a, RecentFailures> {
        Box::pin(async move { recent(self.0.recent_failures(ip, user).await) })
    }

    fn record_failure<'a>(
        &'a self,
        ip: IpAddr,
        user: Option<&'a str>,
    ) -> RecordsFuture<'a, RecentFailures> {
        Box::pin(async move { recent(self.0.record_failure(ip, user).await) })
    }

    fn try_login<'a>(&'a self, user: &'a str, delay: Duration) -> RecordsFuture<'a, bool> {
        Box::pin(async move {
            self.0
                .try_login(user, delay)
                .await
                .map_err(|e| LoginRecordsError(e.to_string()))
        })
    }
}

fn recent(
    counts: Result<FailureCounts, postie_store::StoreError>,
) -> Result<RecentFailures, LoginRecordsError> {
    counts
        .map(|counts| RecentFailures {
            address: counts.address,
            user: counts.user,
        })
        .map_err(|e| LoginRecordsError(e.to_string()))
}
