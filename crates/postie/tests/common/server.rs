//! The binary under test as a server: one builder writes its folder (certificate, users,
//! configuration), runs `postie serve`, waits until it listens and hands back a `TestServer`.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{deliver_file, Client, BIN};

/// Users known to every test server: name, password, passwd-file entry.
pub const USERS: &str = "alice:{PLAIN}wonderland\nbob:{PLAIN}pass word with spaces\n";

/// A self-signed certificate for localhost, written as cert.pem and key.pem into `dir`;
/// returns the certificate's PEM.
pub fn write_certificate(dir: &Path) -> String {
    let generated =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    std::fs::write(dir.join("cert.pem"), generated.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), generated.key_pair.serialize_pem()).unwrap();
    generated.cert.pem()
}

type PreExec = Arc<dyn Fn() -> std::io::Result<()> + Send + Sync>;

/// How the server process is run; kept by the `TestServer` to start it again.
#[derive(Clone)]
struct Launch {
    /// Program and arguments put before `postie serve …` (a shell that sets up descriptors).
    launcher: Vec<OsString>,
    serve_args: Vec<String>,
    env: Vec<(OsString, OsString)>,
    pre_exec: Option<PreExec>,
    lmtp: bool,
    smtp: bool,
}

/// What a test server is made of. `ServerBuilder::new().start()` is a POP3 server with STLS and
/// implicit TLS on loopback ports, the users of `USERS`, and no failure delay.
#[derive(Clone)]
pub struct ServerBuilder {
    top: String,
    listen: (String, String),
    pop3: String,
    failure_delay_secs: f64,
    auth: String,
    mail: String,
    lmtp: Option<String>,
    lmtp_socket: bool,
    smtp: Option<String>,
    sections: String,
    /// A certificate and key (PEM) instead of a self-signed one for localhost.
    certificate: Option<(String, String)>,
    launch: Launch,
}

impl Default for ServerBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerBuilder {
    pub fn new() -> ServerBuilder {
        ServerBuilder {
            top: String::new(),
            listen: ("127.0.0.1:0".into(), "127.0.0.1:0".into()),
            pop3: String::new(),
            failure_delay_secs: 0.0,
            auth: String::new(),
            mail: String::new(),
            lmtp: None,
            lmtp_socket: false,
            smtp: None,
            sections: String::new(),
            certificate: None,
            launch: Launch {
                launcher: Vec::new(),
                // CI runs as root; these servers need no other user.
                serve_args: vec!["--allow-root".into()],
                env: Vec::new(),
                pre_exec: None,
                lmtp: false,
                smtp: false,
            },
        }
    }

    /// Lines before the first section.
    pub fn top(mut self, lines: &str) -> Self {
        self.top = lines.into();
        self
    }

    /// The POP3 listeners' addresses, instead of free loopback ports.
    pub fn pop3_listen(mut self, plain: SocketAddr, tls: SocketAddr) -> Self {
        self.listen = (plain.to_string(), tls.to_string());
        self
    }

    /// Lines for the [pop3] section.
    pub fn pop3(mut self, lines: &str) -> Self {
        self.pop3 = lines.into();
        self
    }

    pub fn failure_delay_secs(mut self, secs: u64) -> Self {
        self.failure_delay_secs = secs as f64;
        self
    }

    /// A brake's base delay under a second, for tests that make many attempts.
    pub fn failure_delay_ms(mut self, millis: u64) -> Self {
        self.failure_delay_secs = millis as f64 / 1000.0;
        self
    }

    /// Lines for the [auth] section.
    pub fn auth(mut self, lines: &str) -> Self {
        self.auth = lines.into();
        self
    }

    /// Lines for the [mail] section.
    pub fn mail(mut self, lines: &str) -> Self {
        self.mail = lines.into();
        self
    }

    /// LMTP on a loopback port, with these lines for its section.
    pub fn lmtp(mut self, lines: &str) -> Self {
        self.lmtp = Some(lines.into());
        self.launch.lmtp = true;
        self
    }

    /// LMTP also on the Unix socket `TestServer::lmtp_socket` (with `lmtp`).
    pub fn lmtp_socket(mut self) -> Self {
        self.lmtp_socket = true;
        self
    }

    /// SMTP for example.org on a loopback port, with these lines for its section.
    pub fn smtp(mut self, lines: &str) -> Self {
        self.smtp = Some(lines.into());
        self.launch.smtp = true;
        self
    }

    /// Serve this certificate and key (PEM) instead of a self-signed one for localhost.
    pub fn certificate(mut self, cert_pem: &str, key_pem: &str) -> Self {
        self.certificate = Some((cert_pem.into(), key_pem.into()));
        self
    }

    /// Further sections, written as given at the end.
    pub fn sections(mut self, text: &str) -> Self {
        self.sections = text.into();
        self
    }

    /// The arguments of `postie serve` before `--config` (`--allow-root` unless set).
    pub fn serve_args(mut self, args: &[&str]) -> Self {
        self.launch.serve_args = args.iter().map(|a| a.to_string()).collect();
        self
    }

    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.launch.env.push((key.into(), value.into()));
        self
    }

    /// Runs `postie serve …` as the last arguments of this command line (say, `sh -c '… exec
    /// "$@"' sh`).
    pub fn launcher(mut self, command: &[&str]) -> Self {
        self.launch.launcher = command.iter().map(OsString::from).collect();
        self
    }

    /// Runs `f` in the child between fork and exec.
    ///
    /// # Safety
    /// As for `CommandExt::pre_exec`: `f` may only make async-signal-safe calls.
    pub unsafe fn pre_exec(
        mut self,
        f: impl Fn() -> std::io::Result<()> + Send + Sync + 'static,
    ) -> Self {
        self.launch.pre_exec = Some(Arc::new(f));
        self
    }

    /// The configuration file's text.
    pub fn config(&self) -> String {
        let (plain, tls) = &self.listen;
        let (top, pop3, delay, auth, mail) = (
            &self.top,
            &self.pop3,
            self.failure_delay_secs,
            &self.auth,
            &self.mail,
        );
        let mut config = format!(
            "hostname = \"test.example\"\n{top}\n\
             [pop3]\nlisten = [\"{plain}\"]\nlisten_tls = [\"{tls}\"]\n{pop3}\n\
             [tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n\
             [auth]\npasswd_file = \"users\"\nfailure_delay_secs = {delay}\n{auth}\n\
             [mail]\nmaildir = \"mail/{{user}}/Maildir\"\n{mail}\n"
        );
        if let Some(lmtp) = &self.lmtp {
            let socket = if self.lmtp_socket {
                ", \"unix:lmtp.sock\""
            } else {
                ""
            };
            config.push_str(&format!(
                "[lmtp]\nlisten = [\"127.0.0.1:0\"{socket}]\n{lmtp}\n"
            ));
        }
        if let Some(smtp) = &self.smtp {
            config.push_str(&format!(
                "[smtp]\nlisten = [\"127.0.0.1:0\"]\ndomains = [\"example.org\"]\n{smtp}\n"
            ));
        }
        config.push_str(&self.sections);
        config
    }

    /// Writes the server's folder into `dir`: certificate, users, an empty mail root and
    /// postie.toml. Returns the certificate's PEM.
    pub fn write(&self, dir: &Path) -> String {
        // A server that drops its privileges must still reach its files.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let cert_pem = match &self.certificate {
            Some((cert, key)) => {
                std::fs::write(dir.join("cert.pem"), cert).unwrap();
                std::fs::write(dir.join("key.pem"), key).unwrap();
                cert.clone()
            }
            None => write_certificate(dir),
        };
        std::fs::write(dir.join("users"), USERS).unwrap();
        std::fs::create_dir_all(dir.join("mail")).unwrap();
        std::fs::write(dir.join("postie.toml"), self.config()).unwrap();
        cert_pem
    }

    /// Writes a fresh folder, runs the server and waits until it listens.
    pub fn start(self) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let cert_pem = self.write(dir.path());
        let unset: SocketAddr = ([0, 0, 0, 0], 0).into();
        let mut server = TestServer {
            child: None,
            dir,
            plain: unset,
            tls: unset,
            lmtp: None,
            smtp: None,
            cert_pem,
            launch: self.launch,
            starts: 0,
        };
        server.spawn();
        server
    }
}

/// A running `postie serve` with its own folder, certificate and users.
pub struct TestServer {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub plain: SocketAddr,
    pub tls: SocketAddr,
    pub lmtp: Option<SocketAddr>,
    pub smtp: Option<SocketAddr>,
    pub cert_pem: String,
    launch: Launch,
    starts: u32,
}

impl TestServer {
    /// A server as `ServerBuilder::new()` makes it.
    pub fn start() -> TestServer {
        ServerBuilder::new().start()
    }

    /// A server with `pop3_extra` in its [pop3] section.
    pub fn start_with(pop3_extra: &str) -> TestServer {
        ServerBuilder::new().pop3(pop3_extra).start()
    }

    fn spawn(&mut self) {
        self.starts += 1;
        let Launch {
            launcher,
            serve_args,
            env,
            pre_exec,
            lmtp,
            smtp,
        } = self.launch.clone();
        let mut command = match launcher.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(BIN);
                command
            }
            None => Command::new(BIN),
        };
        command
            .arg("serve")
            .args(serve_args)
            .arg("--config")
            .arg(self.config_path())
            .envs(env)
            .env("POSTIE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.log_path()).unwrap());
        if let Some(pre_exec) = pre_exec {
            // SAFETY: `ServerBuilder::pre_exec`'s caller vouched for the closure.
            unsafe {
                command.pre_exec(move || pre_exec());
            }
        }
        self.child = Some(command.spawn().expect("start postie"));
        self.plain = self.listener("pop3 (STLS)");
        self.tls = self.listener("pop3s (implicit TLS)");
        self.lmtp = lmtp.then(|| self.listener("lmtp"));
        self.smtp = smtp.then(|| self.listener("smtp"));
    }

    fn child(&self) -> &Child {
        self.child.as_ref().expect("the server was started")
    }

    pub fn pid(&self) -> u32 {
        self.child().id()
    }

    /// The log of the running process (each start writes its own).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join(format!("server-{}.log", self.starts))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
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

    /// The TCP address a `listening` line names for `kind` (pop3 (STLS), pop3s (implicit
    /// TLS), http, lmtp, smtp), in the text or the JSON log format, once it listens.
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

    fn signal(&self, signal: libc::c_int) {
        let pid = self.pid() as libc::pid_t;
        // SAFETY: kill with a valid signal number on our own child.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    }

    /// SIGHUP: the server reloads its configuration and certificate.
    pub fn reload(&self) {
        self.signal(libc::SIGHUP);
    }

    /// SIGTERM: the server shuts down gracefully.
    pub fn stop(&self) {
        self.signal(libc::SIGTERM);
    }

    /// Waits for the server to exit and returns whether it exited successfully.
    pub fn wait_exit(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let log_path = self.log_path();
        let child = self.child.as_mut().expect("the server was started");
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.success();
            }
            assert!(
                Instant::now() < deadline,
                "postie did not exit:\n{}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, and waits for the process to be gone.
    pub fn kill(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGKILL, then a fresh process on the same folder, configuration and Maildirs.
    pub fn kill_and_restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("postie.toml")
    }

    /// The LMTP Unix socket (`ServerBuilder::lmtp_socket`).
    pub fn lmtp_socket(&self) -> PathBuf {
        self.dir.path().join("lmtp.sock")
    }

    pub fn mail_root(&self) -> PathBuf {
        self.dir.path().join("mail")
    }

    pub fn maildir(&self, user: &str) -> PathBuf {
        self.mail_root().join(user).join("Maildir")
    }

    /// Puts a message into a user's Maildir as an MTA would, under a fresh unique name.
    pub fn add_message(&self, user: &str, content: &[u8]) -> PathBuf {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let name = format!("{secs}.M{n:06}P{}.testhost", std::process::id());
        self.add_message_named(user, &name, content)
    }

    /// Puts a message into a user's Maildir as an MTA would, under the file name `name`.
    pub fn add_message_named(&self, user: &str, name: &str, content: &[u8]) -> PathBuf {
        deliver_file(&self.maildir(user), name, content)
    }

    /// All message files of a user's Maildir (new/ and cur/), sorted.
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

    /// The content of every message file of a user, sorted.
    pub fn messages(&self, user: &str) -> Vec<Vec<u8>> {
        let mut contents: Vec<_> = self
            .message_files(user)
            .iter()
            .map(|f| std::fs::read(f).unwrap())
            .collect();
        contents.sort();
        contents
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
        self.kill();
    }
}
