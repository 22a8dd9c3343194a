//! Each user's POP3 settings in `pop_settings` (`migrations/0008_pop_settings.sql`). Sessions
//! read them with their snapshot (`maildrop.rs`), in the same statement.

use std::time::SystemTime;

use postie_store::{AfterRetrieval, PopSettings, StoreError};
use tokio_postgres::IsolationLevel;

use crate::PgStore;

pub(crate) async fn get(store: &PgStore, user: &str) -> Result<PopSettings, StoreError> {
    let row = store
        .pool
        .transaction(IsolationLevel::ReadCommitted, user, |tx, user| {
            Box::pin(async move {
                Ok(tx
                    .query_opt(
                        "SELECT since, after_retrieval FROM pop_settings WHERE user_name = $1",
                        &[&user],
                    )
                    .await?)
            })
        })
        .await?;
    let Some(row) = row else {
        return Ok(PopSettings::default());
    };
    let stored: &str = row.get(1);
    Ok(PopSettings {
        since: row.get::<_, Option<SystemTime>>(0),
        after_retrieval: AfterRetrieval::parse(stored).ok_or_else(|| {
            StoreError::Permanent(format!("{user}: unknown after_retrieval {stored:?}"))
        })?,
    })
}

pub(crate) async fn set(
    store: &PgStore,
    user: &str,
    settings: PopSettings,
) -> Result<(), StoreError> {
    let context = (user, settings.since, settings.after_retrieval.as_str());
    store
        .pool
        .transaction(
            IsolationLevel::ReadCommitted,
            &context,
            |tx, (user, since, after_retrieval)| {
                Box::pin(async move {
                    tx.execute(
                        "INSERT INTO pop_settings (user_name, since, after_retrieval)
                         VALUES ($1, $2, $3)
                         ON CONFLICT (user_name) DO UPDATE
                         SET since = $2, after_retrieval = $3, changed_at = now()",
                        &[user, since, after_retrieval],
                    )
                    .await?;
                    Ok(())
                })
            },
        )
        .await
}
