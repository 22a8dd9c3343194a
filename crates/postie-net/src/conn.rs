//! A client connection of either door: TCP, plain until STLS or STARTTLS and TLS after, a
//! Unix socket (LMTP), or an in-process stream (tests driving a shell without sockets); and
//! the upgrade from plain to TLS.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use postie_metrics::METRICS;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::kernel_tls::{self, KernelTls, KernelTlsError, Switched};

/// A byte stream that lives in the process, such as one half of `tokio::io::duplex`.
pub trait InProcess: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> InProcess for T {}

pub enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
    InProcess(Box<dyn InProcess>),
    /// Any of the above after the upgrade.
    Tls(Box<TlsStream<Conn>>),
    /// TCP after the upgrade, its session handed to the kernel (kernel_tls.rs).
    KernelTls(KernelTls),
    /// Held only while the plain stream is inside a TLS handshake.
    Closed,
}

/// Why a connection could not switch to TLS; the connection is unusable after it.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    #[error("the connection is not plain: encrypted already, or closed by a failed handshake")]
    NotPlain,
    #[error("TLS handshake failed: {0}")]
    Handshake(io::Error),
    #[error("TLS handshake timed out")]
    TimedOut,
    #[error(transparent)]
    KernelTls(#[from] KernelTlsError),
}

impl Conn {
    /// A connection over an in-process stream, such as one half of `tokio::io::duplex`.
    pub fn in_process(stream: impl InProcess + 'static) -> Conn {
        Conn::InProcess(Box::new(stream))
    }

    /// Runs the server side of a TLS handshake on the plain stream, within `limit`, and
    /// counts its outcome under `protocol` in the metrics.
    pub async fn start_tls(
        &mut self,
        acceptor: &TlsAcceptor,
        limit: Duration,
        protocol: &'static str,
    ) -> Result<(), UpgradeError> {
        // The plain stream moves into the handshake; a placeholder never used holds its place.
        let plain = std::mem::replace(self, Conn::Closed);
        if matches!(plain, Conn::Tls(_) | Conn::KernelTls(_) | Conn::Closed) {
            return Err(UpgradeError::NotPlain);
        }
        let outcome = match tokio::time::timeout(limit, acceptor.accept(plain)).await {
            Ok(Ok(tls)) => match kernel_tls::switch(tls) {
                Ok(Switched::Kernel(kernel)) => {
                    *self = Conn::KernelTls(kernel);
                    Ok(())
                }
                Ok(Switched::User(tls)) => {
                    *self = Conn::Tls(tls);
                    Ok(())
                }
                Err(error) => Err(UpgradeError::KernelTls(error)),
            },
            Ok(Err(error)) => Err(UpgradeError::Handshake(error)),
            Err(_) => Err(UpgradeError::TimedOut),
        };
        let counted = if outcome.is_ok() { "ok" } else { "failed" };
        METRICS.tls_handshakes.inc([protocol, counted]);
        outcome
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, Conn::Tls(_) | Conn::KernelTls(_))
    }

    /// Whether the TLS session is the kernel's (kernel TLS).
    pub fn is_kernel_tls(&self) -> bool {
        matches!(self, Conn::KernelTls(_))
    }
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "connection closed")
}

impl Conn {
    /// The stream underneath, or `None` while a handshake holds it. One indirect call per
    /// read or write costs nothing next to the system call behind it.
    fn stream(&mut self) -> Option<Pin<&mut (dyn InProcess + '_)>> {
        match self {
            Conn::Tcp(s) => Some(Pin::new(s)),
            Conn::Unix(s) => Some(Pin::new(s)),
            Conn::InProcess(s) => Some(Pin::new(s.as_mut())),
            Conn::Tls(s) => Some(Pin::new(s.as_mut())),
            Conn::KernelTls(s) => Some(Pin::new(s)),
            Conn::Closed => None,
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut().stream() {
            Some(s) => s.poll_read(cx, buf),
            None => Poll::Ready(Err(closed())),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().stream() {
            Some(s) => s.poll_write(cx, buf),
            None => Poll::Ready(Err(closed())),
        }
    }

    // TLS hands its records down as several buffers; one system call takes them all.
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().stream() {
            Some(s) => s.poll_write_vectored(cx, bufs),
            None => Poll::Ready(Err(closed())),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Tcp(s) => s.is_write_vectored(),
            Conn::Unix(s) => s.is_write_vectored(),
            Conn::InProcess(s) => s.is_write_vectored(),
            Conn::Tls(s) => s.is_write_vectored(),
            Conn::KernelTls(s) => s.is_write_vectored(),
            Conn::Closed => false,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut()
            .stream()
            .map_or(Poll::Ready(Ok(())), |s| s.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut()
            .stream()
            .map_or(Poll::Ready(Ok(())), |s| s.poll_shutdown(cx))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    use tokio_rustls::TlsConnector;

    use super::*;
    use crate::tls::ReloadableCert;

    /// The server's TLS acceptor and a client configuration that trusts its certificate.
    fn tls_pair(dir: &std::path::Path) -> (TlsAcceptor, TlsConnector) {
        let generated = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, generated.cert.pem()).unwrap();
        std::fs::write(&key, generated.key_pair.serialize_pem()).unwrap();
        let server = ReloadableCert::load(&cert, &key).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(generated.cert.der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        (
            TlsAcceptor::from(server.server_config().unwrap()),
            TlsConnector::from(Arc::new(client)),
        )
    }

    #[tokio::test]
    async fn an_in_process_connection_upgrades_to_tls_as_stls_does() {
        let dir = tempfile::tempdir().unwrap();
        let (acceptor, connector) = tls_pair(dir.path());
        let (client, server) = tokio::io::duplex(16 * 1024);

        let server = tokio::spawn(async move {
            let mut conn = Conn::in_process(server);
            let mut command = [0u8; 6];
            conn.read_exact(&mut command).await.unwrap();
            assert_eq!(&command, b"STLS\r\n");
            conn.write_all(b"+OK Begin TLS negotiation\r\n")
                .await
                .unwrap();
            assert!(!conn.is_tls());
            conn.start_tls(&acceptor, Duration::from_secs(10), "test")
                .await
                .unwrap();
            assert!(conn.is_tls());
            let mut line = String::new();
            BufReader::new(&mut conn)
                .read_line(&mut line)
                .await
                .unwrap();
            conn.write_all(format!("+OK heard {line}").as_bytes())
                .await
                .unwrap();
            conn.flush().await.unwrap();
            // A second upgrade is refused: the connection is encrypted already.
            let again = conn.start_tls(&acceptor, Duration::from_secs(10), "test");
            assert!(matches!(again.await, Err(UpgradeError::NotPlain)));
        });

        let mut client = BufReader::new(client);
        client.write_all(b"STLS\r\n").await.unwrap();
        let mut answer = String::new();
        client.read_line(&mut answer).await.unwrap();
        assert_eq!(answer, "+OK Begin TLS negotiation\r\n");
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut tls = BufReader::new(connector.connect(name, client.into_inner()).await.unwrap());
        tls.write_all(b"CAPA\r\n").await.unwrap();
        tls.flush().await.unwrap();
        let mut answer = String::new();
        tls.read_line(&mut answer).await.unwrap();
        assert_eq!(answer, "+OK heard CAPA\r\n");
        server.await.unwrap();
    }
}
