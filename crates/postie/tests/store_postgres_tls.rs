//! `[postgres] ca_file`: the real binary against a real PostgreSQL 15 that takes TLS
//! connections only. A front end with the server's CA migrates, takes mail over LMTP and
//! serves it over POP3, and check-config says the connection uses TLS; a missing or invalid
//! CA file is reported by name with what to do.

// The one PostgreSQL test support, shared with postie-store-pg's own tests.
#[path = "../../postie-store-pg/tests/cluster/mod.rs"]
#[allow(dead_code)]
mod cluster;
mod common;
mod pg_support;

use std::path::Path;
use std::process::Command;

use common::{lmtp_deliver, ServerBuilder, BIN};
use pg_support::url;

fn postie(args: &[&str], config: &Path) -> (bool, String) {
    let out = Command::new(BIN)
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

#[test]
fn a_front_end_with_the_servers_ca_works_over_tls() {
    let db = cluster::TlsCluster::start();
    let ca = tempfile::tempdir().unwrap();
    let ca_file = ca.path().join("db-ca.pem");
    std::fs::write(&ca_file, db.ca_pem()).unwrap();
    let server = ServerBuilder::new()
        .mail("store = \"postgres\"")
        .lmtp("")
        .sections(&format!(
            "[postgres]\nurl = \"{}\"\nca_file = \"{}\"\npool_size = 2\n",
            url(&db.config()),
            ca_file.display()
        ))
        .start();
    let (migrated, said) = postie(&["store", "migrate"], &server.config_path());
    assert!(migrated, "{said}");

    let reply = lmtp_deliver(
        server.lmtp.unwrap(),
        "alice@example.org",
        b"Subject: over TLS\r\n\r\nhello\r\n",
    );
    assert_eq!(reply.code, 250, "{}", reply.text());
    let mut reader = server.plain_client();
    reader.login("alice", "wonderland");
    assert!(reader.retr(1).ends_with(b"\r\n\r\nhello\r\n"));
    assert!(reader.command("QUIT").starts_with("+OK"));

    let (_, report) = postie(&["check-config"], &server.config_path());
    assert!(report.contains("read-write, over TLS"), "{report}");
    assert!(report.contains(&ca_file.display().to_string()), "{report}");
    assert!(report.contains("[postgres] schema is current"), "{report}");
}

#[test]
fn a_missing_or_invalid_ca_file_is_named_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    ServerBuilder::new()
        .mail("store = \"postgres\"")
        .sections(
            "[postgres]\nurl = \"postgresql://postie@127.0.0.1/postie\"\nca_file = \"db-ca.pem\"\n",
        )
        .write(dir.path());
    let config = dir.path().join("postie.toml");
    let (ok, report) = postie(&["check-config"], &config);
    assert!(!ok, "{report}");
    let ca_file = dir.path().join("db-ca.pem").display().to_string();
    assert!(
        report.contains(&format!("[postgres] ca_file: cannot read {ca_file}")),
        "{report}"
    );
    assert!(
        report.contains("put the PEM certificate of the CA"),
        "{report}"
    );

    std::fs::write(dir.path().join("db-ca.pem"), "not a certificate\n").unwrap();
    let (ok, report) = postie(&["check-config"], &config);
    assert!(!ok, "{report}");
    assert!(
        report.contains(&format!(
            "[postgres] ca_file {ca_file}: it holds no certificate"
        )),
        "{report}"
    );
    assert!(report.contains("-----BEGIN CERTIFICATE-----"), "{report}");
}
