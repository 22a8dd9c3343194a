use std::path::PathBuf;

/// A verifier that cannot be set up from its settings.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error("[oauth] ca_file {path}: {reason}: name a PEM file with the CA certificate(s) of the identity provider")]
    CaFile { path: PathBuf, reason: String },

    #[error("[oauth] the system's CA certificates could not be loaded ({0}): set ca_file")]
    SystemRoots(String),

    #[error("[oauth] the HTTP client could not be built: {0}")]
    Client(String),
}

/// Why a token did not log in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The token is not good for this server: a wrong signature, issuer or audience, expired,
    /// not yet valid, inactive, or without the user claim. Counts as a failed login.
    #[error("token refused: {0}")]
    Refused(String),

    /// The identity provider could not be asked (down, unreachable, a broken answer): the
    /// token may be good, so the login fails temporarily.
    #[error("the identity provider could not be reached: {0}")]
    Unavailable(String),
}
