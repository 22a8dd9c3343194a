//! App passwords through the real binary, in both worlds: beside the passwd-file and in
//! PostgreSQL 15 (`[auth] users = "postgres"`, the cluster support of postie-store-pg).
//! `postie user app-password add` prints the password alone on its last line; it logs in
//! over USER/PASS, SASL PLAIN and LOGIN; `list` shows when, from where and over what it was
//! last used; the session's log line names it; `require` refuses the account password with
//! `-ERR [AUTH]` and a text that says what to do; `revoke` ends it for the next login while
//! an open session keeps its messages.

#[path = "../../postie-store-pg/tests/cluster/mod.rs"]
#[allow(dead_code)]
mod cluster;
mod common;
mod pg_support;

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use common::{lmtp_deliver, postie_user as user, Client, ServerBuilder, TestServer};

fn succeeds(output: Output) -> String {
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn fails_saying(output: Output, what: &str) {
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "expected a failure: {said}");
    assert!(said.contains(what), "expected {what:?} in: {said}");
}

/// `add`'s password: the last line of its standard output, alone.
fn add_app_password(config: &Path, name: &str, label: &str) -> String {
    let out = succeeds(user(
        config,
        &["app-password", "add", name, "--label", label],
        "",
    ));
    let password = out.lines().last().expect("a last line").to_owned();
    assert!(
        password.len() == 16 && password.bytes().all(|b| b.is_ascii_lowercase()),
        "{out}"
    );
    password
}

fn pass(server: &TestServer, name: &str, password: &str) -> (Client, String) {
    let mut client = server.plain_client();
    assert!(client.command(&format!("USER {name}")).starts_with("+OK"));
    let answer = client.command(&format!("PASS {password}"));
    (client, answer)
}

fn pass_and_quit(server: &TestServer, name: &str, password: &str) -> String {
    let (mut client, answer) = pass(server, name, password);
    client.command("QUIT");
    answer
}

fn sasl_plain(server: &TestServer, name: &str, password: &str) -> String {
    let mut client = server.plain_client();
    let response = B64.encode(format!("\0{name}\0{password}"));
    let answer = client.command(&format!("AUTH PLAIN {response}"));
    client.command("QUIT");
    answer
}

fn sasl_login(server: &TestServer, name: &str, password: &str) -> String {
    let mut client = server.plain_client();
    assert!(client.command("AUTH LOGIN").starts_with("+ "));
    assert!(client.command(&B64.encode(name)).starts_with("+ "));
    let answer = client.command(&B64.encode(password));
    client.command("QUIT");
    answer
}

/// `list`'s output once it holds `needle`: uses are written down after the login answers.
fn list_showing(server: &TestServer, name: &str, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = succeeds(user(
            &server.config_path(),
            &["app-password", "list", name],
            "",
        ));
        if out.contains(needle) {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in:\n{out}\nserver log:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The whole life of app passwords on `server`, whose user alice has the account password
/// `wonderland` and one message.
fn app_passwords_from_creation_to_revocation(server: &TestServer) {
    let config = server.config_path();
    lmtp_deliver(
        server.lmtp.expect("an LMTP listener"),
        "alice",
        b"Subject: hello\r\n\r\nbody\r\n",
    );
    let phone = add_app_password(&config, "alice", "phone");
    let laptop = add_app_password(&config, "alice", "laptop");
    assert_ne!(phone, laptop);
    fails_saying(
        user(
            &config,
            &["app-password", "add", "alice", "--label", "phone"],
            "",
        ),
        "already",
    );
    fails_saying(
        user(
            &config,
            &["app-password", "add", "nobody", "--label", "phone"],
            "",
        ),
        "no user",
    );
    let listed = succeeds(user(&config, &["app-password", "list", "alice"], ""));
    assert!(
        listed.contains("\"phone\"") && listed.contains("never used"),
        "{listed}"
    );
    assert!(
        !listed.contains(&phone),
        "a password is never shown again:\n{listed}"
    );

    assert!(pass_and_quit(server, "alice", &phone).starts_with("+OK"));
    list_showing(server, "alice", "from 127.0.0.1 over POP3 USER");
    assert!(sasl_plain(server, "alice", &phone).starts_with("+OK"));
    assert!(sasl_login(server, "alice", &laptop).starts_with("+OK"));
    let listed = list_showing(server, "alice", "over POP3 LOGIN");
    assert!(listed.contains("over POP3 PLAIN"), "{listed}");
    // Another user's app password is no password of bob's.
    assert!(pass_and_quit(server, "bob", &phone).starts_with("-ERR [AUTH]"));
    let log = server.wait_for_log("session ended", 4);
    assert!(log.contains("app_password=\"phone\""), "{log}");
    assert!(log.contains("app_password=\"laptop\""), "{log}");

    // Required: the account password is refused, saying what to use instead.
    assert!(pass_and_quit(server, "alice", "wonderland").starts_with("+OK"));
    succeeds(user(&config, &["app-password", "require", "alice"], ""));
    let refused = pass_and_quit(server, "alice", "wonderland");
    assert!(
        refused.starts_with("-ERR [AUTH]") && refused.contains("app password"),
        "{refused}"
    );
    let wrong = pass_and_quit(server, "alice", "not the password");
    assert!(
        wrong.starts_with("-ERR [AUTH]") && !wrong.contains("app password"),
        "{wrong}"
    );
    assert!(sasl_plain(server, "alice", "wonderland").contains("app password"));
    assert!(sasl_plain(server, "alice", &phone).starts_with("+OK"));
    let listed = succeeds(user(&config, &["app-password", "list", "alice"], ""));
    assert!(listed.contains("app passwords required"), "{listed}");

    // Revoked: the open session keeps its messages, the next login fails.
    let (mut open, answer) = pass(server, "alice", &phone);
    assert!(answer.starts_with("+OK"), "{answer}");
    succeeds(user(
        &config,
        &["app-password", "revoke", "alice", "phone"],
        "",
    ));
    assert!(open.command("RETR 1").starts_with("+OK"));
    assert!(open.body().ends_with(b"body\r\n"));
    assert!(open.command("QUIT").starts_with("+OK"));
    assert!(pass_and_quit(server, "alice", &phone).starts_with("-ERR [AUTH]"));
    assert!(pass_and_quit(server, "alice", &laptop).starts_with("+OK"));
    fails_saying(
        user(&config, &["app-password", "revoke", "alice", "phone"], ""),
        "no app password labelled",
    );

    succeeds(user(
        &config,
        &["app-password", "require", "alice", "--off"],
        "",
    ));
    assert!(pass_and_quit(server, "alice", "wonderland").starts_with("+OK"));
}

#[test]
fn app_passwords_beside_the_passwd_file() {
    let server = ServerBuilder::new().lmtp("").start();
    app_passwords_from_creation_to_revocation(&server);
    let side_file = std::fs::read_to_string(server.dir.path().join("users.app-passwords")).unwrap();
    assert!(
        side_file.contains("password\talice\tlaptop\tsha256:"),
        "{side_file}"
    );
}

#[test]
fn app_passwords_in_postgresql() {
    let db = cluster::TestDb::new();
    let server = ServerBuilder::new()
        .lmtp("")
        .auth("users = \"postgres\"")
        .mail("store = \"postgres\"")
        .sections(&format!(
            "[postgres]\nurl = \"{}\"\npool_size = 4\n",
            pg_support::url(db.config())
        ))
        .start();
    let config = server.config_path();
    for (name, password) in [("alice", "wonderland"), ("bob", "builder")] {
        succeeds(user(
            &config,
            &["add", name, "--password-stdin"],
            &format!("{password}\n"),
        ));
    }
    app_passwords_from_creation_to_revocation(&server);
    // Removing a user removes its app passwords with it.
    succeeds(user(&config, &["del", "alice"], ""));
    fails_saying(
        user(&config, &["app-password", "list", "alice"], ""),
        "no user",
    );
}
