use std::net::SocketAddr;

/// Errors that stop the server from starting.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr} (is another server using the port, or does it need root?)")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("implicit-TLS listeners are configured but no [tls] certificate and key are set")]
    TlsMissing,
}
