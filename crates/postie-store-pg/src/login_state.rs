//! The login state front ends share (`migrations/0003_login_state.sql`): failed logins per
//! client address and per user name, for the brute-force brake, and each user's last login,
//! for LOGIN-DELAY. The policy itself (what a count costs) is the POP3 server's; this keeps
//! the counts, one short transaction per call, locking only the rows of the address and the
//! user concerned, so logins of other users and addresses never wait on each other.

use std::net::IpAddr;
use std::time::Duration;

use postie_store::StoreError;
use tokio_postgres::IsolationLevel;

use crate::pool::Pool;

/// Recent failures of an address and of a user name, as [`PgLoginState`] counts them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FailureCounts {
    pub address: u32,
    pub user: u32,
}

/// The shared login state, over a pool of the store's.
#[derive(Clone)]
pub struct PgLoginState {
    pool: Pool,
    /// Failures are forgotten after this long without a new one.
    forget_after: Duration,
}

impl PgLoginState {
    pub fn new(pool: Pool, forget_after: Duration) -> Self {
        PgLoginState { pool, forget_after }
    }

    /// The failures of `ip` and of `user` within `forget_after`.
    pub async fn recent_failures(
        &self,
        ip: IpAddr,
        user: Option<&str>,
    ) -> Result<FailureCounts, StoreError> {
        let rows = self
            .failure_rows(
                ip,
                user,
                "SELECT kind, failures FROM login_failures
             WHERE ((kind = 'address' AND subject = $1)
                    OR (kind = 'user' AND subject = $2))
               AND last_at > now() - $3 * interval '1 second'",
            )
            .await?;
        Ok(counts(&rows, 0))
    }

    /// Counts a failure of `ip` (and of `user`) in one statement; returns the failures before
    /// it. A count quiet for `forget_after` starts again from one.
    pub async fn record_failure(
        &self,
        ip: IpAddr,
        user: Option<&str>,
    ) -> Result<FailureCounts, StoreError> {
        // The address row before the user row: concurrent attempts lock in one order and
        // cannot deadlock.
        let rows = self
            .failure_rows(
                ip,
                user,
                "INSERT INTO login_failures AS f (kind, subject, failures, last_at)
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
             RETURNING kind, failures",
            )
            .await?;
        Ok(counts(&rows, 1))
    }

    /// Runs `sql`, a statement on `login_failures` taking the address, the user name and
    /// `forget_after` in seconds, and returns its `(kind, failures)` rows.
    async fn failure_rows(
        &self,
        ip: IpAddr,
        user: Option<&str>,
        sql: &'static str,
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        let context = (ip.to_string(), user, self.forget_after.as_secs_f64());
        self.pool
            .transaction(
                IsolationLevel::ReadCommitted,
                &context,
                |tx, (address, user, forget)| {
                    Box::pin(async move { Ok(tx.query(sql, &[address, user, forget]).await?) })
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

    /// Deletes up to `batch` failure counts quiet for longer than `forget_after`; returns how
    /// many. Any front end may run it, in small batches, with the store's sweep.
    pub async fn forget_stale(&self, batch: u32) -> Result<u64, StoreError> {
        let context = (i64::from(batch), self.forget_after.as_secs_f64());
        self.pool
            .transaction(
                IsolationLevel::ReadCommitted,
                &context,
                |tx, (batch, forget)| {
                    Box::pin(async move {
                        Ok(tx
                            .execute(
                                "DELETE FROM login_failures WHERE (kind, subject) IN (
                                     SELECT kind, subject FROM login_failures
                                     WHERE last_at <= now() - $2 * interval '1 second'
                                     LIMIT $1)",
                                &[batch, forget],
                            )
                            .await?)
                    })
                },
            )
            .await
    }
}

/// The counts in rows of (kind, failures), each less `minus` (what a row's count was before
/// the statement that returned it).
fn counts(rows: &[tokio_postgres::Row], minus: i32) -> FailureCounts {
    let mut counts = FailureCounts::default();
    for row in rows {
        let count = u32::try_from(row.get::<_, i32>(1) - minus).unwrap_or(0);
        match row.get::<_, &str>(0) {
            "address" => counts.address = count,
            _ => counts.user = count,
        }
    }
    counts
}
