//! Support for the hardening tests: a server that is killed with SIGKILL and started again on
//! the same Maildirs, connections from chosen loopback addresses, the open-file limit, what a
//! maildrop holds as POP3 shows it, and scratch filesystems.
#![allow(dead_code)] // each test file uses a different part

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::FromRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{deliver_file, Client, BIN, USERS};

/// Extra lines for the sections of a server's configuration.
#[derive(Default, Clone)]
pub struct Sections {
    pub pop3: String,
    pub auth: String,
    pub mail: String,
    /// With LMTP on TCP (lines for its section, possibly empty) when set.
    pub lmtp: Option<String>,
    /// With SMTP for example.org when set.
    pub smtp: Option<String>,
}

/// A `postie serve` whose process can be killed and started again on the same folder.
pub struct Server {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub plain: SocketAddr,
    pub tls: SocketAddr,
    pub lmtp: Option<SocketAddr>,
    pub smtp: Option<SocketAddr>,
    pub cert_pem: String,
    sections: Sections,
    starts: u32,
}

impl Server {
    pub fn start(sections: Sections) -> Server {
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
        std::fs::create_dir_all(dir.path().join("mail")).unwrap();
        let mut server = Server {
            child: Command::new("true").spawn().unwrap(),
            dir,
            plain: ([0, 0, 0, 0], 0).into(),
            tls: ([0, 0, 0, 0], 0).into(),
            lmtp: None,
            smtp: None,
            cert_pem: generated.cert.pem(),
            sections,
            starts: 0,
        };
        server.write_config();
        server.spawn();
        server
    }

    fn write_config(&self) {
        let Sections {
            pop3,
            auth,
            mail,
            lmtp,
            smtp,
        } = &self.sections;
        let mut config = format!(
            "hostname = \"test.example\"\n\
             [pop3]\nlisten = [\"127.0.0.1:0\"]\nlisten_tls = [\"127.0.0.1:0\"]\n{pop3}\n\
             [tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n\
             [auth]\npasswd_file = \"users\"\n{auth}\n\
             [mail]\nmaildir = \"mail/{{user}}/Maildir\"\n{mail}\n"
        );
        if let Some(lmtp) = lmtp {
            config.push_str(&format!("[lmtp]\nlisten = [\"127.0.0.1:0\"]\n{lmtp}\n"));
        }
        if let Some(smtp) = smtp {
            config.push_str(&format!(
                "[smtp]\nlisten = [\"127.0.0.1:0\"]\ndomains = [\"example.org\"]\n{smtp}\n"
            ));
        }
        std::fs::write(self.dir.path().join("postie.toml"), config).unwrap();
    }

    fn spawn(&mut self) {
        self.starts += 1;
        let log = self.log_path();
        self.child = Command::new(BIN)
            // CI runs as root; these servers need no other user.
            .args(["serve", "--allow-root", "--config"])
            .arg(self.dir.path().join("postie.toml"))
            .env("POSTIE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start postie");
        self.plain = self.listener("STLS");
        self.tls = self.listener("implicit TLS");
        self.lmtp = self
            .sections
            .lmtp
            .as_ref()
            .map(|_| self.intake_addr("lmtp"));
        self.smtp = self
            .sections
            .smtp
            .as_ref()
            .map(|_| self.intake_addr("smtp"));
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join(format!("server-{}.log", self.starts))
    }

    /// The log of the running process.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// SIGKILL, then a fresh process on the same configuration and Maildirs.
    pub fn kill_and_restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn intake_addr(&self, kind: &str) -> SocketAddr {
        self.listener(&format!("kind=\"{kind}\""))
    }

    /// The address of the listener whose log line holds `tag`, once it listens.
    fn listener(&self, tag: &str) -> SocketAddr {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = self.log();
            let found = text
                .lines()
                .filter(|l| l.contains("listening") && l.contains(tag))
                .find_map(|l| {
                    l.split_whitespace()
                        .find_map(|w| w.strip_prefix("addr=")?.parse::<SocketAddr>().ok())
                });
            if let Some(addr) = found {
                return addr;
            }
            assert!(Instant::now() < deadline, "no {tag} listener:\n{text}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn mail_root(&self) -> PathBuf {
        self.dir.path().join("mail")
    }

    pub fn maildir(&self, user: &str) -> PathBuf {
        self.mail_root().join(user).join("Maildir")
    }

    /// Puts a message into a user's Maildir as an MTA would (tmp/, then a rename into new/).
    pub fn add_message(&self, user: &str, name: &str, content: &[u8]) {
        deliver_file(&self.maildir(user), name, content);
    }

    pub fn client(&self) -> Client {
        Client::plain(self.plain)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What a maildrop holds as POP3 shows it: UIDL to content. Logs in, reads everything, and
/// leaves with QUIT without deleting.
pub fn pop3_view(addr: SocketAddr, user: &str, password: &str) -> BTreeMap<String, Vec<u8>> {
    let mut client = Client::plain(addr);
    client.login(user, password);
    let answer = client.command("UIDL");
    assert!(answer.starts_with("+OK"), "{answer}");
    let listing = client.body();
    let mut view = BTreeMap::new();
    for line in String::from_utf8(listing).unwrap().lines() {
        let (number, uidl) = line.split_once(' ').unwrap();
        let content = client.retr(number.parse().unwrap());
        assert!(
            view.insert(uidl.to_owned(), content).is_none(),
            "UIDL {uidl} twice"
        );
    }
    assert!(client.command("QUIT").starts_with("+OK"));
    view
}

/// A TCP connection from `source` (any 127.0.0.0/8 address works on Linux loopback).
pub fn connect_from(source: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let SocketAddr::V4(to) = to else {
        panic!("IPv4 only")
    };
    // SAFETY: plain socket calls on a descriptor this function owns until TcpStream takes it.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let stream = TcpStream::from_raw_fd(fd);
        let one: libc::c_int = 1;
        // Ports are chosen at connect time, per destination: 20,000 sockets fit.
        libc::setsockopt(
            fd,
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        let address = |ip: Ipv4Addr, port: u16| libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(ip).to_be(),
            },
            sin_zero: [0; 8],
        };
        let local = address(source, 0);
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        if libc::bind(fd, (&local as *const libc::sockaddr_in).cast(), len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let remote = address(*to.ip(), to.port());
        if libc::connect(fd, (&remote as *const libc::sockaddr_in).cast(), len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(stream)
    }
}

/// A POP3 client connected from `source`.
pub fn client_from(source: Ipv4Addr, to: SocketAddr) -> Client {
    let stream = connect_from(source, to).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    Client::over_tcp(stream)
}

/// Raises this process's open-file limit towards `want` and returns the limit it got. Root
/// with CAP_SYS_RESOURCE (as in CI) gets `want`; without it, the soft limit goes up to the
/// hard one, and the caller scales down and says so.
pub fn raise_open_files(want: u64) -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write only `limit`.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        if limit.rlim_cur >= want {
            return limit.rlim_cur;
        }
        let raised = libc::rlimit {
            rlim_cur: want,
            rlim_max: limit.rlim_max.max(want),
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
            return want;
        }
        let error = std::io::Error::last_os_error();
        limit.rlim_cur = limit.rlim_max;
        assert_eq!(
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit),
            0,
            "cannot raise the soft open-file limit"
        );
        eprintln!(
            "NOTE: the open-file limit cannot go above its hard limit {} here ({error}: root without \
             CAP_SYS_RESOURCE); the test runs scaled to it",
            limit.rlim_max
        );
        limit.rlim_max
    }
}

/// The resident memory of a process now, and its peak, in KiB.
pub fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// A scratch filesystem: a tmpfs of `size` (mount(8) syntax) mounted on `at`, unmounted on drop.
pub struct Mount {
    at: PathBuf,
}

impl Mount {
    pub fn tmpfs(at: &Path, size: &str) -> Mount {
        std::fs::create_dir_all(at).unwrap();
        run_mount(&["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"], at);
        Mount {
            at: at.to_path_buf(),
        }
    }

    pub fn remount_read_only(&self) {
        run_mount(&["-o", "remount,ro"], &self.at);
    }

    pub fn remount_read_write(&self) {
        run_mount(&["-o", "remount,rw"], &self.at);
    }
}

fn run_mount(args: &[&str], at: &Path) {
    let output = Command::new("mount")
        .args(args)
        .arg(at)
        .output()
        .expect("run mount");
    assert!(
        output.status.success(),
        "this test needs to mount a tmpfs (run it as root, as CI does): mount {args:?} {}: {}",
        at.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.at).status();
    }
}

/// A line-oriented SMTP/LMTP client: writes raw bytes, reads whole replies.
pub struct Smtp {
    stream: std::io::BufReader<TcpStream>,
}

impl Smtp {
    pub fn connect(addr: SocketAddr) -> Smtp {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let mut smtp = Smtp {
            stream: std::io::BufReader::new(stream),
        };
        let greeting = smtp.reply();
        assert!(greeting.starts_with("220"), "{greeting}");
        smtp
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.get_mut().write_all(bytes).unwrap();
    }

    /// One reply, all its lines; empty when the connection closed.
    pub fn reply(&mut self) -> String {
        use std::io::BufRead;
        let mut reply = String::new();
        loop {
            let mut line = String::new();
            if self.stream.read_line(&mut line).unwrap_or(0) == 0 {
                return reply;
            }
            reply.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return reply;
            }
        }
    }

    pub fn into_stream(self) -> TcpStream {
        self.stream.into_inner()
    }
}

/// A small xorshift generator, seeded from the clock; the seed is printed to replay a run.
pub struct Random(u64);

impl Random {
    pub fn new() -> Random {
        let seed = std::env::var("POSTIE_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        eprintln!("random seed {seed} (POSTIE_TEST_SEED={seed} replays it)");
        Random(seed)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// How many rounds a loop test runs: `default` in the normal test run, more when the long-run
/// command (scripts/crash-loop) sets `variable`.
pub fn rounds(variable: &str, default: u32) -> u32 {
    std::env::var(variable)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Reads whatever arrives within `wait`.
pub fn read_for(stream: &mut TcpStream, wait: Duration) -> Vec<u8> {
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    out
}
