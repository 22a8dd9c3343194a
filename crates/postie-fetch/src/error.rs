//! Everything that can go wrong while fetching or probing, and the exit status each one
//! gives (sysexits.h), so scripts and schedulers can tell a wrong password from a full disk.

use std::path::PathBuf;

use postie_proto::client::{ClientError, Status};

/// Exit statuses, as sysexits.h defines them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum ExitStatus {
    Ok = 0,
    /// A state file is missing and fetching would download everything again.
    NoInput = 66,
    /// The server cannot be reached, refuses service, or fails certificate checks.
    Unavailable = 69,
    /// Writing mail or state locally failed.
    IoError = 74,
    /// A temporary failure: try again later (network cut, `[SYS/TEMP]`, `[IN-USE]`).
    TempFail = 75,
    /// The server broke the POP3 protocol.
    Protocol = 76,
    /// The server refused the login.
    NoPerm = 77,
    /// The configuration is wrong or asks for something the server cannot do.
    Config = 78,
}

impl ExitStatus {
    pub fn code(self) -> u8 {
        self as u8
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("{0}")]
    Usage(String),
    #[error("cannot resolve {host}: {source}; check the server name and your network")]
    Resolve {
        host: String,
        source: std::io::Error,
    },
    #[error("cannot connect to {addr}: {source}; is the server up, and is {port} its POP3 port?", port = addr.rsplit(':').next().unwrap_or(""))]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("TLS with {host} failed: {reason}")]
    Tls { host: String, reason: String },
    #[error("{host} did not answer within {secs} seconds ({during}); try again later, or check that the port speaks {expects}")]
    Timeout {
        host: String,
        secs: u64,
        during: &'static str,
        expects: &'static str,
    },
    #[error(
        "the connection to {host} broke ({during}): {reason}; run again to resume, nothing is lost"
    )]
    Disconnected {
        host: String,
        during: &'static str,
        reason: String,
    },
    #[error("{host} broke the POP3 protocol: {source}")]
    Protocol { host: String, source: ClientError },
    #[error("{host} refused service: {status}")]
    Refused { host: String, status: Box<Status> },
    #[error("{host} refused the login as {user} with {mechanism}: {status}{hint}")]
    Auth {
        host: String,
        user: String,
        mechanism: String,
        status: Box<Status>,
        hint: String,
    },
    #[error("{0}")]
    NoMechanism(String),
    #[error("{what}: {reason}")]
    Secret { what: String, reason: String },
    #[error("{what} {path}: {source}")]
    Local {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("delivery to {destination} failed: {reason}")]
    Delivery {
        destination: String,
        reason: String,
        temporary: bool,
    },
    #[error("{0}")]
    StateMissing(String),
    #[error("{0}")]
    Busy(String),
    #[error("{0}")]
    NoUidl(String),
    /// delete_when_deleted_locally cannot tell what was deleted here.
    #[error("{0}")]
    LocalDeletion(String),
    #[error("{host}: {command} failed: {status}")]
    Command {
        host: String,
        command: &'static str,
        status: Box<Status>,
    },
    #[error(transparent)]
    OAuth(#[from] crate::oauth::OAuthError),
}

impl FetchError {
    pub fn exit_status(&self) -> ExitStatus {
        match self {
            FetchError::Config { .. } | FetchError::Usage(_) | FetchError::Secret { .. } => {
                ExitStatus::Config
            }
            FetchError::NoMechanism(_) | FetchError::NoUidl(_) => ExitStatus::Config,
            FetchError::LocalDeletion(_) => ExitStatus::IoError,
            FetchError::Resolve { .. } | FetchError::Connect { .. } | FetchError::Tls { .. } => {
                ExitStatus::Unavailable
            }
            FetchError::Refused { status, .. } | FetchError::Command { status, .. } => {
                if status.is_temporary() {
                    ExitStatus::TempFail
                } else {
                    ExitStatus::Unavailable
                }
            }
            FetchError::Timeout { .. } | FetchError::Disconnected { .. } | FetchError::Busy(_) => {
                ExitStatus::TempFail
            }
            FetchError::Protocol { .. } => ExitStatus::Protocol,
            FetchError::Auth { status, .. } => {
                if status.is_temporary() {
                    ExitStatus::TempFail
                } else {
                    ExitStatus::NoPerm
                }
            }
            FetchError::Local { .. } => ExitStatus::IoError,
            FetchError::Delivery { temporary, .. } => {
                if *temporary {
                    ExitStatus::TempFail
                } else {
                    ExitStatus::IoError
                }
            }
            FetchError::StateMissing(_) => ExitStatus::NoInput,
            FetchError::OAuth(error) => error.exit_status(),
        }
    }
}

/// Adds the path and the action to an I/O error.
pub(crate) trait LocalContext<T> {
    fn local(self, what: &'static str, path: &std::path::Path) -> Result<T, FetchError>;
}

impl<T> LocalContext<T> for std::io::Result<T> {
    fn local(self, what: &'static str, path: &std::path::Path) -> Result<T, FetchError> {
        self.map_err(|source| FetchError::Local {
            what,
            path: path.to_owned(),
            source,
        })
    }
}
