//! What can go wrong inside the Maildir store, and how the server gets to see it.

use std::io;
use std::path::{Path, PathBuf};

use crate::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum MaildirError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("maildrop is in use by another session")]
    InUse,
    #[error("reading the message being delivered: {0}")]
    Source(io::Error),
    #[error("user name {0:?} cannot name a maildir")]
    BadUser(String),
    #[error("maildir {0} has used up all 2^32 uids")]
    UidsExhausted(PathBuf),
    #[error("message number {0} is not in the snapshot")]
    NoSuchMessage(usize),
    #[error("{user} is over quota: {used_bytes} octets in {used_messages} messages")]
    OverQuota {
        user: String,
        used_bytes: u64,
        used_messages: u64,
    },
}

impl MaildirError {
    pub fn io(op: &'static str, path: &Path, source: io::Error) -> Self {
        Self::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}

impl From<MaildirError> for StoreError {
    fn from(err: MaildirError) -> Self {
        match err {
            MaildirError::InUse => StoreError::InUse,
            MaildirError::OverQuota { .. } => StoreError::OverQuota(err.to_string()),
            MaildirError::Io { .. } | MaildirError::Source(_) => {
                StoreError::Temporary(err.to_string())
            }
            MaildirError::BadUser(_)
            | MaildirError::UidsExhausted(_)
            | MaildirError::NoSuchMessage(_) => StoreError::Permanent(err.to_string()),
        }
    }
}

/// Attaches the operation and the path to an I/O error.
pub trait IoContext<T> {
    fn ctx(self, op: &'static str, path: &Path) -> Result<T, MaildirError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, op: &'static str, path: &Path) -> Result<T, MaildirError> {
        self.map_err(|source| MaildirError::io(op, path, source))
    }
}
