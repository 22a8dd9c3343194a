//! Helpers for the `postie fetch` and `postie probe` tests: running the binary with an
//! accounts file, a throwaway Dovecot, a TCP proxy that cuts connections, an LMTP sink, a
//! TLS server with any certificate, and Python's `mailbox` module to read results back.
#![allow(dead_code)] // each test file uses a different part

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::common::{deliver_file, write_certificate, BIN};

/// `sha256:AB:…` of the first certificate in a PEM text.
pub fn fingerprint(cert_pem: &str) -> String {
    let der = rustls_pemfile::certs(&mut cert_pem.as_bytes())
        .next()
        .expect("a certificate")
        .expect("valid PEM");
    let digest = Sha256::digest(der.as_ref());
    let pairs: Vec<String> = digest.iter().map(|b| format!("{b:02X}")).collect();
    format!("sha256:{}", pairs.join(":"))
}

/// A folder with an accounts file, a state folder and destinations.
pub struct FetchEnv {
    pub dir: tempfile::TempDir,
}

/// The outcome of one `postie fetch` run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// The outcome of any finished command.
pub fn run_from(output: Output) -> Run {
    Run::from(output)
}

impl Run {
    fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl FetchEnv {
    pub fn new() -> FetchEnv {
        let dir = tempfile::tempdir().unwrap();
        // Dovecot's mail user must be able to reach folders below this one.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        FetchEnv { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes the accounts file: `accounts` is the TOML of the [accounts.*] tables.
    pub fn config(&self, accounts: &str) {
        let text = format!("state_dir = \"state\"\n{accounts}");
        std::fs::write(self.path("fetch.toml"), text).unwrap();
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command
            .arg("fetch")
            .arg("--config")
            .arg(self.path("fetch.toml"))
            .args(args)
            .env("HOME", self.dir.path())
            .stdin(Stdio::null());
        command
    }

    pub fn fetch(&self, args: &[&str]) -> Run {
        Run::from(self.command(args).output().unwrap())
    }

    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }
}

/// Every file's content in a Maildir's new/ and cur/.
pub fn maildir_contents(maildir: &Path) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for sub in ["new", "cur"] {
        if let Ok(entries) = std::fs::read_dir(maildir.join(sub)) {
            for entry in entries {
                out.push(std::fs::read(entry.unwrap().path()).unwrap());
            }
        }
    }
    out.sort();
    out
}

/// Runs Python code with `path` as sys.argv[1]; its stdout.
pub fn python(code: &str, path: &Path) -> String {
    let output = Command::new("python3")
        .arg("-c")
        .arg(code)
        .arg(path)
        .output()
        .expect("python3");
    assert!(
        output.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The messages of an mbox as Python's mailbox.mbox reads them (mboxrd quoting undone), each
/// as bytes, sorted.
pub fn mbox_messages(path: &Path) -> Vec<Vec<u8>> {
    let code = "import mailbox, sys\n\
                box = mailbox.mbox(sys.argv[1])\n\
                for key in box.keys():\n    sys.stdout.write(box.get_bytes(key).hex() + '\\n')\n";
    decode_hex_lines(&python(code, path))
}

/// The messages of a Maildir as Python's mailbox.Maildir reads them.
pub fn python_maildir_messages(path: &Path) -> Vec<Vec<u8>> {
    let code = "import mailbox, sys\n\
                box = mailbox.Maildir(sys.argv[1], factory=None, create=False)\n\
                for key in box.keys():\n    sys.stdout.write(box.get_bytes(key).hex() + '\\n')\n";
    decode_hex_lines(&python(code, path))
}

fn decode_hex_lines(text: &str) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = text.lines().map(|l| hex::decode(l).expect("hex")).collect();
    out.sort();
    out
}

/// Test messages with LF line endings (as Maildirs store them), of varied shapes: dots at
/// line starts, From_ lines, long lines, binary bytes, no final newline is avoided because a
/// POP3 server adds one.
pub fn sample_messages(count: usize, body_size: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| {
            let mut m = format!(
                "From: sender{i}@example.org\nTo: alice@example.org\nSubject: message {i}\nMessage-ID: <{i}@test>\n\n"
            )
            .into_bytes();
            m.extend_from_slice(b".leading dot\n..two dots\nFrom the start of a line\n>From quoted\n");
            m.extend_from_slice(&[0xC3, 0xA9, 0x00, 0xFF, b'\n']);
            let mut filled = 0;
            let mut n = 0u64;
            while filled < body_size {
                let line = format!("line {n} of message {i} {}\n", "x".repeat((n % 70) as usize));
                filled += line.len();
                m.extend_from_slice(line.as_bytes());
                n += 1;
            }
            m
        })
        .collect()
}

pub fn sorted(mut v: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    v.sort();
    v
}

/// A port free right now on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A throwaway Dovecot (Debian's dovecot-pop3d) on loopback ports, with its own folders,
/// passwd-file (user alice, password wonderland, {PLAIN} so SCRAM and APOP work) and
/// certificate. Mail belongs to `nobody`, since Dovecot will not access mail as root.
pub struct Dovecot {
    child: Child,
    pub dir: tempfile::TempDir,
    pub plain: SocketAddr,
    pub tls: SocketAddr,
    pub cert_pem: String,
}

impl Dovecot {
    pub fn start() -> Dovecot {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::set_permissions(root, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        for sub in ["run", "state", "mail"] {
            std::fs::create_dir_all(root.join(sub)).unwrap();
        }
        let cert_pem = write_certificate(root);
        std::fs::write(root.join("users"), "alice:{PLAIN}wonderland\n").unwrap();
        let (plain, tls) = (free_port(), free_port());
        let r = root.display();
        let config = format!(
            "protocols = pop3\nlisten = 127.0.0.1\nbase_dir = {r}/run\nstate_dir = {r}/state\n\
             log_path = {r}/dovecot.log\nssl = yes\nssl_cert = <{r}/cert.pem\nssl_key = <{r}/key.pem\n\
             disable_plaintext_auth = yes\nauth_mechanisms = plain login scram-sha-256 apop\n\
             mail_location = maildir:~/Maildir\nfirst_valid_uid = 1\n\
             passdb {{\n  driver = passwd-file\n  args = {r}/users\n}}\n\
             userdb {{\n  driver = static\n  args = uid=65534 gid=65534 home={r}/mail/%u\n}}\n\
             service pop3-login {{\n  inet_listener pop3 {{\n    port = {plain}\n  }}\n  \
             inet_listener pop3s {{\n    port = {tls}\n    ssl = yes\n  }}\n}}\n\
             service stats {{\n  unix_listener stats-reader {{\n    mode = 0666\n  }}\n  \
             unix_listener stats-writer {{\n    mode = 0666\n  }}\n}}\n"
        );
        std::fs::write(root.join("dovecot.conf"), config).unwrap();
        let child = Command::new("dovecot")
            .arg("-F")
            .arg("-c")
            .arg(root.join("dovecot.conf"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(root.join("dovecot.out")).unwrap())
            .spawn()
            .expect("dovecot (Debian package dovecot-pop3d) must be installed");
        let plain: SocketAddr = format!("127.0.0.1:{plain}").parse().unwrap();
        let tls: SocketAddr = format!("127.0.0.1:{tls}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(plain).is_err() || TcpStream::connect(tls).is_err() {
            assert!(
                Instant::now() < deadline,
                "dovecot did not start: {}",
                std::fs::read_to_string(root.join("dovecot.out")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Dovecot {
            child,
            cert_pem,
            dir,
            plain,
            tls,
        }
    }

    pub fn maildir(&self, user: &str) -> PathBuf {
        self.dir.path().join("mail").join(user).join("Maildir")
    }

    pub fn add_message(&self, user: &str, content: &[u8]) {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("1700000000.M{n:06}P{}.test", std::process::id());
        deliver_file(&self.maildir(user), &name, content);
        chown_nobody(&self.dir.path().join("mail"));
    }

    pub fn message_count(&self, user: &str) -> usize {
        maildir_contents(&self.maildir(user)).len()
    }
}

fn chown_nobody(path: &Path) {
    let status = Command::new("chown")
        .args(["-R", "nobody:nogroup"])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// When the proxy cuts the connection.
#[derive(Clone)]
pub enum Cut {
    /// After this many octets from the server (inside a RETR's body).
    ServerBytes(usize),
    /// Right after the client's first command line starting with this text reaches the
    /// server, before any answer comes back.
    ClientCommand(&'static str),
}

/// A TCP proxy between postie fetch and a server that cuts the first connection as told and
/// passes later ones through.
pub struct CutProxy {
    pub addr: SocketAddr,
    pub cuts: Arc<AtomicU32>,
}

impl CutProxy {
    pub fn start(upstream: SocketAddr, cut: Cut) -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let cuts = Arc::new(AtomicU32::new(0));
        let counter = Arc::clone(&cuts);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(upstream) else {
                    return;
                };
                let armed = counter.load(Ordering::SeqCst) == 0;
                let cut = cut.clone();
                let counter = Arc::clone(&counter);
                std::thread::spawn(move || relay(client, server, armed.then_some(cut), counter));
            }
        });
        CutProxy { addr, cuts }
    }
}

fn relay(client: TcpStream, server: TcpStream, cut: Option<Cut>, cuts: Arc<AtomicU32>) {
    let done = Arc::new(AtomicBool::new(false));
    let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    let ends = Arc::new((client.try_clone().unwrap(), server.try_clone().unwrap()));
    let kill = {
        let ends = Arc::clone(&ends);
        move || {
            let _ = ends.0.shutdown(std::net::Shutdown::Both);
            let _ = ends.1.shutdown(std::net::Shutdown::Both);
        }
    };
    let kill2 = {
        let ends = Arc::clone(&ends);
        move || {
            let _ = ends.0.shutdown(std::net::Shutdown::Both);
            let _ = ends.1.shutdown(std::net::Shutdown::Both);
        }
    };
    let client_cut = match &cut {
        Some(Cut::ClientCommand(prefix)) => Some(*prefix),
        _ => None,
    };
    let server_cut = match &cut {
        Some(Cut::ServerBytes(n)) => Some(*n),
        _ => None,
    };
    let cuts2 = Arc::clone(&cuts);
    let done2 = Arc::clone(&done);
    let upward = std::thread::spawn(move || {
        let mut client = client;
        let mut server = s2;
        let mut buf = [0u8; 4096];
        loop {
            let n = match client.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let chunk = &buf[..n];
            if server.write_all(chunk).is_err() {
                break;
            }
            // Commands are text on a plain connection; a pipelined batch holds several.
            let hit = client_cut.is_some_and(|p| {
                chunk.starts_with(p.as_bytes())
                    || chunk
                        .windows(p.len() + 1)
                        .any(|w| w[0] == b'\n' && &w[1..] == p.as_bytes())
            });
            if hit && !done2.swap(true, Ordering::SeqCst) {
                cuts2.fetch_add(1, Ordering::SeqCst);
                // Let the command reach the server, then cut before its answer returns.
                std::thread::sleep(Duration::from_millis(50));
                kill2();
                break;
            }
        }
    });
    let mut from_server = server;
    let mut to_client = c2;
    let mut total = 0usize;
    let mut buf = [0u8; 4096];
    loop {
        let n = match from_server.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if done.load(Ordering::SeqCst) {
            break;
        }
        let mut n = n;
        if let Some(limit) = server_cut {
            if total + n >= limit {
                n = limit - total;
                let _ = to_client.write_all(&buf[..n]);
                cuts.fetch_add(1, Ordering::SeqCst);
                kill();
                break;
            }
        }
        total += n;
        if to_client.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    kill();
    let _ = upward.join();
}

/// An LMTP server that accepts every message and keeps the DATA, un-stuffed.
pub struct LmtpSink {
    pub addr: SocketAddr,
    pub messages: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl LmtpSink {
    pub fn start() -> LmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let messages = Arc::new(Mutex::new(Vec::new()));
        let store = Arc::clone(&messages);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let store = Arc::clone(&store);
                std::thread::spawn(move || lmtp_session(stream, store));
            }
        });
        LmtpSink { addr, messages }
    }
}

fn lmtp_session(stream: TcpStream, store: Arc<Mutex<Vec<Vec<u8>>>>) {
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let _ = writer.write_all(b"220 sink LMTP\r\n");
    loop {
        let mut line = Vec::new();
        if reader.read_until(b'\n', &mut line).unwrap_or(0) == 0 {
            return;
        }
        let upper = String::from_utf8_lossy(&line).to_ascii_uppercase();
        if upper.starts_with("LHLO") {
            let _ = writer.write_all(b"250-sink\r\n250 PIPELINING\r\n");
        } else if upper.starts_with("DATA") {
            let _ = writer.write_all(b"354 go\r\n");
            let mut message = Vec::new();
            loop {
                let mut line = Vec::new();
                if reader.read_until(b'\n', &mut line).unwrap_or(0) == 0 {
                    return;
                }
                if line == b".\r\n" {
                    break;
                }
                message.extend_from_slice(line.strip_prefix(b".").unwrap_or(&line));
            }
            store.lock().unwrap().push(message);
            let _ = writer.write_all(b"250 2.0.0 delivered\r\n");
        } else if upper.starts_with("QUIT") {
            let _ = writer.write_all(b"221 bye\r\n");
            return;
        } else {
            let _ = writer.write_all(b"250 ok\r\n");
        }
    }
}

/// A POP3S server in the test process with any certificate: greets, answers CAPA and QUIT.
pub fn tls_greeter(cert_pem: String, key_pem: String) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let certs: Vec<_> = rustls_pemfile::certs(&mut cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap();
    let key = rustls_pemfile::private_key(&mut key_pem.as_bytes())
        .unwrap()
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap(),
    );
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let config = Arc::clone(&config);
            std::thread::spawn(move || {
                let Ok(conn) = rustls::ServerConnection::new(config) else {
                    return;
                };
                let mut tls = rustls::StreamOwned::new(conn, stream);
                if tls.write_all(b"+OK test server ready\r\n").is_err() {
                    return;
                }
                let mut reader = BufReader::new(tls);
                loop {
                    let mut line = Vec::new();
                    if reader.read_until(b'\n', &mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let answer: &[u8] = if line.starts_with(b"CAPA") {
                        b"+OK\r\nUSER\r\nSASL PLAIN\r\n.\r\n"
                    } else {
                        b"+OK bye\r\n"
                    };
                    if reader.get_mut().write_all(answer).is_err() || line.starts_with(b"QUIT") {
                        return;
                    }
                }
            });
        }
    });
    addr
}
