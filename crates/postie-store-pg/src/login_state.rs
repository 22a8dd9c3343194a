//! The login state front ends share (`migrations/0003_login_state.sql`,
//! `migrations/0006_known_networks.sql`): failed logins per client network and per user name,
//! and the networks each user logged in from, for the brute-force brake; each user's last
//! login, for LOGIN-DELAY. The policy itself (what a count costs) is the POP3 server's; this
//! keeps the records, one short transaction per call, locking only the rows of the network
//! and the user concerned, so logins of other users and networks never wait on each other.

use std::net::IpAddr;
use std::time::Duration;

use postie_store::StoreError;
use tokio_postgres::IsolationLevel;

use crate::pool::Pool;

/// What [`PgLoginState`] knows of a login attempt: recent failures of its network and of its
/// user name, and whether that user logged in from that network before.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoginCounts {
    pub address: u32,
    pub user: u32,
    pub known_network: bool,
}

/// The shared login state, over a pool of the store's.
#[derive(Clone)]
pub struct PgLoginState {
    pool: Pool,
    /// Failures are forgotten after this long without a new one.
    forget_after: Duration,
    /// A network a user logged in from is known for this long after the last such login.
    remember_networks_for: Duration,
}

/// The rows of the pair's known network, appended to a statement on `login_failures` whose
/// parameters are the network ($1), the user name ($2) and `remember_networks_for` ($4).
const KNOWN_NETWORK_ROW: &str = "
    UNION ALL
    SELECT 'known', 0 FROM known_networks
    WHERE user_name = $2 AND network = $1
      AND last_login > now() - $4 * interval '1 second'";

impl PgLoginState {
    pub fn new(pool: Pool, forget_after: Duration, remember_networks_for: Duration) -> Self {
        PgLoginState {
            pool,
            forget_after,
            remember_networks_for,
        }
    }

    /// The failures of `network` and of `user` within `forget_after`, and whether the pair is
    /// known.
    pub async fn history(
        &self,
        network: IpAddr,
        user: Option<&str>,
    ) -> Result<LoginCounts, StoreError> {
        let rows = self
            .login_rows(
                network,
                user,
                "SELECT kind, failures FROM login_failures
                 WHERE ((kind = 'address' AND subject = $1)
                        OR (kind = 'user' AND subject = $2))
                   AND last_at > now() - $3 * interval '1 second'",
            )
            .await?;
        Ok(counts(&rows))
    }

    /// Counts a failure of `network` (and of `user`) in one statement; returns what was known
    /// before it. A count quiet for `forget_after` starts again from one.
    pub async fn record_failure(
        &self,
        network: IpAddr,
        user: Option<&str>,
    ) -> Result<LoginCounts, StoreError> {
        // The address row before the user row: concurrent attempts lock in one order and
        // cannot deadlock.
        let rows = self
            .login_rows(
                network,
                user,
                "WITH counted AS (
                     INSERT INTO login_failures AS f (kind, subject, failures, last_at)
                     SELECT kind, subject, 1, now()
                     FROM (VALUES (1, 'address', $1::TEXT), (2, 'user', $2::TEXT))
                          AS v (rank, kind, subject)
                     WHERE subject IS NOT NULL
                     ORDER BY rank
                     ON CONFLICT (kind, subject) DO UPDATE
                     SET failures = CASE
                             WHEN f.last_at <= now() - $3 * interval '1 second' THEN 1
                             ELSE f.failures + 1
                         END,
                         last_at = now()
                     RETURNING kind, failures - 1 AS failures)
                 SELECT kind, failures FROM counted",
            )
            .await?;
        Ok(counts(&rows))
    }

    /// Runs `sql`, a statement on `login_failures` taking the network, the user name and
    /// `forget_after` in seconds, with [`KNOWN_NETWORK_ROW`] appended, and returns its
    /// `(kind, count)` rows.
    async fn login_rows(
        &self,
        network: IpAddr,
        user: Option<&str>,
        sql: &'static str,
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        let context = (
            network.to_string(),
            user,
            self.forget_after.as_secs_f64(),
            self.remember_networks_for.as_secs_f64(),
        );
        self.pool
            .transaction(
                IsolationLevel::ReadCommitted,
                &context,
                |tx, (network, user, forget, remember)| {
                    Box::pin(async move {
                        let sql = format!("{sql}{KNOWN_NETWORK_ROW}");
                        Ok(tx.query(&sql, &[network, user, forget, remember]).await?)
                    })
                },
            )
            .await
    }

    /// Remembers that `user` logged in from `network` now (to the hour: a login within an
    /// hour of the last one changes nothing when no failure is to be halved), and halves the
    /// user's failure count (a count of one is forgotten). The pair's first success within
    /// `forget_after` halves the network's count too; later ones in that window do not.
    pub async fn record_success(&self, network: IpAddr, user: &str) -> Result<(), StoreError> {
        let context = (network.to_string(), user, self.forget_after.as_secs_f64());
        self.pool
            .transaction(
                IsolationLevel::ReadCommitted,
                &context,
                |tx, (network, user, forget)| {
                    Box::pin(async move {
                        // Most logins are of a pair known and credited lately, by a user
                        // with no failures: nothing to write, and a transaction that writes
                        // nothing commits without waiting for a WAL flush.
                        let settled: Option<bool> = tx
                            .query_opt(
                                "SELECT k.last_login > now() - interval '1 hour'
                                        AND k.credited_at > now() - $3 * interval '1 second'
                                        AND NOT EXISTS (
                                            SELECT 1 FROM login_failures
                                            WHERE kind = 'user' AND subject = $1)
                                 FROM known_networks k
                                 WHERE k.user_name = $1 AND k.network = $2",
                                &[user, network, forget],
                            )
                            .await?
                            .map(|row| row.get(0));
                        if settled == Some(true) {
                            return Ok(());
                        }
                        let credited: bool = tx
                            .query_one(
                                "INSERT INTO known_networks AS k
                                     (user_name, network, last_login, credited_at)
                                 VALUES ($1, $2, now(), now())
                                 ON CONFLICT (user_name, network) DO UPDATE
                                 SET last_login = now(),
                                     credited_at = CASE
                                         WHEN k.credited_at <= now() - $3 * interval '1 second'
                                         THEN now()
                                         ELSE k.credited_at
                                     END
                                 RETURNING credited_at = now()",
                                &[user, network, forget],
                            )
                            .await?
                            .get(0);
                        let halved: &[(&str, &str)] = if credited {
                            &[("user", *user), ("address", network.as_str())]
                        } else {
                            &[("user", *user)]
                        };
                        // The address row before the user row, as failures lock them.
                        for (kind, subject) in halved.iter().rev() {
                            tx.execute(
                                "DELETE FROM login_failures
                                 WHERE kind = $1 AND subject = $2 AND failures < 2",
                                &[kind, subject],
                            )
                            .await?;
                            tx.execute(
                                "UPDATE login_failures SET failures = failures / 2
                                 WHERE kind = $1 AND subject = $2",
                                &[kind, subject],
                            )
                            .await?;
                        }
                        Ok(())
                    })
                },
            )
            .await
    }

    /// Records a login of `user` now unless the previous one is less than `delay` ago; one
    /// statement, so two front ends racing for the same user let exactly one through.
    pub async fn try_login(&self, user: &str, delay: Duration) -> Result<bool, StoreError> {
        let context = (user, delay.as_secs_f64());
        let recorded = self
            .pool
            .transaction(
                IsolationLevel::ReadCommitted,
                &context,
                |tx, (user, delay)| {
                    Box::pin(async move {
                        Ok(tx
                            .execute(
                                "INSERT INTO last_logins AS l (user_name, at) VALUES ($1, now())
                                 ON CONFLICT (user_name) DO UPDATE SET at = now()
                                 WHERE l.at <= now() - $2 * interval '1 second'",
                                &[user, delay],
                            )
                            .await?)
                    })
                },
            )
            .await?;
        Ok(recorded == 1)
    }

    /// Deletes up to `batch` failure counts quiet for longer than `forget_after`, and up to
    /// `batch` known networks not logged in from for `remember_networks_for`; returns how
    /// many rows. Any front end may run it, in small batches, with the store's sweep.
    pub async fn forget_stale(&self, batch: u32) -> Result<u64, StoreError> {
        let context = (
            i64::from(batch),
            self.forget_after.as_secs_f64(),
            self.remember_networks_for.as_secs_f64(),
        );
        self.pool
            .transaction(
                IsolationLevel::ReadCommitted,
                &context,
                |tx, (batch, forget, remember)| {
                    Box::pin(async move {
                        let failures = tx
                            .execute(
                                "DELETE FROM login_failures WHERE (kind, subject) IN (
                                     SELECT kind, subject FROM login_failures
                                     WHERE last_at <= now() - $2 * interval '1 second'
                                     LIMIT $1)",
                                &[batch, forget],
                            )
                            .await?;
                        let networks = tx
                            .execute(
                                "DELETE FROM known_networks WHERE (user_name, network) IN (
                                     SELECT user_name, network FROM known_networks
                                     WHERE last_login <= now() - $2 * interval '1 second'
                                     LIMIT $1)",
                                &[batch, remember],
                            )
                            .await?;
                        Ok(failures + networks)
                    })
                },
            )
            .await
    }
}

/// The counts in rows of (kind, count): `address` and `user` failures, `known` when the pair
/// is known.
fn counts(rows: &[tokio_postgres::Row]) -> LoginCounts {
    let mut counts = LoginCounts::default();
    for row in rows {
        let count = u32::try_from(row.get::<_, i32>(1)).unwrap_or(0);
        match row.get::<_, &str>(0) {
            "address" => counts.address = count,
            "user" => counts.user = count,
            _ => counts.known_network = true,
        }
    }
    counts
}
