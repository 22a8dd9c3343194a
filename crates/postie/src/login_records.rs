//! Where the POP3 server keeps its login records (brute-force counts, known networks,
//! LOGIN-DELAY's last logins): in the database when the store is PostgreSQL, so that every
//! front end of that store sees every attempt and every known network, and in the process
//! otherwise, with the known networks in the state directory.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use postie_server::{
    LocalRecords, LoginHistory, LoginRecords, LoginRecordsError, RecordsFuture,
    FORGET_FAILURES_AFTER, REMEMBER_NETWORKS_FOR,
};
use postie_store_pg::{LoginCounts, PgLoginState};

use crate::store::ConfiguredStore;

/// The file in the state directory that keeps the known networks of a Maildir server.
const KNOWN_NETWORKS_FILE: &str = "known-networks";

/// The records for a server on `store`.
pub fn open(store: &ConfiguredStore, state_dir: &Path) -> Result<Arc<dyn LoginRecords>> {
    Ok(match store {
        ConfiguredStore::Maildir(_) => {
            let path = state_dir.join(KNOWN_NETWORKS_FILE);
            let records = LocalRecords::with_state_file(path.clone()).with_context(|| {
                format!(
                    "cannot read the known networks in {}: fix its permissions, or remove it (users then wait for their address's failures once more)",
                    path.display()
                )
            })?;
            Arc::new(records)
        }
        ConfiguredStore::Postgres(store) => Arc::new(DatabaseRecords(state(store))),
    })
}

/// The shared login state of a database store, as the sweep also uses it.
pub fn state(store: &postie_store_pg::PgStore) -> PgLoginState {
    PgLoginState::new(
        store.pool().clone(),
        FORGET_FAILURES_AFTER,
        REMEMBER_NETWORKS_FOR,
    )
}

struct DatabaseRecords(PgLoginState);

impl LoginRecords for DatabaseRecords {
    fn history<'a>(
        &'a self,
        network: IpAddr,
        user: Option<&'a str>,
    ) -> RecordsFuture<'a, LoginHistory> {
        Box::pin(async move { history(self.0.history(network, user).await) })
    }

    fn record_failure<'a>(
        &'a self,
        network: IpAddr,
        user: Option<&'a str>,
    ) -> RecordsFuture<'a, LoginHistory> {
        Box::pin(async move { history(self.0.record_failure(network, user).await) })
    }

    fn record_success<'a>(&'a self, network: IpAddr, user: &'a str) -> RecordsFuture<'a, ()> {
        Box::pin(async move {
            self.0
                .record_success(network, user)
                .await
                .map_err(|e| LoginRecordsError(e.to_string()))
        })
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

fn history(
    counts: Result<LoginCounts, postie_store::StoreError>,
) -> Result<LoginHistory, LoginRecordsError> {
    counts
        .map(|counts| LoginHistory {
            address_failures: counts.address,
            user_failures: counts.user,
            known_network: counts.known_network,
        })
        .map_err(|e| LoginRecordsError(e.to_string()))
}

#[cfg(test)]
#[path = "../../postie-store-pg/tests/cluster/mod.rs"]
#[allow(dead_code)]
mod cluster;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_records_keep_the_contract() {
        let db = super::cluster::TestDb::new();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let store = postie_store_pg::PgStore::new(
                db.config().clone(),
                postie_store_pg::PgOptions::default(),
            );
            postie_server::records_contract::check(&DatabaseRecords(state(&store))).await;
        });
    }
}
