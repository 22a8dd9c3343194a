//! The users' POP3 settings through the real binary, on Maildir and on PostgreSQL 15:
//! `postie user pop-settings` sets the window ("from now on") and what happens to retrieved
//! mail (archive); POP3 listings follow at the next login; `recent:alice` (USER/PASS and
//! SASL PLAIN) sees the last 30 days, archived mail too, and archives nothing.

#[path = "../../postie-store-pg/tests/cluster/mod.rs"]
#[allow(dead_code)]
mod cluster;
mod common;
mod pg_support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use common::{lmtp_deliver, Client, ServerBuilder, TestServer, BIN};

fn pop_settings(config: &Path, args: &[&str]) -> String {
    let output = Command::new(BIN)
        .args(["user", "pop-settings"])
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn deliver(server: &TestServer, subject: &str) {
    let message = format!("Subject: {subject}\r\n\r\n{subject}\r\n");
    let reply = lmtp_deliver(server.lmtp.unwrap(), "alice", message.as_bytes());
    assert_eq!(reply.code, 250, "{reply:?}");
    // Arrival times are kept to the microsecond; a step keeps "before" and "after" apart.
    std::thread::sleep(Duration::from_millis(20));
}

/// The subjects a session as `login` lists, in order.
fn subjects(client: &mut Client) -> Vec<String> {
    let stat = client.command("STAT");
    let count: usize = stat.split(' ').nth(1).unwrap().parse().unwrap();
    (1..=count)
        .map(|n| {
            assert!(client.command(&format!("TOP {n} 0")).starts_with("+OK"));
            let head = String::from_utf8(client.body()).unwrap();
            head.lines()
                .find_map(|line| line.strip_prefix("Subject: "))
                .unwrap()
                .to_owned()
        })
        .collect()
}

fn listed(server: &TestServer, login: &str) -> Vec<String> {
    let mut client = server.plain_client();
    client.login(login, "wonderland");
    let listed = subjects(&mut client);
    client.command("QUIT");
    listed
}

fn pop_behaviours(server: &TestServer) {
    let config = server.config_path();
    let shown = pop_settings(&config, &["alice"]);
    assert!(
        shown.contains("lists all mail") && shown.contains("keep it listed"),
        "{shown}"
    );

    deliver(server, "old");
    let shown = pop_settings(&config, &["alice", "--window", "from-now-on"]);
    assert!(shown.contains("from "), "{shown}");
    deliver(server, "new one");
    deliver(server, "new two");
    assert_eq!(listed(server, "alice"), ["new one", "new two"]);
    assert_eq!(
        listed(server, "recent:alice"),
        ["new one", "new two"],
        "the window holds for recent: too"
    );

    // Archive: what a normal session retrieved leaves the next listing; recent: still sees it.
    pop_settings(&config, &["alice", "--after-retrieval", "archive"]);
    let mut laptop = server.plain_client();
    laptop.login("alice", "wonderland");
    assert!(laptop.command("RETR 1").starts_with("+OK"));
    laptop.body();
    assert!(laptop.command("QUIT").starts_with("+OK"));
    assert_eq!(listed(server, "alice"), ["new two"]);

    let mut phone = server.plain_client();
    let plain = B64.encode("\0recent:alice\0wonderland");
    assert!(phone
        .command(&format!("AUTH PLAIN {plain}"))
        .starts_with("+OK"));
    assert_eq!(subjects(&mut phone), ["new one", "new two"]);
    assert!(phone.command("RETR 2").starts_with("+OK"));
    phone.body();
    assert!(phone.command("QUIT").starts_with("+OK"));
    assert_eq!(
        listed(server, "alice"),
        ["new two"],
        "recent: archives nothing"
    );

    // All mail again: the old message was stored all along.
    let shown = pop_settings(
        &config,
        &["alice", "--window", "all", "--after-retrieval", "keep"],
    );
    assert!(shown.contains("lists all mail"), "{shown}");
    assert_eq!(listed(server, "alice"), ["old", "new two"]);
    let log = server.log();
    assert!(log.contains("recent=true"), "{log}");
}

#[test]
fn pop_settings_on_maildir() {
    let server = ServerBuilder::new().lmtp("").start();
    pop_behaviours(&server);
}

#[test]
fn pop_settings_on_postgresql() {
    let db = cluster::TestDb::new();
    let server = ServerBuilder::new()
        .lmtp("")
        .mail("store = \"postgres\"")
        .sections(&format!(
            "[postgres]\nurl = \"{}\"\npool_size = 4\n",
            pg_support::url(db.config())
        ))
        .start();
    pop_behaviours(&server);
}
