//! The blocking shell around [`ClientSession`]: a TCP connection, TLS (implicit or after
//! STLS), timeouts, and the pump that writes the session's output and feeds it what the
//! server sends.
//!
//! Blocking, not tokio: a fetch is one connection doing one thing at a time, in an order that
//! matters (write, fsync, record, then delete), and every destination (files, fsync, an MDA's
//! pipe) blocks anyway; threads and socket timeouts are all it needs.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use postie_proto::client::{ClientEvent, ClientSession};
use rustls::pki_types::ServerName;

use crate::error::FetchError;
use crate::target::{Target, TlsMode};
use crate::tls::Seen;

enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(tls) => &tls.sock,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// TLS parameters of an established connection.
#[derive(Debug, Clone)]
pub struct TlsInfo {
    pub version: String,
    pub cipher: String,
}

/// How long the steps of connecting took, for `postie probe`.
#[derive(Debug, Clone)]
pub struct Timings {
    pub resolved: Vec<SocketAddr>,
    pub resolve: Duration,
    pub connected: SocketAddr,
    pub connect: Duration,
}

/// One connection to a POP3 server with its protocol session.
pub struct Connection {
    stream: Stream,
    pub session: ClientSession,
    buffer: Vec<u8>,
    target: Target,
    tls_config: Arc<rustls::ClientConfig>,
    seen: Arc<Mutex<Seen>>,
    pub tls: Option<TlsInfo>,
    pub timings: Timings,
    timeout: Duration,
    /// Octets read from the server so far (progress and rates).
    pub received: u64,
}

/// Resolves and connects, trying each address in turn.
fn connect_tcp(target: &Target, timeout: Duration) -> Result<(TcpStream, Timings), FetchError> {
    let started = Instant::now();
    let resolved =
        crate::resolver::socket_addresses(&target.host, target.port).map_err(|source| {
            FetchError::Resolve {
                host: target.host.clone(),
                source,
            }
        })?;
    let resolve = started.elapsed();
    let mut last_error = io::Error::new(io::ErrorKind::NotFound, "the name has no addresses");
    for addr in &resolved {
        let started = Instant::now();
        match TcpStream::connect_timeout(addr, timeout) {
            Ok(tcp) => {
                let timings = Timings {
                    resolved: resolved.clone(),
                    resolve,
                    connected: *addr,
                    connect: started.elapsed(),
                };
                return Ok((tcp, timings));
            }
            Err(e) => last_error = e,
        }
    }
    Err(FetchError::Connect {
        addr: target.to_string(),
        source: last_error,
    })
}

impl Connection {
    /// Connects, and for implicit TLS completes the handshake; the greeting is not read yet.
    pub fn open(
        target: &Target,
        tls_config: Arc<rustls::ClientConfig>,
        seen: Arc<Mutex<Seen>>,
        timeout: Duration,
    ) -> Result<Connection, FetchError> {
        let mut connection = Self::open_plain(target, tls_config, seen, timeout)?;
        if target.tls == TlsMode::Implicit {
            connection.handshake()?;
        }
        Ok(connection)
    }

    /// Connects without starting TLS, even for implicit TLS (the probe times each step).
    pub fn open_plain(
        target: &Target,
        tls_config: Arc<rustls::ClientConfig>,
        seen: Arc<Mutex<Seen>>,
        timeout: Duration,
    ) -> Result<Connection, FetchError> {
        let (tcp, timings) = connect_tcp(target, timeout)?;
        let set = |r: io::Result<()>| {
            r.map_err(|source| FetchError::Connect {
                addr: target.to_string(),
                source,
            })
        };
        set(tcp.set_read_timeout(Some(timeout)))?;
        set(tcp.set_write_timeout(Some(timeout)))?;
        set(tcp.set_nodelay(true))?;
        Ok(Connection {
            stream: Stream::Plain(tcp),
            session: ClientSession::new(),
            buffer: vec![0; 64 * 1024],
            target: target.clone(),
            tls_config,
            seen,
            tls: None,
            timings,
            timeout,
            received: 0,
        })
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// What the certificate verifier saw.
    pub fn seen(&self) -> Seen {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Runs the TLS handshake on the plain connection (at once, or after STLS was accepted).
    pub fn handshake(&mut self) -> Result<(), FetchError> {
        let host = self.target.host.clone();
        let tls_error = |reason: String| FetchError::Tls {
            host: host.clone(),
            reason,
        };
        let name = ServerName::try_from(host.clone())
            .map_err(|_| tls_error(format!("{host:?} is not a valid server name")))?;
        let client = rustls::ClientConnection::new(Arc::clone(&self.tls_config), name)
            .map_err(|e| tls_error(e.to_string()))?;
        let placeholder = Stream::Plain(
            self.stream
                .tcp()
                .try_clone()
                .map_err(|e| tls_error(e.to_string()))?,
        );
        let Stream::Plain(mut tcp) = std::mem::replace(&mut self.stream, placeholder) else {
            return Err(tls_error("TLS is already active".into()));
        };
        let mut client = client;
        while client.is_handshaking() {
            if let Err(e) = client.complete_io(&mut tcp) {
                return Err(self.handshake_error(e));
            }
        }
        self.tls = Some(TlsInfo {
            version: client
                .protocol_version()
                .map_or("?".into(), |v| format!("{v:?}").replace("TLSv1_", "TLS 1.")),
            cipher: client
                .negotiated_cipher_suite()
                .map_or("?".into(), |c| format!("{:?}", c.suite())),
        });
        self.stream = Stream::Tls(Box::new(rustls::StreamOwned::new(client, tcp)));
        Ok(())
    }

    fn handshake_error(&self, error: io::Error) -> FetchError {
        let host = self.target.host.clone();
        if matches!(
            error.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ) {
            return FetchError::Timeout {
                host,
                secs: self.timeout.as_secs(),
                during: "TLS handshake",
                expects: "TLS",
            };
        }
        if let Some(problem) = self.seen().problem {
            return FetchError::Tls {
                host,
                reason: problem,
            };
        }
        let mut reason = error.to_string();
        if reason.contains("InvalidContentType")
            || reason.contains("corrupt message")
            || reason.contains("InvalidMessage")
        {
            reason.push_str(if self.target.tls == TlsMode::Implicit {
                ": the server does not speak TLS on this port; it is probably a plain POP3 port (use tls = \"starttls\", or port 995)"
            } else {
                ""
            });
        }
        FetchError::Tls { host, reason }
    }

    /// Writes pending output.
    pub fn flush(&mut self) -> Result<(), FetchError> {
        let output = std::mem::take(self.session.output());
        if output.is_empty() {
            return Ok(());
        }
        let result = self
            .stream
            .write_all(&output)
            .and_then(|()| self.stream.flush());
        let mut output = output;
        output.fill(0);
        result.map_err(|e| self.io_error(e, "sending a command"))
    }

    /// The next event, writing output and reading input as the session needs.
    pub fn event(&mut self, during: &'static str) -> Result<ClientEvent, FetchError> {
        loop {
            let event = self.session.next().map_err(|source| FetchError::Protocol {
                host: self.target.host.clone(),
                source,
            })?;
            // After next(): answering a SASL challenge puts output there while asking for input.
            self.flush()?;
            if event != ClientEvent::NeedInput {
                return Ok(event);
            }
            let n = loop {
                match self.stream.read(&mut self.buffer) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(self.io_error(e, during)),
                }
            };
            if n == 0 {
                return Err(FetchError::Disconnected {
                    host: self.target.host.clone(),
                    during,
                    reason: "the server closed the connection".into(),
                });
            }
            self.received += n as u64;
            self.session.feed(&self.buffer[..n]);
        }
    }

    fn io_error(&self, error: io::Error, during: &'static str) -> FetchError {
        let host = self.target.host.clone();
        match error.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => FetchError::Timeout {
                host,
                secs: self.timeout.as_secs(),
                during,
                expects: if self.target.tls == TlsMode::Implicit {
                    "POP3 over TLS"
                } else {
                    "plain POP3"
                },
            },
            _ => FetchError::Disconnected {
                host,
                during,
                reason: error.to_string(),
            },
        }
    }

    /// Sends a TLS close_notify where there is TLS; errors do not matter any more.
    pub fn close(mut self) {
        if let Stream::Tls(tls) = &mut self.stream {
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
    }
}
