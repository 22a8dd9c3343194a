//! A small async POP3 client over plain TCP or implicit TLS, for load generation.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::Target;

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// No single step of a benchmark may hang: a stuck server fails the run instead.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

async fn within<F: std::future::Future>(step: F) -> Result<F::Output> {
    tokio::time::timeout(STEP_TIMEOUT, step).await.context("the server did not answer within 60 s")
}

pub struct Client {
    stream: BufReader<Box<dyn Io>>,
    line: Vec<u8>,
}

/// A TLS client configuration that makes full handshakes (no resumption).
pub fn tls_config(ca: &Path) -> Result<Arc<rustls::ClientConfig>> {
    let pem = std::fs::read(ca).with_context(|| format!("cannot read {}", ca.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(config))
}

impl Client {
    pub async fn connect(
        target: &Target,
        tls: Option<&Arc<rustls::ClientConfig>>,
    ) -> Result<Client> {
        let tcp = TcpStream::connect(target.addr)
            .await
            .with_context(|| format!("connect {}", target.addr))?;
        tcp.set_nodelay(true)?;
        let stream: Box<dyn Io> = match tls {
            Some(config) => {
                let connector = tokio_rustls::TlsConnector::from(Arc::clone(config));
                let name = rustls::pki_types::ServerName::try_from("localhost")?;
                Box::new(connector.connect(name, tcp).await?)
            }
            None => Box::new(tcp),
        };
        let mut client = Client {
            stream: BufReader::with_capacity(64 * 1024, stream),
            line: Vec::new(),
        };
        client.expect_ok().await?;
        Ok(client)
    }

    pub async fn send(&mut self, command: &str) -> Result<()> {
        let stream = self.stream.get_mut();
        // TLS streams hold written data until flushed.
        within(stream.write_all(command.as_bytes())).await??;
        within(stream.flush()).await??;
        Ok(())
    }

    pub async fn read_line(&mut self) -> Result<&[u8]> {
        self.line.clear();
        let n = within(self.stream.read_until(b'\n', &mut self.line)).await??;
        if n == 0 {
            bail!("connection closed");
        }
        Ok(&self.line)
    }

    /// Reads a status line; fails unless it is +OK. Returns it.
    pub async fn expect_ok(&mut self) -> Result<String> {
        let line = self.read_line().await?;
        if !line.starts_with(b"+OK") {
            bail!("server said {}", String::from_utf8_lossy(line).trim_end());
        }
        Ok(String::from_utf8_lossy(line).trim_end().to_owned())
    }

    /// Reads a multi-line body; returns (lines, unstuffed bytes with CRLFs).
    pub async fn read_body(&mut self) -> Result<(usize, u64)> {
        let mut lines = 0;
        let mut bytes = 0u64;
        loop {
            let line = self.read_line().await?;
            if !line.ends_with(b"\r\n") {
                bail!("a line without CRLF in a multi-line response");
            }
            if line == b".\r\n" {
                return Ok((lines, bytes));
            }
            lines += 1;
            bytes += line.len() as u64 - u64::from(line.starts_with(b".."));
        }
    }

    pub async fn login(&mut self, target: &Target) -> Result<()> {
        self.send(&format!(
            "USER {}\r\nPASS {}\r\n",
            target.user, target.password
        ))
        .await?;
        self.expect_ok().await?;
        self.expect_ok().await?;
        Ok(())
    }
}
