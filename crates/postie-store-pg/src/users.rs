//! The users of `[auth] users = "postgres"`, in the `users` table of the mail's database
//! (`migrations/0002_users.sql`): what `postie user` edits, and a [`UserDb`] for logins and
//! deliveries.
//!
//! `UserDb::lookup` is blocking by contract: its callers run it on tokio's blocking pool, in
//! the same closure as the password hashing around it. [`PgUsers`] honours that contract by
//! driving its query on the runtime it is called from (`Handle::block_on` from the blocking
//! thread); the network wait costs that one pool thread for one round trip, never a runtime
//! worker, so a slow database slows its own logins and no one else's.

use postie_auth::{
    AppPassword, AppPasswordDigest, AppPasswordUse, AuthError, PasswordHash, UserDb, UserRecord,
};
use tokio_postgres::error::SqlState;
use tokio_postgres::{IsolationLevel, Transaction};

use crate::pool::{describe, Pool, TxError, TxFuture};

/// What editing or reading the users table can fail with.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    #[error("user {0:?} exists already: change its password with `postie user passwd`")]
    Exists(String),
    #[error("no user {0:?} in the database: add it with `postie user add`")]
    NoSuchUser(String),
    #[error("the database has no users table yet: run `postie store migrate` first")]
    NotMigrated,
    #[error("user {name:?} in the database: {source}")]
    BadRecord {
        name: String,
        #[source]
        source: AuthError,
    },
    #[error("{user:?} has an app password labelled {label:?} already: revoke it first or choose another label")]
    AppPasswordExists { user: String, label: String },
    #[error("{user:?} has no app password labelled {label:?}: `postie user app-password list {user}` shows the labels")]
    NoSuchAppPassword { user: String, label: String },
    #[error("PostgreSQL: {0}")]
    Database(String),
}

/// The users table, over a pool of the store's (or one of its own).
#[derive(Clone)]
pub struct PgUsers {
    pool: Pool,
}

impl PgUsers {
    pub fn new(pool: Pool) -> Self {
        PgUsers { pool }
    }

    /// The user named exactly `name` with its app passwords, or `None`: one statement, a row
    /// per app password (or one with none).
    pub async fn get(&self, name: &str) -> Result<Option<UserRecord>, UsersError> {
        let rows = self
            .run(name, |tx, name| {
                Box::pin(async move {
                    Ok(tx
                        .query(
                            "SELECT u.name, u.password, u.extra, u.app_passwords_required,
                                    a.label, a.digest
                               FROM users u
                               LEFT JOIN app_passwords a ON a.user_name = u.name
                              WHERE u.name = $1",
                            &[&name],
                        )
                        .await?)
                })
            })
            .await?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let name: String = first.get(0);
        let bad_record = |source| UsersError::BadRecord {
            name: name.clone(),
            source,
        };
        let password = PasswordHash::parse(first.get(1)).map_err(bad_record)?;
        let mut record = UserRecord::new(name.clone(), password);
        record.extra = first
            .get::<_, &str>(2)
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        record.app_passwords.required = first.get(3);
        for row in &rows {
            let Some(label) = row.get::<_, Option<String>>(4) else {
                continue;
            };
            let digest = AppPasswordDigest::parse(row.get(5)).map_err(bad_record)?;
            record
                .app_passwords
                .entries
                .push(AppPassword { label, digest });
        }
        Ok(Some(record))
    }

    /// Adds `name` with the stored password `hash` (`{SCHEME}data`); refuses a name taken.
    pub async fn add(&self, name: &str, hash: &str) -> Result<(), UsersError> {
        let added = self
            .run(&(name, hash), |tx, (name, hash)| {
                Box::pin(async move {
                    Ok(tx
                        .execute(
                            "INSERT INTO users (name, password) VALUES ($1, $2)
                             ON CONFLICT (name) DO NOTHING",
                            &[name, hash],
                        )
                        .await?)
                })
            })
            .await?;
        match added {
            0 => Err(UsersError::Exists(name.to_owned())),
            _ => Ok(()),
        }
    }

    /// Replaces the stored password of `name`, which must exist.
    pub async fn set_password(&self, name: &str, hash: &str) -> Result<(), UsersError> {
        let changed = self
            .run(&(name, hash), |tx, (name, hash)| {
                Box::pin(async move {
                    Ok(tx
                        .execute(
                            "UPDATE users SET password = $2, changed_at = now() WHERE name = $1",
                            &[name, hash],
                        )
                        .await?)
                })
            })
            .await?;
        match changed {
            0 => Err(UsersError::NoSuchUser(name.to_owned())),
            _ => Ok(()),
        }
    }

    /// Removes `name`, which must exist. Its mail stays until removed on its own.
    pub async fn remove(&self, name: &str) -> Result<(), UsersError> {
        let removed = self
            .run(name, |tx, name| {
                Box::pin(async move {
                    Ok(tx
                        .execute("DELETE FROM users WHERE name = $1", &[&name])
                        .await?)
                })
            })
            .await?;
        match removed {
            0 => Err(UsersError::NoSuchUser(name.to_owned())),
            _ => Ok(()),
        }
    }

    /// Every user name, sorted.
    pub async fn list(&self) -> Result<Vec<String>, UsersError> {
        self.run(&(), |tx, ()| {
            Box::pin(async move {
                Ok(tx
                    .query("SELECT name FROM users ORDER BY name", &[])
                    .await?
                    .iter()
                    .map(|row| row.get(0))
                    .collect())
            })
        })
        .await
    }

    /// How many users there are, for `check-config`.
    pub async fn count(&self) -> Result<u64, UsersError> {
        let count: i64 = self
            .run(&(), |tx, ()| {
                Box::pin(async move {
                    Ok(tx
                        .query_one("SELECT count(*) FROM users", &[])
                        .await?
                        .get(0))
                })
            })
            .await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// One short transaction through the pool's retry helper, its failure named for the
    /// users table: a missing table means the schema was not migrated.
    pub(crate) async fn run<C, T, F>(&self, context: &C, body: F) -> Result<T, UsersError>
    where
        C: Sync + ?Sized,
        F: for<'a> FnMut(&'a Transaction<'a>, &'a C) -> TxFuture<'a, T> + Send,
    {
        self.pool
            .transaction_raw(IsolationLevel::ReadCommitted, context, body)
            .await
            .map_err(|error| match error {
                TxError::Db(e) if e.code() == Some(&SqlState::UNDEFINED_TABLE) => {
                    UsersError::NotMigrated
                }
                TxError::Db(e) => UsersError::Database(describe(&e)),
                TxError::Store(e) => UsersError::Database(e.to_string()),
            })
    }
}

impl UserDb for PgUsers {
    /// Blocks the calling thread, which must be one of tokio's blocking pool (as for every
    /// `UserDb`), for one query on the runtime that thread belongs to.
    fn lookup(&self, user: &str) -> Result<Option<UserRecord>, AuthError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            AuthError::UserDb(
                "PostgreSQL user lookups run on a tokio runtime's blocking pool".into(),
            )
        })?;
        runtime
            .block_on(self.get(user))
            .map_err(|e| AuthError::UserDb(e.to_string()))
    }

    /// Blocks as [`lookup`](UserDb::lookup) does, for one statement.
    fn record_app_password_use(
        &self,
        user: &str,
        label: &str,
        usage: &AppPasswordUse,
    ) -> Result<(), AuthError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            AuthError::UserDb(
                "PostgreSQL app password records run on a tokio runtime's blocking pool".into(),
            )
        })?;
        runtime
            .block_on(self.record_app_password_use(user, label, usage))
            .map_err(|e| AuthError::UserDb(e.to_string()))
    }
}
