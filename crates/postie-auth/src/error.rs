use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in this crate. A rejected login is not an error: it is a
/// [`Verdict::Rejected`](crate::Verdict::Rejected) or [`SaslStep::Rejected`](crate::SaslStep::Rejected).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("unknown password scheme {0:?}")]
    UnknownScheme(String),

    #[error("malformed password hash: {0}")]
    MalformedHash(String),

    #[error("password not accepted: {0}")]
    InvalidPassword(&'static str),

    #[error("hashing failed: {0}")]
    Hashing(String),

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("{path}:{line}: {reason}")]
    PasswdFile {
        path: PathBuf,
        line: usize,
        reason: String,
    },

    // Debug formatting of the name: it may hold control characters, which must not reach a
    // terminal or a log raw.
    #[error("invalid user name {name:?}: {reason}")]
    InvalidUserName { name: String, reason: &'static str },

    #[error("invalid app password label {label:?}: {reason}")]
    InvalidLabel { label: String, reason: &'static str },

    #[error("{user:?} has an app password labelled {label:?} already: revoke it first or choose another label")]
    AppPasswordExists { user: String, label: String },

    #[error("{user:?} has no app password labelled {label:?}: `postie user app-password list {user}` shows the labels")]
    NoSuchAppPassword { user: String, label: String },

    #[error("no user {0:?}: add it with `postie user add` first")]
    NoSuchUser(String),

    #[error("unknown SASL mechanism {0:?}")]
    UnknownMechanism(String),

    /// A user database that is not a file could not answer (a network database).
    #[error("user database: {0}")]
    UserDb(String),

    /// An OAuth bearer token could not be checked: its identity provider did not answer.
    #[error("the OAuth token could not be checked: {0}")]
    TokenCheck(String),

    /// For callers that run these checks elsewhere (a blocking thread pool) and lose the
    /// result, e.g. to a panicked task.
    #[error("internal error: {0}")]
    Internal(String),

    #[error("invalid SCRAM server nonce: it must be non-empty printable ASCII without ','")]
    InvalidNonce,
}

impl AuthError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        AuthError::Io {
            path: path.into(),
            source,
        }
    }
}
