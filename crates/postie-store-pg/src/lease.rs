//! Exclusive sessions: a lease row per maildrop, with an expiry on the database's clock,
//! renewed by a background task while the session lives.
//!
//! A second exclusive open, from any front end, is refused while the lease is live; once it
//! has expired (its front end crashed or lost the database) another session takes it over,
//! and the old session's QUIT, which deletes the lease by its token in the same transaction
//! as its changes, finds it gone and changes nothing.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_postgres::{IsolationLevel, Transaction};

use crate::pool::Pool;
use crate::PgStore;

/// Takes the lease on `maildrop` for `token` if it is free, expired, or one of `takeable`
/// (leases this front end's sessions released without their delete having run yet).
pub(crate) async fn acquire(
    tx: &Transaction<'_>,
    maildrop: i64,
    token: i64,
    takeable: &[i64],
    ttl_secs: f64,
) -> Result<bool, tokio_postgres::Error> {
    let taken = tx
        .query_opt(
            "INSERT INTO leases (maildrop_id, token, expires_at)
             VALUES ($1, $2, now() + $3 * interval '1 second')
             ON CONFLICT (maildrop_id) DO UPDATE
             SET token = excluded.token, expires_at = excluded.expires_at
             WHERE leases.expires_at < now() OR leases.token = ANY($4)
             RETURNING token",
            &[&maildrop, &token, &ttl_secs, &takeable],
        )
        .await?;
    Ok(taken.is_some())
}

/// Deletes the lease if `token` still holds it; false when another session took it over.
pub(crate) async fn release(
    tx: &Transaction<'_>,
    maildrop: i64,
    token: i64,
) -> Result<bool, tokio_postgres::Error> {
    let deleted = tx
        .execute(
            "DELETE FROM leases WHERE maildrop_id = $1 AND token = $2",
            &[&maildrop, &token],
        )
        .await?;
    Ok(deleted == 1)
}

/// The tokens of `store`'s released leases whose rows may still be there.
pub(crate) fn takeable(store: &PgStore) -> Vec<i64> {
    lock(&store.released).iter().copied().collect()
}

fn lock(released: &Mutex<HashSet<i64>>) -> std::sync::MutexGuard<'_, HashSet<i64>> {
    released.lock().unwrap_or_else(|p| p.into_inner())
}

/// A live session's lease; dropping it stops the renewal and releases the lease.
pub(crate) struct Lease {
    pool: Pool,
    maildrop: i64,
    token: i64,
    renewal: JoinHandle<()>,
    released: Arc<Mutex<HashSet<i64>>>,
    /// QUIT deleted the row already.
    ended: bool,
}

impl Lease {
    /// Starts renewing the lease `token` just took, on the current runtime.
    pub(crate) fn start(store: &PgStore, maildrop: i64, token: i64) -> Lease {
        let pool = store.pool.clone();
        // An interval of zero would panic; a renewal per millisecond is already absurd.
        let every = store
            .options
            .lease_renew_every
            .max(Duration::from_millis(1));
        let ttl = store.options.lease_ttl.as_secs_f64();
        let renewal = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                match renew(&pool, maildrop, token, ttl).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(maildrop, "a session's lease was taken over");
                        return;
                    }
                    Err(e) => tracing::warn!(maildrop, error = %e, "renewing a lease"),
                }
            }
        });
        Lease {
            pool: store.pool.clone(),
            maildrop,
            token,
            renewal,
            released: Arc::clone(&store.released),
            ended: false,
        }
    }

    pub(crate) fn token(&self) -> i64 {
        self.token
    }

    pub(crate) fn ended_by_quit(mut self) {
        self.ended = true;
    }
}

async fn renew(
    pool: &Pool,
    maildrop: i64,
    token: i64,
    ttl_secs: f64,
) -> Result<bool, postie_store::StoreError> {
    pool.transaction(
        IsolationLevel::ReadCommitted,
        &(maildrop, token, ttl_secs),
        |tx, (maildrop, token, ttl)| {
            Box::pin(async move {
                let renewed = tx
                    .execute(
                        "UPDATE leases SET expires_at = now() + $3 * interval '1 second'
                         WHERE maildrop_id = $1 AND token = $2",
                        &[maildrop, token, ttl],
                    )
                    .await?;
                Ok(renewed == 1)
            })
        },
    )
    .await
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewal.abort();
        if self.ended {
            return;
        }
        // This front end may hand the maildrop to its next session at once; other front ends
        // wait for the delete below or, if it never runs (no runtime, a crash), the expiry.
        lock(&self.released).insert(self.token);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (pool, maildrop, token) = (self.pool.clone(), self.maildrop, self.token);
        let released = Arc::clone(&self.released);
        runtime.spawn(async move {
            let deleted = pool
                .transaction(
                    IsolationLevel::ReadCommitted,
                    &(maildrop, token),
                    |tx, (maildrop, token)| {
                        Box::pin(async move { Ok(release(tx, *maildrop, *token).await?) })
                    },
                )
                .await;
            if let Err(e) = deleted {
                tracing::warn!(maildrop, error = %e, "releasing a lease");
            }
            lock(&released).remove(&token);
        });
    }
}
