//! Reading a PROXY protocol header off a new connection from a trusted load balancer.

use postie_proto::proxy::{self, Parsed, ProxyError, ProxyHeader};
use postie_types::limits::PROXY_HEADER_TIMEOUT;
use tokio::io::{AsyncRead, AsyncReadExt};

#[derive(Debug, thiserror::Error)]
pub enum ProxyFailure {
    #[error(transparent)]
    Header(#[from] ProxyError),
    #[error("connection closed or failed before the PROXY header ended: {0}")]
    Io(#[from] std::io::Error),
    #[error("no PROXY header within {PROXY_HEADER_TIMEOUT:?}")]
    Timeout,
}

/// Reads exactly the header, as the parser asks, so the bytes after it (a TLS ClientHello,
/// pipelined commands) stay in the socket for the session.
pub async fn read_header<R: AsyncRead + Unpin>(
    stream: &mut R,
) -> Result<ProxyHeader, ProxyFailure> {
    let read = async {
        let mut buffer = Vec::with_capacity(proxy::MIN_HEADER);
        loop {
            match proxy::parse(&buffer)? {
                Parsed::Complete { header, .. } => return Ok(header),
                Parsed::Incomplete { need } => {
                    let start = buffer.len();
                    buffer.resize(start + need, 0);
                    stream.read_exact(&mut buffer[start..]).await?;
                }
            }
        }
    };
    tokio::time::timeout(PROXY_HEADER_TIMEOUT, read)
        .await
        .unwrap_or(Err(ProxyFailure::Timeout))
}
