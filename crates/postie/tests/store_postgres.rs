//! `[mail] store = "postgres"`: the real binary on a real PostgreSQL 15 (started by the test
//! cluster support of postie-store-pg): `postie store migrate`, `check-config`, and two front
//! ends sharing one database, mail delivered over LMTP to either and read over POP3 from
//! either.

// The one PostgreSQL test support, shared with postie-store-pg's own tests.
#[path = "../../postie-store-pg/tests/cluster/mod.rs"]
#[allow(dead_code)]
mod cluster;
mod common;
mod pg_support;

use std::process::Command;

use common::{lmtp_deliver, ServerBuilder, TestServer, BIN};
use pg_support::url;

fn front_end(db: &cluster::TestDb) -> TestServer {
    ServerBuilder::new()
        .pop3("lock_session = true")
        .mail("store = \"postgres\"")
        .lmtp("")
        .sections(&format!(
            "[postgres]\nurl = \"{}\"\npool_size = 4\n",
            url(db.config())
        ))
        .start()
}

fn message(n: usize) -> Vec<u8> {
    format!("Subject: message {n}\r\n\r\n.line starting with a dot\r\nbody {n}\r\n").into_bytes()
}

#[test]
fn two_front_ends_share_one_database() {
    let db = cluster::TestDb::new();
    let (first, second) = (front_end(&db), front_end(&db));
    for n in 0..4 {
        let door = if n % 2 == 0 { &first } else { &second };
        let reply = lmtp_deliver(door.lmtp.unwrap(), "alice@example.org", &message(n));
        assert_eq!(reply.code, 250, "{}", reply.text());
    }

    let mut reader = first.plain_client();
    reader.login("alice", "wonderland");
    assert!(reader.command("STAT").starts_with("+OK 4 "));
    for n in 0..4 {
        let body = reader.retr(n + 1);
        assert!(
            body.ends_with(&message(n)),
            "message {} as delivered, below its trace headers",
            n + 1
        );
        assert!(body.starts_with(b"Return-Path: "), "trace headers first");
    }
    // The other front end sees the same maildrop, and the lease that holds it.
    let mut other = second.plain_client();
    assert!(other.command("USER alice").starts_with("+OK"));
    assert!(other
        .command("PASS wonderland")
        .starts_with("-ERR [IN-USE]"));
    assert!(reader.command("DELE 1").starts_with("+OK"));
    assert!(reader.command("QUIT").starts_with("+OK"));

    let mut other = second.plain_client();
    other.login("alice", "wonderland");
    assert!(other.command("STAT").starts_with("+OK 3 "));
    let uidl = other.command("UIDL 1");
    assert!(uidl.starts_with("+OK 1 00000002"), "{uidl}");
    assert!(other.command("QUIT").starts_with("+OK"));
}

#[test]
fn store_migrate_and_check_config_report_on_the_database() {
    let db = cluster::TestDb::new();
    let server = front_end(&db);
    let config = server.config_path();
    let migrate = Command::new(BIN)
        .args(["store", "migrate", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&migrate.stdout);
    assert!(
        migrate.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&migrate.stderr)
    );
    assert!(said.contains("the schema is current"), "{said}");

    let check = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&check.stdout);
    assert!(report.contains("[postgres] reached 127.0.0.1:"), "{report}");
    assert!(report.contains("read-write"), "{report}");
    assert!(report.contains("[postgres] schema is current"), "{report}");

    // A Maildir configuration has no schema, and says so.
    let maildir = ServerBuilder::new().start();
    let refused = Command::new(BIN)
        .args(["store", "migrate", "--config"])
        .arg(maildir.config_path())
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("has no schema"));
}
