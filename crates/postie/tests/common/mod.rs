//! Test harness: the real `postie` binary as a server on 127.0.0.1 (server.rs), a small POP3
//! client over real sockets, plain or TLS, an SMTP/LMTP client (smtp_client.rs) and the tests'
//! random source (random.rs).
#![allow(dead_code)] // each test file uses a different part of the harness

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_postie");

mod random;
mod server;
mod smtp_client;

// Each test file uses a different part of these too.
#[allow(unused_imports)]
pub use random::Random;
#[allow(unused_imports)]
pub use server::{write_certificate, ServerBuilder, TestServer, USERS};
#[allow(unused_imports)]
pub use smtp_client::{lmtp_deliver, Reply, SmtpClient};

/// A client's connection: plain TCP until STLS or STARTTLS, TLS from the start, or a Unix
/// socket.
pub enum Transport {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
    Unix(UnixStream),
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Transport::Plain(s) => s.read(buf),
            Transport::Tls(s) => s.read(buf),
            Transport::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Transport::Plain(s) => s.write(buf),
            Transport::Tls(s) => s.write(buf),
            Transport::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Transport::Plain(s) => s.flush(),
            Transport::Tls(s) => s.flush(),
            Transport::Unix(s) => s.flush(),
        }
    }
}

/// A minimal POP3 client for tests: sends lines, reads status lines and multi-line bodies.
pub struct Client {
    reader: BufReader<Transport>,
    pub greeting: String,
}

impl Client {
    pub fn plain(addr: SocketAddr) -> Client {
        let tcp = TcpStream::connect(addr).expect("connect");
        tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Self::over(Transport::Plain(tcp))
    }

    pub fn implicit_tls(addr: SocketAddr, cert_pem: &str) -> Client {
        let tcp = TcpStream::connect(addr).expect("connect");
        tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Self::over(Transport::Tls(Box::new(tls_stream(tcp, cert_pem))))
    }

    /// A client on a connection made elsewhere (from a chosen source address, say).
    pub fn over_tcp(tcp: TcpStream) -> Client {
        Self::over(Transport::Plain(tcp))
    }

    fn over(stream: Transport) -> Client {
        let mut client = Client {
            reader: BufReader::new(stream),
            greeting: String::new(),
        };
        client.greeting = client.line();
        client
    }

    /// Sends STLS and continues over TLS.
    pub fn stls(self, cert_pem: &str) -> Client {
        let mut client = self;
        let answer = client.command("STLS");
        assert!(answer.starts_with("+OK"), "{answer}");
        client.upgrade(cert_pem)
    }

    /// Runs the TLS handshake on this plain connection (after the server said +OK to STLS).
    pub fn upgrade(self, cert_pem: &str) -> Client {
        let client = self;
        assert!(
            client.reader.buffer().is_empty(),
            "server sent bytes after +OK to STLS"
        );
        let Transport::Plain(tcp) = client.reader.into_inner() else {
            panic!("STLS on a TLS connection")
        };
        let tls = Transport::Tls(Box::new(tls_stream(tcp, cert_pem)));
        Client {
            reader: BufReader::new(tls),
            greeting: client.greeting,
        }
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).unwrap();
        self.reader.get_mut().flush().unwrap();
    }

    /// Reads one line, without its CRLF; empty on EOF.
    pub fn line(&mut self) -> String {
        String::from_utf8_lossy(&self.raw_line())
            .trim_end_matches(['\r', '\n'])
            .to_owned()
    }

    pub fn raw_line(&mut self) -> Vec<u8> {
        let mut line = Vec::new();
        let _ = self.reader.read_until(b'\n', &mut line);
        line
    }

    pub fn command(&mut self, line: &str) -> String {
        self.send_raw(format!("{line}\r\n").as_bytes());
        self.line()
    }

    /// Reads a multi-line body after a +OK line: un-stuffed bytes with CRLFs.
    pub fn body(&mut self) -> Vec<u8> {
        let mut content = Vec::new();
        loop {
            let line = self.raw_line();
            assert!(
                !line.is_empty(),
                "connection closed inside a multi-line response"
            );
            assert!(line.ends_with(b"\r\n"), "line without CRLF: {line:?}");
            if line == b".\r\n" {
                return content;
            }
            content.extend_from_slice(line.strip_prefix(b".").unwrap_or(&line));
        }
    }

    pub fn login(&mut self, user: &str, password: &str) {
        let answer = self.command(&format!("USER {user}"));
        assert!(answer.starts_with("+OK"), "{answer}");
        let answer = self.command(&format!("PASS {password}"));
        assert!(answer.starts_with("+OK"), "{answer}");
    }

    pub fn retr(&mut self, n: usize) -> Vec<u8> {
        let answer = self.command(&format!("RETR {n}"));
        assert!(answer.starts_with("+OK"), "{answer}");
        self.body()
    }

    /// Fills `buf` with the next raw bytes from the server.
    pub fn read_exact_raw(&mut self, buf: &mut [u8]) {
        self.reader.read_exact(buf).unwrap();
    }

    /// Appends the raw bytes from the server until it closes the connection.
    pub fn read_to_end_raw(&mut self, buf: &mut Vec<u8>) -> std::io::Result<usize> {
        self.reader.read_to_end(buf)
    }

    /// True when the server has closed the connection.
    pub fn is_closed(&mut self) -> bool {
        self.raw_line().is_empty()
    }
}

pub fn tls_stream(
    tcp: TcpStream,
    cert_pem: &str,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut cert_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    rustls::StreamOwned::new(conn, tcp)
}

/// The path of a program on PATH, or in the sbin folders a non-root PATH may lack.
pub fn find_program(program: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
}

/// Puts `content` into `maildir` as an MTA would: tmp/NAME, then a rename into new/; creates
/// the Maildir if needed. Returns the path in new/.
pub fn deliver_file(maildir: &Path, name: &str, content: &[u8]) -> PathBuf {
    for sub in ["tmp", "new", "cur"] {
        std::fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    let tmp = maildir.join("tmp").join(name);
    std::fs::write(&tmp, content).unwrap();
    let new = maildir.join("new").join(name);
    std::fs::rename(&tmp, &new).unwrap();
    new
}

/// The CRLF form of a message, as RETR must return it.
pub fn crlf_form(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, &byte) in message.iter().enumerate() {
        if byte == b'\n' && (i == 0 || message[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(byte);
    }
    if message.last().is_some_and(|&b| b != b'\n') {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// `postie user ARGS --config CONFIG`, with `stdin` as its standard input.
pub fn postie_user(config: &Path, args: &[&str], stdin: &str) -> std::process::Output {
    let mut child = std::process::Command::new(BIN)
        .arg("user")
        .args(args)
        .arg("--config")
        .arg(config)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("postie runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}
