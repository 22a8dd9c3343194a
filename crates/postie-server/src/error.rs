use std::net::SocketAddr;
use std::path::PathBuf;

/// Errors that stop the server from starting.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr} (is another server using the port, or does it need root?)")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {problem}")]
    BadPem { path: PathBuf, problem: String },
    #[error("the TLS certificate and key do not fit together: {0}")]
    Tls(#[from] rustls::Error),
    #[error("implicit-TLS listeners are configured but no [tls] certificate and key are set")]
    TlsMissing,
}
