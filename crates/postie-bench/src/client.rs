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
    tokio::time::timeout(STEP_TIMEOUT, step)
        .await
        .context("the server did not answer within 60 s")
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

    /// Reads a multi-line body and returns its size after un-stuffing (CRLFs included),
    /// checking that every line ends in CRLF. Scans the buffered bytes in place, line ends
    /// found with memchr, so the client is not what limits a throughput figure.
    pub async fn read_body(&mut self) -> Result<u64> {
        let mut scan = BodyScan::default();
        loop {
            let buffer = within(self.stream.fill_buf()).await??;
            if buffer.is_empty() {
                bail!("connection closed inside a multi-line response");
            }
            let (used, done) = scan.feed(buffer)?;
            self.stream.consume(used);
            if done {
                return Ok(scan.raw - scan.stuffed);
            }
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

/// Where a scan of a multi-line body stands between two buffers.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ScanState {
    #[default]
    LineStart,
    /// The line began with ".".
    Dot,
    /// The line is ".\r" so far: the terminator if LF follows.
    DotCr,
    InLine,
}

#[derive(Debug, Default)]
struct BodyScan {
    state: ScanState,
    last_was_cr: bool,
    /// Bytes of content lines as received (stuffing included, terminator excluded).
    raw: u64,
    /// Lines whose first "." was stuffing.
    stuffed: u64,
}

impl BodyScan {
    /// Scans `bytes`; returns how many belong to the body and whether the terminator ended it.
    fn feed(&mut self, bytes: &[u8]) -> Result<(usize, bool)> {
        let mut i = 0;
        while i < bytes.len() {
            match self.state {
                ScanState::LineStart => {
                    if bytes[i] == b'.' {
                        self.state = ScanState::Dot;
                        i += 1;
                    } else {
                        self.state = ScanState::InLine;
                    }
                }
                ScanState::Dot => {
                    if bytes[i] == b'\r' {
                        self.state = ScanState::DotCr;
                        i += 1;
                    } else {
                        // A stuffed line: the dot counted as received, then taken off.
                        self.raw += 1;
                        self.stuffed += 1;
                        self.last_was_cr = false;
                        self.state = ScanState::InLine;
                    }
                }
                ScanState::DotCr => {
                    if bytes[i] != b'\n' {
                        bail!("a line \".\\r\" not followed by LF");
                    }
                    return Ok((i + 1, true));
                }
                ScanState::InLine => match memchr::memchr(b'\n', &bytes[i..]) {
                    Some(p) => {
                        let ends_with_cr = if p > 0 {
                            bytes[i + p - 1] == b'\r'
                        } else {
                            self.last_was_cr
                        };
                        if !ends_with_cr {
                            bail!("a line without CRLF in a multi-line response");
                        }
                        self.raw += p as u64 + 1;
                        i += p + 1;
                        self.last_was_cr = false;
                        self.state = ScanState::LineStart;
                    }
                    None => {
                        self.raw += (bytes.len() - i) as u64;
                        self.last_was_cr = bytes.last() == Some(&b'\r');
                        i = bytes.len();
                    }
                },
            }
        }
        Ok((i, false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(pieces: &[&[u8]]) -> Result<(u64, usize)> {
        let mut scan = BodyScan::default();
        let mut rest = 0;
        for (n, piece) in pieces.iter().enumerate() {
            let (used, done) = scan.feed(piece)?;
            if done {
                rest = piece.len() - used + pieces[n + 1..].iter().map(|p| p.len()).sum::<usize>();
                return Ok((scan.raw - scan.stuffed, rest));
            }
        }
        bail!("no terminator ({rest})")
    }

    #[test]
    fn sizes_and_framing() {
        assert_eq!(scan(&[b"a\r\n..b\r\n.\r\n+OK"]).unwrap(), (7, 3));
        assert_eq!(
            scan(&[b"a\r", b"\n.", b".b\r\n.", b"\r", b"\n"]).unwrap(),
            (7, 0)
        );
        assert_eq!(scan(&[b".\r\n"]).unwrap(), (0, 0));
        assert!(scan(&[b"a\nb\r\n.\r\n"]).is_err());
        assert!(scan(&[b"a\r\n.\rx"]).is_err());
    }
}
