//! The schema, as numbered plain-SQL migrations applied in order, each in its own transaction
//! with its number recorded in `postie_schema_version`.
//!
//! Applying them is an operator's act (`postie store migrate`), never something a front end
//! does at start, so that a front end never changes the schema under others still running
//! an older postie.

use postie_store::StoreError;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use crate::pool::describe;

/// Every migration, in order: (version, SQL).
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("../migrations/0001_init.sql")),
    (2, include_str!("../migrations/0002_users.sql")),
    (3, include_str!("../migrations/0003_login_state.sql")),
    (4, include_str!("../migrations/0004_delivery_fences.sql")),
    (5, include_str!("../migrations/0005_packed_chunks.sql")),
    (6, include_str!("../migrations/0006_known_networks.sql")),
    (7, include_str!("../migrations/0007_app_passwords.sql")),
    (8, include_str!("../migrations/0008_pop_settings.sql")),
    (9, include_str!("../migrations/0009_two_step.sql")),
];

/// The schema version this build of postie reads and writes.
pub const SCHEMA_VERSION: i32 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// Brings the database `client` is connected to up to [`SCHEMA_VERSION`], applying the
/// migrations it has not had yet; returns the versions applied now (none when it was up to
/// date). Safe to run from several processes at once: each migration is applied by one.
pub async fn migrate(client: &Client) -> Result<Vec<i32>, StoreError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS postie_schema_version (
                 version    INTEGER PRIMARY KEY,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
             )",
        )
        .await
        .or_else(|e| match e.code() {
            // A concurrent migrate created it between the check and the insert of the
            // catalog row: it exists now, which is all this wanted.
            Some(&SqlState::UNIQUE_VIOLATION) => Ok(()),
            _ => Err(failed("creating postie_schema_version", &e)),
        })?;
    let current: i32 = client
        .query_one(
            "SELECT coalesce(max(version), 0) FROM postie_schema_version",
            &[],
        )
        .await
        .map_err(|e| failed("reading the schema version", &e))?
        .get(0);
    if current > SCHEMA_VERSION {
        return Err(StoreError::Permanent(format!(
            "the database has schema version {current}, newer than this postie's {SCHEMA_VERSION}"
        )));
    }
    let mut applied = Vec::new();
    for &(version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        match apply(client, version, sql).await {
            Ok(()) => applied.push(version),
            // Another `postie store migrate` applied it meanwhile: its row came first.
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {}
            Err(e) => return Err(failed(&format!("applying migration {version}"), &e)),
        }
    }
    Ok(applied)
}

async fn apply(client: &Client, version: i32, sql: &str) -> Result<(), tokio_postgres::Error> {
    client.batch_execute("BEGIN").await?;
    // The version row first: a second migrate racing this one waits on it, then finds it
    // taken once this one commits, instead of failing half-way through the same DDL.
    let applied = async {
        client
            .execute(
                "INSERT INTO postie_schema_version (version) VALUES ($1)",
                &[&version],
            )
            .await?;
        client.batch_execute(sql).await?;
        client.batch_execute("COMMIT").await
    }
    .await;
    if applied.is_err() {
        // The error that matters is the one above; a failed rollback only means the
        // connection is gone, which ended the transaction too.
        let _ = client.batch_execute("ROLLBACK").await;
    }
    applied
}

fn failed(what: &str, e: &tokio_postgres::Error) -> StoreError {
    StoreError::Permanent(format!("{what}: {}", describe(e)))
}
