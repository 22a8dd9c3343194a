//! The one place where the configured user database is chosen and opened (`[auth] users`):
//! `serve`, `deliver` and reload use [`open`]. Everything else is generic over [`UserDb`].

use std::sync::Arc;

use anyhow::{Context, Result};
use postie::config::{Config, UserSource};
use postie_auth::{AuthError, PasswdFile, UserDb, UserRecord};
use postie_store_pg::PgUsers;

use crate::store::ConfiguredStore;

/// The user database the configuration names.
pub enum ConfiguredUsers {
    PasswdFile(PasswdFile),
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
            ConfiguredUsers::PasswdFile(PasswdFile::open(&config.passwd_file).with_context(
                || {
                    format!(
                "{}: [auth] passwd_file: cannot use {}: create it with `postie user add NAME --config {}`",
                config.path.display(),
                config.passwd_file.display(),
                config.path.display()
            )
                },
            )?)
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
}
