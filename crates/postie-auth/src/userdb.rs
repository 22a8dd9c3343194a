use std::sync::Arc;

use crate::{AppPasswordUse, AppPasswords, AuthError, PasswordHash};

/// A user database. Lookups may block (file I/O), like the hashing around them.
pub trait UserDb: Send + Sync + 'static {
    /// The user named exactly `user` (no case folding), or `None` when there is none.
    fn lookup(&self, user: &str) -> Result<Option<UserRecord>, AuthError>;

    /// Writes down that `user` logged in with the app password `label`, for `list` to show.
    /// A database that keeps no app passwords never has a use to record.
    fn record_app_password_use(
        &self,
        _user: &str,
        _label: &str,
        _usage: &AppPasswordUse,
    ) -> Result<(), AuthError> {
        Ok(())
    }
}

impl<T: UserDb> UserDb for Arc<T> {
    fn lookup(&self, user: &str) -> Result<Option<UserRecord>, AuthError> {
        (**self).lookup(user)
    }

    fn record_app_password_use(
        &self,
        user: &str,
        label: &str,
        usage: &AppPasswordUse,
    ) -> Result<(), AuthError> {
        (**self).record_app_password_use(user, label, usage)
    }
}

/// One user, as a passwd-file line describes it. The fields after the password are kept as
/// written (empty fields are `None`); postie itself only needs the name and the password.
#[derive(Debug, Clone)]
pub struct UserRecord {
    pub name: String,
    pub password: PasswordHash,
    pub uid: Option<String>,
    pub gid: Option<String>,
    pub gecos: Option<String>,
    pub home: Option<String>,
    pub shell: Option<String>,
    /// Dovecot's extra fields, split at whitespace, e.g. `userdb_quota_rule=*:storage=1G`.
    pub extra: Vec<String>,
    pub app_passwords: AppPasswords,
}

impl UserRecord {
    /// A user with a name and a password and nothing else.
    pub fn new(name: impl Into<String>, password: PasswordHash) -> Self {
        UserRecord {
            name: name.into(),
            password,
            uid: None,
            gid: None,
            gecos: None,
            home: None,
            shell: None,
            extra: Vec::new(),
            app_passwords: AppPasswords::default(),
        }
    }
}
