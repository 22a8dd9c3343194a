//! A client connection of either shell: TCP, plain until STLS or STARTTLS and TLS after, or
//! a Unix socket (LMTP); and the upgrade from plain to TLS.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use postie_metrics::METRICS;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

pub enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// Held only while the TCP stream is inside a TLS handshake.
    Closed,
}

/// Why a connection could not switch to TLS; the connection is unusable after it.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    #[error("the connection is not plain TCP")]
    NotTcp,
    #[error("TLS handshake failed: {0}")]
    Handshake(io::Error),
    #[error("TLS handshake timed out")]
    TimedOut,
}

impl Conn {
    /// Runs the server side of a TLS handshake on the plain TCP stream, within `limit`, and
    /// counts its outcome under `protocol` in the metrics.
    pub async fn start_tls(
        &mut self,
        acceptor: &TlsAcceptor,
        limit: Duration,
        protocol: &'static str,
    ) -> Result<(), UpgradeError> {
        // The TCP stream moves into the handshake; a placeholder never used holds its place.
        let Conn::Tcp(tcp) = std::mem::replace(self, Conn::Closed) else {
            return Err(UpgradeError::NotTcp);
        };
        let outcome = match tokio::time::timeout(limit, acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => {
                *self = Conn::Tls(Box::new(tls));
                Ok(())
            }
            Ok(Err(error)) => Err(UpgradeError::Handshake(error)),
            Err(_) => Err(UpgradeError::TimedOut),
        };
        let counted = if outcome.is_ok() { "ok" } else { "failed" };
        METRICS.tls_handshakes.inc([protocol, counted]);
        outcome
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, Conn::Tls(_))
    }
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "connection closed")
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Conn::Closed => Poll::Ready(Err(closed())),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Unix(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Conn::Closed => Poll::Ready(Err(closed())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_flush(cx),
            Conn::Unix(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Conn::Closed => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Conn::Closed => Poll::Ready(Ok(())),
        }
    }
}
