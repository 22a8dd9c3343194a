//! `[auth] users = "postgres"`: the real binary on a real PostgreSQL 15 (the test cluster
//! support of postie-store-pg): `postie user add|passwd|del|list` on the database, POP3 logins
//! (USER/PASS, APOP, SASL PLAIN) against its users, `check-config`'s count, and the login
//! state two front ends of one database share (LOGIN-DELAY, the brute-force brake).

#[path = "../../postie-store-pg/tests/cluster/mod.rs"]
#[allow(dead_code)]
mod cluster;
mod common;
mod pg_support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use common::{lmtp_deliver, postie_user as user, ServerBuilder, TestServer, BIN};
use md5::{Digest, Md5};
use pg_support::url;

fn front_end(db: &cluster::TestDb, pop3: &str) -> TestServer {
    front_end_with(ServerBuilder::new(), db, pop3)
}

fn front_end_with(builder: ServerBuilder, db: &cluster::TestDb, pop3: &str) -> TestServer {
    builder
        .lmtp("")
        .pop3(pop3)
        .auth("users = \"postgres\"")
        .mail("store = \"postgres\"")
        .sections(&format!(
            "[postgres]\nurl = \"{}\"\npool_size = 4\n",
            url(db.config())
        ))
        .start()
}

fn succeeds(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn fails_saying(output: &Output, what: &str) {
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "expected a failure: {said}");
    assert!(said.contains(what), "expected {what:?} in: {said}");
}

fn add(config: &Path, name: &str, password: &str, scheme: &str) {
    succeeds(&user(
        config,
        &["add", name, "--password-stdin", "--scheme", scheme],
        &format!("{password}\n"),
    ));
}

fn logs_in(server: &TestServer, name: &str, password: &str) -> bool {
    let mut client = server.plain_client();
    assert!(client.command(&format!("USER {name}")).starts_with("+OK"));
    let answer = client.command(&format!("PASS {password}"));
    client.command("QUIT");
    answer.starts_with("+OK")
}

#[test]
fn user_commands_edit_the_database_and_logins_follow() {
    let db = cluster::TestDb::new();
    let server = front_end(&db, "");
    let config = server.config_path();

    add(&config, "carol", "first secret", "SHA512-CRYPT");
    fails_saying(
        &user(&config, &["add", "carol", "--password-stdin"], "other\n"),
        "exists already",
    );
    assert_eq!(succeeds(&user(&config, &["list"], "")), "carol\n");
    assert!(logs_in(&server, "carol", "first secret"));
    assert!(!logs_in(&server, "carol", "wrong"));
    // The passwd-file's users are not the database's.
    assert!(!logs_in(&server, "alice", "wonderland"));

    succeeds(&user(
        &config,
        &["passwd", "carol", "--password-stdin", "--scheme", "SSHA512"],
        "second secret\n",
    ));
    assert!(
        logs_in(&server, "carol", "second secret"),
        "the new password, at once"
    );
    assert!(!logs_in(&server, "carol", "first secret"));
    fails_saying(
        &user(&config, &["passwd", "dave", "--password-stdin"], "x\n"),
        "no user \"dave\"",
    );

    add(&config, "dave", "dave's", "PLAIN");
    let check = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&check.stdout);
    assert!(
        report.contains("[auth] users = \"postgres\": 2 users in the database"),
        "{report}"
    );

    succeeds(&user(&config, &["del", "carol"], ""));
    assert_eq!(succeeds(&user(&config, &["list"], "")), "dave\n");
    assert!(!logs_in(&server, "carol", "second secret"));
    fails_saying(&user(&config, &["del", "carol"], ""), "no user \"carol\"");
}

#[test]
fn a_database_without_the_users_table_says_to_migrate() {
    let db = cluster::TestDb::new();
    let server = front_end(&db, "");
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            db.client()
                .await
                .batch_execute("DROP TABLE users CASCADE")
                .await
                .unwrap()
        });
    fails_saying(
        &user(&server.config_path(), &["list"], ""),
        "run `postie store migrate`",
    );
}

#[test]
fn apop_and_sasl_plain_check_database_users() {
    let db = cluster::TestDb::new();
    let server = front_end(&db, "apop = true");
    add(&server.config_path(), "erin", "open sesame", "PLAIN");

    let mut client = server.plain_client();
    let timestamp = client.greeting[client.greeting.find('<').unwrap()..].to_owned();
    let wrong = hex::encode(Md5::digest(format!("{timestamp}closed").as_bytes()));
    assert!(client
        .command(&format!("APOP erin {wrong}"))
        .starts_with("-ERR [AUTH]"));
    let digest = hex::encode(Md5::digest(format!("{timestamp}open sesame").as_bytes()));
    assert!(client
        .command(&format!("APOP erin {digest}"))
        .starts_with("+OK"));
    client.command("QUIT");

    let mut client = server.plain_client();
    let wrong = B64.encode(b"\0erin\0closed sesame");
    assert!(client
        .command(&format!("AUTH PLAIN {wrong}"))
        .starts_with("-ERR [AUTH]"));
    let right = B64.encode(b"\0erin\0open sesame");
    assert!(client
        .command(&format!("AUTH PLAIN {right}"))
        .starts_with("+OK"));
    assert!(client.command("STAT").starts_with("+OK 0 0"));
}

#[test]
fn login_delay_holds_across_front_ends() {
    let db = cluster::TestDb::new();
    let first = front_end(&db, "login_delay_secs = 600");
    let second = front_end(&db, "login_delay_secs = 600");
    add(&first.config_path(), "frank", "frank's", "PLAIN");
    add(&first.config_path(), "grace", "grace's", "PLAIN");

    assert!(logs_in(&first, "frank", "frank's"));
    let mut client = second.plain_client();
    assert!(client.command("USER frank").starts_with("+OK"));
    let refused = client.command("PASS frank's");
    assert!(refused.starts_with("-ERR [LOGIN-DELAY]"), "{refused}");
    assert!(
        logs_in(&second, "grace", "grace's"),
        "other users are not held"
    );
    assert!(!logs_in(&first, "grace", "grace's"), "nor on the first");
}

/// The delay the front end's log gives its `n`th failed login (from 1).
fn failure_delay_ms(server: &TestServer, n: usize) -> u64 {
    let log = server.wait_for_log("authentication failed", n);
    let line = log
        .lines()
        .filter(|line| line.contains("authentication failed"))
        .nth(n - 1)
        .unwrap();
    let at = line.find("delay_ms=").expect("the delay is logged") + "delay_ms=".len();
    line[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn fails_to_log_in(server: &TestServer, name: &str) {
    let mut client = server.plain_client();
    assert!(client.command(&format!("USER {name}")).starts_with("+OK"));
    assert!(client.command("PASS guess").starts_with("-ERR [AUTH]"));
}

#[test]
fn failures_spread_over_front_ends_trip_the_brake_as_on_one() {
    let db = cluster::TestDb::new();
    let builder = ServerBuilder::new().failure_delay_secs(1);
    let first = front_end_with(builder.clone(), &db, "");
    let second = front_end_with(builder, &db, "");
    add(&first.config_path(), "heidi", "heidi's", "PLAIN");

    // From one address, alternating front ends: each failure costs what it would on one.
    fails_to_log_in(&first, "heidi");
    fails_to_log_in(&second, "heidi");
    fails_to_log_in(&first, "heidi");
    assert_eq!(failure_delay_ms(&first, 1), 0, "the first failure is free");
    assert_eq!(
        failure_delay_ms(&second, 1),
        1000,
        "the second front end counts the first's failure"
    );
    assert_eq!(failure_delay_ms(&first, 2), 2000, "and doubles on");
    // The right password waits as long (the brake holds every answer) and then passes.
    assert!(logs_in(&second, "heidi", "heidi's"));
}

#[test]
fn lmtp_and_postie_deliver_find_database_users() {
    let db = cluster::TestDb::new();
    let server = front_end(&db, "");
    let config = server.config_path();
    add(&config, "ivan", "ivan's", "PLAIN");
    let message = b"Subject: hello\r\n\r\nbody\r\n";

    let reply = lmtp_deliver(server.lmtp.unwrap(), "ivan@example.org", message);
    assert_eq!(reply.code, 250, "{}", reply.text());
    let reply = lmtp_deliver(server.lmtp.unwrap(), "alice@example.org", message);
    assert_eq!(reply.code, 550, "a passwd-file user is not the database's");

    let deliver = |user: &str| {
        let mut child = Command::new(BIN)
            .args(["deliver", "--config"])
            .arg(&config)
            .args(["-d", user])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(message).unwrap();
        child.wait_with_output().unwrap()
    };
    let delivered = deliver("ivan");
    assert!(
        delivered.status.success(),
        "{}",
        String::from_utf8_lossy(&delivered.stderr)
    );
    assert_eq!(deliver("nobody").status.code(), Some(67), "EX_NOUSER");

    let mut client = server.plain_client();
    client.login("ivan", "ivan's");
    assert!(client.command("STAT").starts_with("+OK 2 "));
}
