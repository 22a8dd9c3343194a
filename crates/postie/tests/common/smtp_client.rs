//! The tests' SMTP/LMTP client over TCP, TLS or a Unix socket: raw bytes and whole replies,
//! and one delivery transaction for the tests that only need mail delivered.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use postie_proto::smtp::dot_stuff;

use super::{tls_stream, Transport};

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

    /// 2xx or 3xx: the command was accepted.
    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }
}

/// A raw SMTP/LMTP client: sends exactly the bytes it is given, reads replies.
pub struct SmtpClient {
    reader: BufReader<Transport>,
    pub greeting: Reply,
}

impl SmtpClient {
    pub fn tcp(addr: SocketAddr) -> SmtpClient {
        Self::over_tcp(TcpStream::connect(addr).expect("connect"))
    }

    /// A client on a connection made elsewhere (after a PROXY header, say).
    pub fn over_tcp(tcp: TcpStream) -> SmtpClient {
        Self::try_over_tcp(tcp).expect("a greeting")
    }

    /// A client on this connection, or None when it closes before its greeting.
    pub fn try_over_tcp(tcp: TcpStream) -> Option<SmtpClient> {
        tcp.set_read_timeout(Some(Duration::from_secs(120)))
            .unwrap();
        Self::over(Transport::Plain(tcp))
    }

    pub fn unix(path: &Path) -> SmtpClient {
        let unix = UnixStream::connect(path).expect("connect to the LMTP socket");
        unix.set_read_timeout(Some(Duration::from_secs(120)))
            .unwrap();
        Self::over(Transport::Unix(unix)).expect("a greeting")
    }

    fn over(stream: Transport) -> Option<SmtpClient> {
        let mut client = SmtpClient {
            reader: BufReader::new(stream),
            greeting: Reply {
                code: 0,
                lines: Vec::new(),
            },
        };
        client.greeting = client.try_reply()?;
        assert_eq!(client.greeting.code, 220, "{:?}", client.greeting);
        Some(client)
    }

    /// An LMTP session on `addr`, past its LHLO.
    pub fn lmtp(addr: SocketAddr) -> SmtpClient {
        let mut client = Self::tcp(addr);
        let lhlo = client.command("LHLO test");
        assert_eq!(lhlo.code, 250, "{lhlo:?}");
        client
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.try_send(bytes).unwrap();
    }

    fn try_send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let stream = self.reader.get_mut();
        stream.write_all(bytes)?;
        stream.flush()
    }

    /// Reads one reply, multi-line or not.
    pub fn reply(&mut self) -> Reply {
        self.try_reply()
            .expect("the connection closed before a reply")
    }

    /// Reads one reply; None when the connection closed (or failed) before a whole one.
    pub fn try_reply(&mut self) -> Option<Reply> {
        let mut lines = Vec::new();
        loop {
            let mut line = Vec::new();
            if self.reader.read_until(b'\n', &mut line).ok()? == 0 || !line.ends_with(b"\n") {
                return None;
            }
            assert!(line.ends_with(b"\r\n"), "reply line without CRLF: {line:?}");
            let line = String::from_utf8(line).unwrap();
            let line = line.trim_end();
            let code: u16 = line[..3].parse().unwrap();
            lines.push(line[4.min(line.len())..].to_owned());
            if line.as_bytes().get(3) != Some(&b'-') {
                return Some(Reply { code, lines });
            }
        }
    }

    pub fn command(&mut self, line: &str) -> Reply {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    /// One transaction from s@example.org to `to`: MAIL, RCPT, DATA, then `message`
    /// dot-stuffed. Returns the reply that ended it: the first refusal, or the one to the
    /// message.
    pub fn deliver(&mut self, to: &str, message: &[u8]) -> Reply {
        self.try_deliver(to, message)
            .expect("the connection closed during a delivery")
    }

    /// `deliver`, or None when the connection closed on the way.
    pub fn try_deliver(&mut self, to: &str, message: &[u8]) -> Option<Reply> {
        for command in [
            "MAIL FROM:<s@example.org>".to_owned(),
            format!("RCPT TO:<{to}>"),
            "DATA".into(),
        ] {
            self.try_send(format!("{command}\r\n").as_bytes()).ok()?;
            let reply = self.try_reply()?;
            if !reply.is_positive() {
                return Some(reply);
            }
        }
        self.try_send(&dot_stuff(message)).ok()?;
        self.try_reply()
    }

    /// Ends the session with QUIT and waits for the server's 221.
    pub fn quit(mut self) {
        let reply = self.command("QUIT");
        assert_eq!(reply.code, 221, "{reply:?}");
    }

    /// Sends STARTTLS, reads the 220 and continues over TLS.
    pub fn starttls(self, cert_pem: &str) -> SmtpClient {
        let mut client = self;
        let reply = client.command("STARTTLS");
        assert_eq!(reply.code, 220, "{reply:?}");
        client.upgrade(cert_pem)
    }

    /// The TLS handshake, after the server said 220 to STARTTLS.
    pub fn upgrade(self, cert_pem: &str) -> SmtpClient {
        let greeting = self.greeting.clone();
        let tcp = self.into_tcp();
        SmtpClient {
            reader: BufReader::new(Transport::Tls(Box::new(tls_stream(tcp, cert_pem)))),
            greeting,
        }
    }

    /// The plain TCP connection, for a test that goes on by hand; nothing may be buffered.
    pub fn into_tcp(self) -> TcpStream {
        let (tcp, unread) = self.into_parts();
        assert!(
            unread.is_empty(),
            "the server sent bytes the test did not read"
        );
        tcp
    }

    /// The plain TCP connection and what the server sent that was read but not consumed.
    pub fn into_parts(self) -> (TcpStream, Vec<u8>) {
        let unread = self.reader.buffer().to_vec();
        let Transport::Plain(tcp) = self.reader.into_inner() else {
            panic!("not a plain TCP connection")
        };
        (tcp, unread)
    }
}

/// One LMTP delivery over TCP, in a session of its own; returns the reply to the message.
pub fn lmtp_deliver(addr: SocketAddr, to: &str, message: &[u8]) -> Reply {
    let mut client = SmtpClient::lmtp(addr);
    let reply = client.deliver(to, message);
    client.quit();
    reply
}
