//! What can go wrong signing in or refreshing, and the exit status each gives.

use std::path::PathBuf;

use crate::error::ExitStatus;

#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error("the sign-in provider could not be asked ({what}): {reason}; check the network (and oauth_issuer, if set), then try again")]
    Unavailable { what: String, reason: String },
    #[error("the sign-in provider answered {what} with something postie cannot use: {reason}")]
    BadAnswer { what: String, reason: String },
    #[error("account {account} is not signed in yet: run `postie fetch login {account}`")]
    NotSignedIn { account: String },
    #[error("the provider refused to renew account {account}'s sign-in ({error}{description}): it was revoked or has expired; run `postie fetch login {account}` again")]
    RefreshRefused {
        account: String,
        error: String,
        description: String,
    },
    #[error("the sign-in was refused ({error}{description}); run `postie fetch login {account}` to try again")]
    SignInRefused {
        account: String,
        error: String,
        description: String,
    },
    #[error("{0}")]
    Settings(String),
    #[error("cannot {what} {path}: {source}")]
    Local {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

impl OAuthError {
    pub fn exit_status(&self) -> ExitStatus {
        match self {
            OAuthError::Unavailable { .. } => ExitStatus::Unavailable,
            OAuthError::BadAnswer { .. } => ExitStatus::Protocol,
            OAuthError::NotSignedIn { .. }
            | OAuthError::RefreshRefused { .. }
            | OAuthError::SignInRefused { .. } => ExitStatus::NoPerm,
            OAuthError::Settings(_) => ExitStatus::Config,
            OAuthError::Local { .. } => ExitStatus::IoError,
        }
    }
}
