//! `postie fetch` as a daily driver, against `postie serve` servers these tests start:
//! accounts polled in parallel (a server that never greets delays no other account),
//! per-account intervals, backoff after failures shown in the status, SIGHUP re-reading the
//! configuration, the status as text, JSON and Prometheus text over HTTP, and the hooks'
//! environment.

mod common;
mod fetch_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{crlf_form, TestServer};
use fetch_support::*;
use serde_json::Value;

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An [accounts.NAME] table for `user` on `server`'s implicit TLS port, into `maildir`.
fn account(name: &str, server: &TestServer, user: &str, maildir: &str, extra: &str) -> String {
    let password = if user == "bob" {
        "pass word with spaces"
    } else {
        "wonderland"
    };
    format!(
        "[accounts.{name}]\nserver = \"127.0.0.1:{}\"\ntls = \"implicit\"\nuser = \"{user}\"\n\
         password = \"{password}\"\nca_file = \"ca.pem\"\ndeliver_to = \"maildir:{maildir}\"\n{extra}\n",
        server.tls.port()
    )
}

/// An account of a server at `addr` that is not `postie serve` (hung or absent).
fn account_at(name: &str, addr: SocketAddr, extra: &str) -> String {
    format!(
        "[accounts.{name}]\nserver = \"{addr}\"\ntls = \"implicit\"\nuser = \"alice\"\n\
         password = \"wonderland\"\ndeliver_to = \"maildir:Other\"\n{extra}\n"
    )
}

/// A server that accepts connections and never says a word.
struct HungServer {
    addr: SocketAddr,
    held: Arc<Mutex<Vec<TcpStream>>>,
}

impl HungServer {
    fn start() -> HungServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let held = Arc::new(Mutex::new(Vec::new()));
        let keep = held.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                keep.lock().unwrap().push(stream);
            }
        });
        HungServer { addr, held }
    }

    fn connections(&self) -> usize {
        self.held.lock().unwrap().len()
    }
}

/// A `postie fetch --daemon` killed when dropped; its standard error goes to a file.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(env: &FetchEnv, args: &[&str]) -> Daemon {
        let log = env.path("daemon.log");
        let mut all = vec!["--daemon", "--quiet"];
        all.extend_from_slice(args);
        let child = env
            .command(&all)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Daemon { child, log }
    }

    fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, signal) }, 0);
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn assert_running(&mut self) {
        assert!(
            self.child.try_wait().unwrap().is_none(),
            "the daemon keeps running: {}",
            self.log()
        );
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An account's status record, once a run has written it.
fn status(env: &FetchEnv, account: &str) -> Option<Value> {
    let text = std::fs::read(env.path(&format!("state/{account}.status.json"))).ok()?;
    Some(serde_json::from_slice(&text).expect("a status record is whole JSON"))
}

fn number(status: &Option<Value>, field: &str) -> u64 {
    status
        .as_ref()
        .and_then(|s| s[field].as_u64())
        .unwrap_or_default()
}

fn mail(env: &FetchEnv, folder: &str) -> usize {
    maildir_contents(&env.path(folder)).len()
}

/// GET `path` on 127.0.0.1:`port`: the status line and the body.
fn http_get(port: u16, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    (head.lines().next().unwrap().to_owned(), body.to_owned())
}

fn new_env(server: &TestServer) -> FetchEnv {
    let env = FetchEnv::new();
    server.write_cert(&env.path("ca.pem"));
    env
}

#[test]
fn a_hung_server_delays_no_other_account() {
    let server = TestServer::start();
    let messages = sample_messages(3, 300);
    server.add_message("alice", &messages[0]);
    let hung = HungServer::start();
    let env = new_env(&server);
    let good = account("good", &server, "alice", "Mail", "interval = 1");
    env.config(&format!(
        "{good}{}",
        account_at("hung", hung.addr, "timeout_secs = 3600")
    ));
    let mut daemon = Daemon::start(&env, &["--interval", "3600"]);
    wait_for("the good account's first poll", || mail(&env, "Mail") == 1);
    // The hung account's only poll waits an hour for a greeting: whatever the good account
    // fetches from now on, it fetched while the other hung.
    server.add_message("alice", &messages[1]);
    wait_for("the good account's later poll", || mail(&env, "Mail") == 2);
    wait_for("the hung account's connection", || hung.connections() == 1);
    assert!(
        status(&env, "hung").is_none(),
        "the hung poll has not ended"
    );
    daemon.assert_running();
    drop(daemon);

    // A one-shot run: every account at once, the hung one until its own timeout.
    env.config(&format!(
        "{good}{}",
        account_at("hung", hung.addr, "timeout_secs = 1")
    ));
    server.add_message("alice", &messages[2]);
    let run = env.fetch(&["--quiet"]);
    assert_eq!(run.code, 75, "{}", run.stderr);
    assert_eq!(maildir_contents(&env.path("Mail")), sorted(messages));
    let shown = env.fetch(&["status"]);
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    assert!(
        shown.stdout.contains("hung\n")
            && shown.stdout.contains("did not answer within 1 seconds")
            && shown.stdout.contains("failing       1 runs in a row"),
        "{}",
        shown.stdout
    );
    let hung_status = status(&env, "hung");
    assert_eq!(number(&hung_status, "consecutive_failures"), 1);
    assert_eq!(number(&status(&env, "good"), "consecutive_failures"), 0);
}

#[test]
fn a_short_interval_polls_more_often_than_a_long_one() {
    let server = TestServer::start();
    let env = new_env(&server);
    env.config(&format!(
        "{}{}",
        account("fast", &server, "alice", "Fast", "interval = \"1s\""),
        account("slow", &server, "bob", "Slow", "interval = \"1h\"")
    ));
    let mut daemon = Daemon::start(&env, &["--interval", "3600"]);
    wait_for("the slow account's first poll", || {
        number(&status(&env, "slow"), "checks") == 1
    });
    wait_for("four polls of the fast account", || {
        number(&status(&env, "fast"), "checks") >= 4
    });
    assert_eq!(
        number(&status(&env, "slow"), "checks"),
        1,
        "{}",
        daemon.log()
    );
    assert_eq!(number(&status(&env, "fast"), "consecutive_failures"), 0);
    daemon.assert_running();
}

#[test]
fn backoff_grows_after_failures_and_a_success_resets_it() {
    let server = TestServer::start();
    let message = sample_messages(1, 100).remove(0);
    server.add_message("alice", &message);
    let env = new_env(&server);
    let nobody = SocketAddr::from(([127, 0, 0, 1], free_port()));
    env.config(&account_at("flaky", nobody, ""));
    let mut daemon = Daemon::start(&env, &["--interval", "1"]);
    // The delay each failure set, from the status record.
    let mut delays = Vec::new();
    wait_for("three failures in a row", || {
        let record = status(&env, "flaky");
        let failures = number(&record, "consecutive_failures") as usize;
        if failures == delays.len() + 1 {
            delays.push(number(&record, "next_poll") - number(&record, "last_check"));
        }
        failures >= 3
    });
    assert_eq!(delays, [2, 4, 8], "{}", daemon.log());
    let shown = env.fetch(&["status", "flaky"]);
    assert!(
        shown.stdout.contains("failing       3 runs in a row")
            && shown.stdout.contains("cannot connect"),
        "{}",
        shown.stdout
    );

    env.config(&account("flaky", &server, "alice", "Mail", ""));
    daemon.signal(libc::SIGHUP);
    wait_for("the account to recover", || {
        number(&status(&env, "flaky"), "consecutive_failures") == 0
    });
    let record = status(&env, "flaky");
    assert_eq!(
        number(&record, "next_poll") - number(&record, "last_check"),
        1
    );
    assert!(
        record.as_ref().unwrap()["last_error"]
            .as_str()
            .unwrap()
            .contains("cannot connect"),
        "the last error stays on view: {record:?}"
    );
    assert_eq!(maildir_contents(&env.path("Mail")), vec![message]);
    daemon.assert_running();
}

#[test]
fn sighup_rereads_the_configuration_and_keeps_it_when_broken() {
    let server = TestServer::start();
    let messages = sample_messages(3, 200);
    server.add_message("alice", &messages[0]);
    let env = new_env(&server);
    let alice = account("alice", &server, "alice", "Alice", "");
    env.config(&alice);
    let mut daemon = Daemon::start(&env, &["--interval", "3600"]);
    wait_for("alice's first poll", || mail(&env, "Alice") == 1);

    server.add_message("bob", &messages[1]);
    env.config(&format!(
        "{alice}{}",
        account("bob", &server, "bob", "Bob", "")
    ));
    daemon.signal(libc::SIGHUP);
    wait_for("the account added to be fetched", || mail(&env, "Bob") == 1);

    std::fs::write(env.path("fetch.toml"), "[accounts.broken\n").unwrap();
    daemon.signal(libc::SIGHUP);
    wait_for("the broken configuration to be logged", || {
        daemon.log().contains("the running one is kept")
    });
    daemon.assert_running();
    server.add_message("alice", &messages[2]);
    daemon.signal(libc::SIGUSR1);
    wait_for("a poll with the configuration kept", || {
        mail(&env, "Alice") == 2
    });
    assert!(
        daemon.log().contains("fetch.toml"),
        "the log names the file: {}",
        daemon.log()
    );
}

#[test]
fn status_as_text_json_and_prometheus() {
    let server = TestServer::start();
    for message in sample_messages(2, 400) {
        server.add_message("alice", &message);
    }
    let env = new_env(&server);
    let port = free_port();
    env.config(&format!(
        "[daemon]\nstatus_listen = \"127.0.0.1:{port}\"\n{}",
        account("home", &server, "alice", "Mail", "")
    ));
    let mut daemon = Daemon::start(&env, &["--interval", "3600"]);
    wait_for("the first poll's record", || {
        number(&status(&env, "home"), "checks") == 1
    });
    wait_for("the status port", || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });

    let (line, body) = http_get(port, "/status");
    assert_eq!(line, "HTTP/1.1 200 OK", "{body}");
    let served: Value = serde_json::from_str(&body).unwrap();
    let home = &served[0];
    assert_eq!(home["account"], "home");
    assert_eq!(home["total_messages"], 2);
    assert_eq!(home["last_run_messages"], 2);
    let bytes = home["total_bytes"].as_u64().unwrap();
    assert!(bytes > 800, "{home}");
    assert!(home["next_poll"].as_u64().unwrap() > home["last_check"].as_u64().unwrap());
    assert_eq!(home["last_error"], Value::Null);

    let (line, metrics) = http_get(port, "/metrics");
    assert_eq!(line, "HTTP/1.1 200 OK");
    for expected in [
        "# TYPE postie_fetch_messages_total counter\n".to_owned(),
        "postie_fetch_messages_total{account=\"home\"} 2\n".to_owned(),
        format!("postie_fetch_bytes_total{{account=\"home\"}} {bytes}\n"),
        "postie_fetch_consecutive_failures{account=\"home\"} 0\n".to_owned(),
    ] {
        assert!(metrics.contains(&expected), "{expected} in\n{metrics}");
    }
    assert_eq!(http_get(port, "/other").0, "HTTP/1.1 404 Not Found");

    let json = env.fetch(&["status", "--json"]);
    assert_eq!(json.code, 0, "{}", json.stderr);
    assert_eq!(serde_json::from_str::<Value>(&json.stdout).unwrap(), served);
    let text = env.fetch(&["status"]);
    for expected in [
        "home\n".to_owned(),
        "  last run      2 messages, ".to_owned(),
        format!("  in all        2 messages, {bytes} octets, 1 checks\n"),
        "  next poll     ".to_owned(),
    ] {
        assert!(
            text.stdout.contains(&expected),
            "{expected} in\n{}",
            text.stdout
        );
    }
    assert!(!text.stdout.contains("last error"), "{}", text.stdout);
    daemon.assert_running();
}

#[test]
fn hooks_run_with_the_right_environment() {
    let server = TestServer::start();
    server.add_message(
        "alice",
        b"From: a@example.org\nSubject: =?UTF-8?Q?caf=C3=A9?= au lait\nMessage-ID: <h1@test>\n\nhi\n",
    );
    server.add_message(
        "alice",
        b"From: b@example.org\nSubject: plain\n words\nMessage-ID: <h2@test>\n\nho\n",
    );
    let env = new_env(&server);
    let hook = |file: &str| format!("\"env > '{}'\"", env.path(file).display());
    let hooks = format!(
        "on_new_mail = {}\non_failure = {}\n",
        hook("new-mail.env"),
        hook("all-failure.env")
    );
    let own = format!(
        "on_failure = {}\non_recovery = {}",
        hook("failure.env"),
        hook("recovery.env")
    );
    let good = account("home", &server, "alice", "Mail", &own);
    let nobody = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let bad = account_at("home", nobody, &own);

    env.config(&format!("{hooks}{good}"));
    let run = env.fetch(&["--quiet"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let new_mail = std::fs::read_to_string(env.path("new-mail.env")).unwrap();
    // Octets as POP3 counts them: CRLF line ends, as the server sent them.
    let bytes: u64 = maildir_contents(&env.path("Mail"))
        .iter()
        .map(|m| crlf_form(m).len() as u64)
        .sum();
    for expected in [
        "POSTIE_ACCOUNT=home\n".to_owned(),
        "POSTIE_EVENT=new-mail\n".to_owned(),
        "POSTIE_NEW_MESSAGES=2\n".to_owned(),
        format!("POSTIE_NEW_BYTES={bytes}\n"),
        "POSTIE_SUBJECTS=café au lait\nplain words\n".to_owned(),
    ] {
        assert!(new_mail.contains(&expected), "{expected:?} in\n{new_mail}");
    }

    env.config(&format!("{hooks}{bad}"));
    let run = env.fetch(&["--quiet"]);
    assert_eq!(run.code, 69, "{}", run.stderr);
    let failure = std::fs::read_to_string(env.path("failure.env")).unwrap();
    assert!(
        failure.contains("POSTIE_EVENT=failure\n")
            && failure.contains("POSTIE_EXIT_STATUS=69\n")
            && failure.contains("POSTIE_ERROR=cannot connect to 127.0.0.1:"),
        "{failure}"
    );
    assert!(
        !env.path("all-failure.env").exists(),
        "the account's own hook replaces the file's"
    );
    std::fs::remove_file(env.path("failure.env")).unwrap();
    std::fs::remove_file(env.path("new-mail.env")).unwrap();
    assert_eq!(env.fetch(&["--quiet"]).code, 69);
    assert!(
        !env.path("failure.env").exists(),
        "only the first failure in a row runs on_failure"
    );

    env.config(&format!("{hooks}{good}"));
    let run = env.fetch(&["--quiet"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let recovery = std::fs::read_to_string(env.path("recovery.env")).unwrap();
    assert!(
        recovery.contains("POSTIE_EVENT=recovery\n")
            && recovery.contains("POSTIE_FAILURES=2\n")
            && recovery.contains("POSTIE_ERROR=cannot connect to 127.0.0.1:"),
        "{recovery}"
    );
    assert!(
        !env.path("new-mail.env").exists(),
        "no new mail, no on_new_mail"
    );
}

#[test]
fn json_logs_name_the_account() {
    let server = TestServer::start();
    server.add_message("alice", &sample_messages(1, 100)[0]);
    let env = new_env(&server);
    env.config(&account("home", &server, "alice", "Mail", ""));
    let run = env.fetch(&["--log-format", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines: Vec<Value> = run
        .stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let summary = lines
        .iter()
        .find(|l| l["fields"]["fetched"] == 1)
        .unwrap_or_else(|| panic!("a summary line in {}", run.stderr));
    assert_eq!(summary["fields"]["account"], "home");
    assert_eq!(summary["level"], "INFO");
}

/// The command lines of the systemd user units are ones `postie fetch` takes: run without
/// an accounts file they stop at the missing file (78), not at the command line (2).
#[test]
fn the_user_units_run_commands_postie_takes() {
    let units = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../dist/systemd/user");
    let env = FetchEnv::new();
    for unit in ["postie-fetch.service", "postie-fetch-once.service"] {
        let text = std::fs::read_to_string(units.join(unit)).unwrap();
        let exec = text
            .lines()
            .find_map(|l| l.strip_prefix("ExecStart=/usr/bin/postie "))
            .unwrap_or_else(|| panic!("{unit} runs /usr/bin/postie"));
        let output = std::process::Command::new(common::BIN)
            .args(exec.split(' '))
            .env("HOME", env.dir.path())
            .env_remove("XDG_CONFIG_HOME")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(78), "{unit}: {stderr}");
        assert!(stderr.contains("fetch.toml"), "{unit}: {stderr}");
    }
    let timer = std::fs::read_to_string(units.join("postie-fetch.timer")).unwrap();
    assert!(
        timer.contains("Unit=postie-fetch-once.service\n"),
        "{timer}"
    );
}
