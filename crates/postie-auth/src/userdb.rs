use std::sync::Arc;

use crate::{AuthError, PasswordHash};

/// A user database. Lookups may block (file I/O), like the hashing around them.
pub trait UserDb: Send + Sync + 'static {
    /// The user named exactly `user` (no case folding), or `None` when there is none.
    fn lookup(&self, user: &str) -> Result<Option<UserRecord>, AuthError>;
}

impl<T: UserDb> UserDb for Arc<T> {
    fn lookup(&self, user: &str) -> Result<Option<UserRecord>, AuthError> {
        (**self).lookup(user)
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
        }
    }
}
