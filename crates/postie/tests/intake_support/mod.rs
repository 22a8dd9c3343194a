//! Helpers for the mail intake tests: a raw SMTP/LMTP client over TCP, TLS or a Unix socket,
//! fetching by POP3, and telling the trace headers a delivery adds from the message.
#![allow(dead_code)] // each test file uses a different part

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::{tls_stream, TestServer};

/// Passwords of the harness users.
pub fn password(user: &str) -> &'static str {
    match user {
        "alice" => "wonderland",
        "bob" => "pass word with spaces",
        other => panic!("no password for {other}"),
    }
}

enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Tcp(s) => s.flush(),
            Stream::Unix(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// One reply: its code and its lines of text (without the code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }
}

/// A raw SMTP/LMTP client: sends exactly the bytes it is given, reads replies.
pub struct SmtpClient {
    reader: BufReader<Stream>,
    pub greeting: Reply,
}

impl SmtpClient {
    pub fn tcp(addr: SocketAddr) -> SmtpClient {
        let tcp = TcpStream::connect(addr).expect("connect");
        tcp.set_read_timeout(Some(Duration::from_secs(120)))
            .unwrap();
        Self::over(Stream::Tcp(tcp))
    }

    pub fn unix(path: &Path) -> SmtpClient {
        let unix = UnixStream::connect(path).expect("connect to the LMTP socket");
        unix.set_read_timeout(Some(Duration::from_secs(120)))
            .unwrap();
        Self::over(Stream::Unix(unix))
    }

    fn over(stream: Stream) -> SmtpClient {
        let mut client = SmtpClient {
            reader: BufReader::new(stream),
            greeting: Reply {
                code: 0,
                lines: Vec::new(),
            },
        };
        client.greeting = client.reply();
        assert_eq!(client.greeting.code, 220, "{:?}", client.greeting);
        client
    }

    pub fn send(&mut self, bytes: &[u8]) {
        let stream = self.reader.get_mut();
        stream.write_all(bytes).unwrap();
        stream.flush().unwrap();
    }

    /// Reads one reply, multi-line or not.
    pub fn reply(&mut self) -> Reply {
        let mut lines = Vec::new();
        loop {
            let mut line = Vec::new();
            self.reader.read_until(b'\n', &mut line).unwrap();
            assert!(line.ends_with(b"\r\n"), "reply line without CRLF: {line:?}");
            let line = String::from_utf8(line).unwrap();
            let line = line.trim_end();
            let code: u16 = line[..3].parse().unwrap();
            lines.push(line[4.min(line.len())..].to_owned());
            if line.as_bytes().get(3) != Some(&b'-') {
                return Reply { code, lines };
            }
        }
    }

    pub fn command(&mut self, line: &str) -> Reply {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    /// Sends STARTTLS (or has sent it, with `already_sent`), reads the 220 and continues over TLS.
    pub fn starttls(self, cert_pem: &str) -> SmtpClient {
        let mut client = self;
        let reply = client.command("STARTTLS");
        assert_eq!(reply.code, 220, "{reply:?}");
        client.upgrade(cert_pem)
    }

    /// The TLS handshake, after the server said 220 to STARTTLS.
    pub fn upgrade(self, cert_pem: &str) -> SmtpClient {
        assert!(
            self.reader.buffer().is_empty(),
            "server sent bytes after its 220 to STARTTLS"
        );
        let Stream::Tcp(tcp) = self.reader.into_inner() else {
            panic!("STARTTLS over something else than plain TCP")
        };
        SmtpClient {
            reader: BufReader::new(Stream::Tls(Box::new(tls_stream(tcp, cert_pem)))),
            greeting: self.greeting,
        }
    }
}

/// Every message of a user's maildrop, by POP3 RETR.
pub fn fetch_all(server: &TestServer, user: &str) -> Vec<Vec<u8>> {
    let mut client = server.plain_client();
    client.login(user, password(user));
    let stat = client.command("STAT");
    let count: usize = stat.split_whitespace().nth(1).unwrap().parse().unwrap();
    let messages = (1..=count).map(|n| client.retr(n)).collect();
    assert!(client.command("QUIT").starts_with("+OK"));
    messages
}

/// The trace headers a delivery put on top, and the message below them.
pub fn split_trace(message: &[u8]) -> (String, Vec<u8>) {
    let mut at = 0;
    let mut in_received = false;
    while at < message.len() {
        let end = message[at..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(message.len(), |lf| at + lf + 1);
        let line = &message[at..end];
        let trace = line.starts_with(b"Return-Path: ")
            || line.starts_with(b"Delivered-To: ")
            || line.starts_with(b"Received: ");
        let continuation = in_received && (line.starts_with(b"\t") || line.starts_with(b" "));
        if !trace && !continuation {
            break;
        }
        in_received = line.starts_with(b"Received: ") || continuation;
        at = end;
    }
    (
        String::from_utf8_lossy(&message[..at]).into_owned(),
        message[at..].to_vec(),
    )
}

/// The path of a program the tests run; `scripts/test` installs them.
pub fn require(program: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
            .map(|dir| dir.join(program))
            .find(|path| path.is_file())
    });
    found.unwrap_or_else(|| {
        panic!("{program} is not installed: run scripts/test, which installs the test dependencies")
    })
}

/// A message with everything that breaks naive mail code: a dot line, long lines, NUL, 8-bit,
/// UTF-8, bare LF, and no final newline.
pub fn tricky_message() -> Vec<u8> {
    let mut message = b"From: sender@example.net\r\nTo: alice@example.org\r\nSubject: =?UTF-8?B?w6TDtsO8?=\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n".to_vec();
    message.extend_from_slice(b".\r\n..two dots\r\n.leading dot\r\n");
    message.extend_from_slice("grüß dich 📬\r\n".as_bytes());
    message.extend_from_slice(b"NUL \0 and 8-bit \xe9\xff here\r\n");
    message.extend(std::iter::repeat_n(b'L', 20_000));
    message.extend_from_slice(b"\r\nbare LF\nthen CRLF\r\nno final newline");
    message
}
