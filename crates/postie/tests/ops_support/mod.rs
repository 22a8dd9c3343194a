//! Harness for the operations tests (ops_*.rs): a `postie serve` whose configuration the
//! test writes section by section, with its log, signals, a raw HTTP client and metrics.
#![allow(dead_code)] // each test file uses a different part of the harness

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{deliver_file, Client, BIN, USERS};

pub struct OpsServer {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub plain: SocketAddr,
    pub tls: SocketAddr,
    pub cert_pem: String,
    pub log_path: PathBuf,
}

/// A self-signed certificate for localhost, written as cert.pem and key.pem; returns the
/// certificate's PEM.
pub fn write_cert(dir: &Path) -> String {
    let generated =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    std::fs::write(dir.join("cert.pem"), generated.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), generated.key_pair.serialize_pem()).unwrap();
    generated.cert.pem()
}

/// The configuration every ops server starts from; `top` goes before the first section,
/// `pop3` into [pop3], `sections` at the end.
pub fn config(top: &str, pop3: &str, sections: &str) -> String {
    format!(
        "hostname = \"test.example\"\n{top}\n\
         [pop3]\nlisten = [\"127.0.0.1:0\"]\nlisten_tls = [\"127.0.0.1:0\"]\n{pop3}\n\
         [tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n\
         [auth]\npasswd_file = \"users\"\nfailure_delay_secs = 0\n\
         [mail]\nmaildir = \"mail/{{user}}/Maildir\"\n{sections}\n"
    )
}

impl OpsServer {
    pub fn start(top: &str, pop3: &str, sections: &str) -> OpsServer {
        Self::start_with_args(top, pop3, sections, &["--allow-root"])
    }

    pub fn start_with_args(top: &str, pop3: &str, sections: &str, args: &[&str]) -> OpsServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let cert_pem = write_cert(dir.path());
        std::fs::write(dir.path().join("users"), USERS).unwrap();
        std::fs::write(dir.path().join("postie.toml"), config(top, pop3, sections)).unwrap();
        let mut command = Command::new(BIN);
        command
            .arg("serve")
            .args(args)
            .arg("--config")
            .arg(dir.path().join("postie.toml"));
        Self::spawn(dir, cert_pem, command)
    }

    /// Runs `command` (a `postie serve` of the folder's configuration) and waits until it
    /// listens.
    pub fn spawn(dir: tempfile::TempDir, cert_pem: String, mut command: Command) -> OpsServer {
        let log_path = dir.path().join("server.log");
        let child = command
            .env("POSTIE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_path).unwrap())
            .spawn()
            .expect("start postie");
        let mut server = OpsServer {
            child,
            dir,
            plain: SocketAddr::from(([0, 0, 0, 0], 0)),
            tls: SocketAddr::from(([0, 0, 0, 0], 0)),
            cert_pem,
            log_path,
        };
        server.plain = server.listener("pop3 (STLS)");
        server.tls = server.listener("pop3s (implicit TLS)");
        server
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Waits until the log holds `needle` `count` times.
    pub fn wait_for_log(&self, needle: &str, count: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let log = self.log();
            if log.matches(needle).count() >= count {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in the log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The address a `listening` line names for `kind` (http, lmtp, smtp), in the text or
    /// the JSON log format.
    pub fn listener(&self, kind: &str) -> SocketAddr {
        let deadline = Instant::now() + Duration::from_secs(30);
        let tags = [format!("kind=\"{kind}\""), format!("\"kind\":\"{kind}\"")];
        loop {
            let log = self.log();
            let found = log
                .lines()
                .filter(|l| l.contains("listening") && tags.iter().any(|t| l.contains(t.as_str())))
                .find_map(|l| {
                    let start = l
                        .find("addr=")
                        .map(|i| i + 5)
                        .or_else(|| l.find("\"addr\":\"").map(|i| i + 8))?;
                    let rest = &l[start..];
                    let end = rest.find([' ', '"']).unwrap_or(rest.len());
                    rest[..end].parse().ok()
                });
            if let Some(addr) = found {
                return addr;
            }
            assert!(Instant::now() < deadline, "no {kind} listener:\n{log}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn signal(&self, signal: libc::c_int) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill with a valid signal number on our own child.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    }

    /// Waits for the server to exit and returns whether it exited successfully.
    pub fn wait_exit(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            assert!(
                Instant::now() < deadline,
                "postie did not exit:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn maildir(&self, user: &str) -> PathBuf {
        self.dir.path().join("mail").join(user).join("Maildir")
    }

    /// Puts a message into a user's Maildir as an MTA would.
    pub fn add_message(&self, user: &str, name: &str, content: &[u8]) {
        deliver_file(&self.maildir(user), name, content);
    }

    /// Every message file of a user, sorted, with its content.
    pub fn messages(&self, user: &str) -> Vec<Vec<u8>> {
        let mut files = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(entries) = std::fs::read_dir(self.maildir(user).join(sub)) {
                files.extend(entries.map(|e| e.unwrap().path()));
            }
        }
        let mut contents: Vec<_> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
        contents.sort();
        contents
    }

    pub fn tls_client(&self) -> Client {
        Client::implicit_tls(self.tls, &self.cert_pem)
    }

    pub fn plain_client(&self) -> Client {
        Client::plain(self.plain)
    }

    /// The value of one sample of /metrics (0 when the series has not appeared).
    pub fn metric(&self, series: &str) -> f64 {
        let (status, body) = http(
            self.listener("http"),
            "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
        );
        assert_eq!(status, 200, "{body}");
        body.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0.0)
    }
}

impl Drop for OpsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends one raw HTTP request and returns the status and body.
pub fn http(addr: SocketAddr, request: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Runs a Python snippet with `input` on standard input and returns its standard output.
pub fn python(script: &str, input: &str) -> String {
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 (scripts/test installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// One LMTP delivery over TCP; returns the reply to the end of DATA.
pub fn lmtp_deliver(addr: SocketAddr, to: &str, message: &str) -> String {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    lmtp_over(stream, to, message)
}

pub fn lmtp_over(mut stream: TcpStream, to: &str, message: &str) -> String {
    let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
    let mut reply = || {
        let mut text = String::new();
        loop {
            let mut line = String::new();
            std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
            text.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return text;
            }
        }
    };
    assert!(reply().starts_with("220"));
    for command in [
        "LHLO test\r\n".to_owned(),
        "MAIL FROM:<sender@example.net>\r\n".into(),
        format!("RCPT TO:<{to}>\r\n"),
        "DATA\r\n".into(),
    ] {
        stream.write_all(command.as_bytes()).unwrap();
        let answer = reply();
        assert!(
            answer.starts_with('2') || answer.starts_with('3'),
            "{command}: {answer}"
        );
    }
    stream
        .write_all(format!("{message}\r\n.\r\n").as_bytes())
        .unwrap();
    let answer = reply();
    stream.write_all(b"QUIT\r\n").unwrap();
    answer
}
