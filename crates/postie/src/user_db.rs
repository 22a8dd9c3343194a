//! The one place where the configured user database is chosen and opened (`[auth] users`):
//! `serve`, `deliver` and reload use [`open`]. Everything else is generic over [`UserDb`].

use std::sync::Arc;

use anyhow::{Context, Result};
use postie::config::{Config, UserSource};
use postie_auth::{AppPasswordUse, AuthError, PasswdFile, UserDb, UserRecord};
use postie_store_pg::PgUsers;

use crate::store::ConfiguredStore;

/// The user database the configuration names.
pub enum ConfiguredUsers {
    /// Boxed: it holds its parsed files inline, the database variant only a pool handle.
    PasswdFile(Box<PasswdFile>),
    /// The `users` table of the store's database, on the store's connections.
    Postgres(PgUsers),
}

/// Opens the user database `config` names; a passwd-file is read now, so a broken one stops
/// the start, while the database is reached on the first lookup.
pub fn open(config: &Config, store: &ConfiguredStore) -> Result<Arc<ConfiguredUsers>> {
    let users = match (config.users, store) {
        (UserSource::Postgres, ConfiguredStore::Postgres(store)) => {
            ConfiguredUsers::Postgres(PgUsers::new(store.pool().clone()))
        }
        // The configuration refuses users = "postgres" without store = "postgres".
        (UserSource::Postgres, ConfiguredStore::Maildir(_)) | (UserSource::PasswdFile, _) => {
            let users = PasswdFile::open(&config.passwd_file).with_context(|| {
                format!(
                    "{}: [auth] passwd_file: cannot use {}: create it with `postie user add NAME --config {}`",
                    config.path.display(),
                    config.passwd_file.display(),
                    config.path.display()
                )
            })?;
            ConfiguredUsers::PasswdFile(Box::new(users.recording_uses_in(&config.state_dir)))
        }
    };
    Ok(Arc::new(users))
}

impl UserDb for ConfiguredUsers {
    fn lookup(&self, user: &str) -> Result<Option<UserRecord>, AuthError> {
        match self {
            Self::PasswdFile(users) => users.lookup(user),
            Self::Postgres(users) => users.lookup(user),
        }
    }

    fn record_app_password_use(
        &self,
        user: &str,
        label: &str,
        usage: &AppPasswordUse,
    ) -> Result<(), AuthError> {
        match self {
            Self::PasswdFile(users) => users.record_app_password_use(user, label, usage),
            Self::Postgres(users) => UserDb::record_app_password_use(users, user, label, usage),
        }
    }
}
