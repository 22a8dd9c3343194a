//! Test harness: runs the real `postie` binary on 127.0.0.1 with a generated certificate, and
//! a small POP3 client over real sockets, plain or TLS.
#![allow(dead_code)] // each test file uses a different part of the harness

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_postie");

/// A running `postie serve` with its own folder, certificate and users.
pub struct TestServer {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub plain: SocketAddr,
    pub tls: SocketAddr,
    pub cert_pem: String,
    stderr_log: PathBuf,
}

/// Users known to every test server: name, password, passwd-file entry.
pub const USERS: &str = "alice:{PLAIN}wonderland\nbob:{PLAIN}pass word with spaces\n";

impl TestServer {
    pub fn start() -> TestServer {
        Self::start_with("")
    }

    /// Starts a server; `pop3_extra` is added to its [pop3] section.
    pub fn start_with(pop3_extra: &str) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let generated =
            rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
                .unwrap();
        std::fs::write(dir.path().join("cert.pem"), generated.cert.pem()).unwrap();
        std::fs::write(
            dir.path().join("key.pem"),
            generated.key_pair.serialize_pem(),
        )
        .unwrap();
        std::fs::write(dir.path().join("users"), USERS).unwrap();
        let config = format!(
            "hostname = \"test.example\"\n\
             [pop3]\nlisten = [\"127.0.0.1:0\"]\nlisten_tls = [\"127.0.0.1:0\"]\n{pop3_extra}\n\
             [tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n\
             [auth]\npasswd_file = \"users\"\nfailure_delay_secs = 0\n\
             [mail]\nmaildir = \"mail/{{user}}/Maildir\"\n"
        );
        std::fs::write(dir.path().join("postie.toml"), config).unwrap();
        let stderr_log = dir.path().join("server.log");
        let child = Command::new(BIN)
            // CI runs as root; these servers need no other user.
            .args(["serve", "--allow-root", "--config"])
            .arg(dir.path().join("postie.toml"))
            .env("POSTIE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr_log).unwrap())
            .spawn()
            .expect("start postie");
        let (plain, tls) = wait_for_listeners(&stderr_log);
        TestServer {
            child,
            cert_pem: generated.cert.pem(),
            dir,
            plain,
            tls,
            stderr_log,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    pub fn maildir(&self, user: &str) -> PathBuf {
        self.dir.path().join("mail").join(user).join("Maildir")
    }

    /// Puts a message into a user's Maildir as an MTA would: tmp/, then a rename into new/.
    pub fn add_message(&self, user: &str, content: &[u8]) -> PathBuf {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let name = format!("{secs}.M{n:06}P{}.testhost", std::process::id());
        deliver_file(&self.maildir(user), &name, content)
    }

    /// All message files of a user's Maildir (new/ and cur/).
    pub fn message_files(&self, user: &str) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(entries) = std::fs::read_dir(self.maildir(user).join(sub)) {
                files.extend(entries.map(|e| e.unwrap().path()));
            }
        }
        files.sort();
        files
    }

    pub fn plain_client(&self) -> Client {
        Client::plain(self.plain)
    }

    pub fn tls_client(&self) -> Client {
        Client::implicit_tls(self.tls, &self.cert_pem)
    }

    pub fn write_cert(&self, path: &Path) {
        std::fs::write(path, &self.cert_pem).unwrap();
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for_listeners(log: &Path) -> (SocketAddr, SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let addr_of = |kind: &str| {
            text.lines()
                .filter(|l| l.contains("listening") && l.contains(kind))
                .find_map(|l| {
                    l.split_whitespace()
                        .find_map(|w| w.strip_prefix("addr=")?.parse::<SocketAddr>().ok())
                })
        };
        if let (Some(plain), Some(tls)) = (addr_of("STLS"), addr_of("implicit TLS")) {
            return (plain, tls);
        }
        assert!(
            Instant::now() < deadline,
            "postie did not start listening:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The client's connection: plain until STLS, or TLS from the start.
pub enum Transport {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Transport::Plain(s) => s.read(buf),
            Transport::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Transport::Plain(s) => s.write(buf),
            Transport::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Transport::Plain(s) => s.flush(),
            Transport::Tls(s) => s.flush(),
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

/// The CRLF form of a message, as RETR must return it.
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

/// Mail intake (LMTP, SMTP, `postie deliver`): a server that also listens for LMTP on TCP and a
/// Unix socket and for SMTP (domain example.org, STARTTLS with the test certificate).
impl TestServer {
    /// The `*_extra` strings go into the `[mail]` (quotas), `[lmtp]` and `[smtp]` sections.
    pub fn start_intake(mail_extra: &str, lmtp_extra: &str, smtp_extra: &str) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let generated =
            rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
                .unwrap();
        std::fs::write(dir.path().join("cert.pem"), generated.cert.pem()).unwrap();
        std::fs::write(
            dir.path().join("key.pem"),
            generated.key_pair.serialize_pem(),
        )
        .unwrap();
        std::fs::write(dir.path().join("users"), USERS).unwrap();
        let config = format!(
            "hostname = \"test.example\"\n\
             [pop3]\nlisten = [\"127.0.0.1:0\"]\nlisten_tls = [\"127.0.0.1:0\"]\n\
             [tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n\
             [auth]\npasswd_file = \"users\"\nfailure_delay_secs = 0\n\
             [mail]\nmaildir = \"mail/{{user}}/Maildir\"\n{mail_extra}\n\
             [lmtp]\nlisten = [\"127.0.0.1:0\", \"unix:lmtp.sock\"]\n{lmtp_extra}\n\
             [smtp]\nlisten = [\"127.0.0.1:0\"]\ndomains = [\"example.org\"]\n{smtp_extra}\n"
        );
        std::fs::write(dir.path().join("postie.toml"), config).unwrap();
        let stderr_log = dir.path().join("server.log");
        let child = Command::new(BIN)
            // CI runs as root; these servers need no other user.
            .args(["serve", "--allow-root", "--config"])
            .arg(dir.path().join("postie.toml"))
            .env("POSTIE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr_log).unwrap())
            .spawn()
            .expect("start postie");
        let (plain, tls) = wait_for_listeners(&stderr_log);
        let server = TestServer {
            child,
            cert_pem: generated.cert.pem(),
            dir,
            plain,
            tls,
            stderr_log,
        };
        server.intake_addr("smtp");
        server
    }

    /// The TCP address of the `lmtp` or `smtp` listener, once it is listening.
    pub fn intake_addr(&self, kind: &str) -> SocketAddr {
        let deadline = Instant::now() + Duration::from_secs(30);
        let tag = format!("kind=\"{kind}\"");
        loop {
            let text = self.log();
            let found = text
                .lines()
                .filter(|l| l.contains("listening") && l.contains(&tag))
                .find_map(|l| {
                    l.split_whitespace()
                        .find_map(|w| w.strip_prefix("addr=")?.parse::<SocketAddr>().ok())
                });
            if let Some(addr) = found {
                return addr;
            }
            assert!(Instant::now() < deadline, "no {kind} listener:\n{text}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The LMTP Unix socket.
    pub fn lmtp_socket(&self) -> PathBuf {
        self.dir.path().join("lmtp.sock")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("postie.toml")
    }
}
