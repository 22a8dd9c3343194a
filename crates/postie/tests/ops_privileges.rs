//! Privilege drop: started as root with `user = …`, postie binds its ports and then every
//! thread runs as that user, still serving; started as root without it, it refuses.

mod common;
mod ops_support;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::BIN;
use ops_support::{config, write_cert, OpsServer};

const USER: &str = "postie-test";

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The uid of the test's system user, created when missing.
fn test_user() -> u32 {
    let id = || Command::new("id").args(["-u", USER]).output().unwrap();
    let mut out = id();
    if !out.status.success() {
        let made = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                USER,
            ])
            .status()
            .expect("useradd");
        assert!(made.success(), "useradd --system {USER}");
        out = id();
    }
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Runs `postie serve` on this configuration until it exits.
fn serve_and_wait(config: &std::path::Path) -> std::process::Output {
    Command::new(BIN)
        .arg("serve")
        .arg("--config")
        .arg(config)
        .output()
        .unwrap()
}

fn uids(status: &str) -> Vec<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .unwrap()
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect()
}

#[test]
fn root_with_user_binds_then_serves_as_that_user() {
    if !is_root() {
        eprintln!("skipped: dropping privileges needs root (CI runs as root)");
        return;
    }
    let uid = test_user();
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let cert_pem = write_cert(dir.path());
    std::fs::write(dir.path().join("users"), common::USERS).unwrap();
    std::fs::write(
        dir.path().join("postie.toml"),
        config(&format!("user = \"{USER}\""), "", ""),
    )
    .unwrap();
    let mut command = Command::new(BIN);
    command
        .arg("serve")
        .arg("--config")
        .arg(dir.path().join("postie.toml"));
    let server = OpsServer::spawn(dir, cert_pem, command);
    server.wait_for_log("running as an unprivileged user", 1);

    let pid = server.child.id();
    let tasks: Vec<_> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .collect();
    assert!(!tasks.is_empty());
    for task in tasks {
        let status = std::fs::read_to_string(task.unwrap().path().join("status")).unwrap();
        assert_eq!(uids(&status), vec![uid; 4], "{status}");
    }

    // Still serving, as that user: the maildrop it owns is read and changed.
    server.add_message("alice", "1.M1P1.test", b"Subject: hi\n\nhello\n");
    let chown = Command::new("chown")
        .args(["-R", USER])
        .arg(server.dir.path().join("mail"))
        .status()
        .unwrap();
    assert!(chown.success());
    let mut client = server.tls_client();
    client.login("alice", "wonderland");
    assert!(client.retr(1).ends_with(b"hello\r\n"));
    assert!(client.command("DELE 1").starts_with("+OK"));
    assert!(client.command("QUIT").starts_with("+OK"));
    assert!(server.messages("alice").is_empty());
}

#[test]
fn root_without_user_refuses_unless_allowed() {
    if !is_root() {
        eprintln!("skipped: the refusal concerns root (CI runs as root)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    write_cert(dir.path());
    std::fs::write(dir.path().join("users"), common::USERS).unwrap();
    std::fs::write(dir.path().join("postie.toml"), config("", "", "")).unwrap();
    let out = serve_and_wait(&dir.path().join("postie.toml"));
    assert!(!out.status.success());
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(
        error.contains("user = \"postie\"") && error.contains("--allow-root"),
        "{error}"
    );

    std::fs::write(
        dir.path().join("postie.toml"),
        config("user = \"no-such-user-here\"", "", ""),
    )
    .unwrap();
    let out = serve_and_wait(&dir.path().join("postie.toml"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("useradd"));
}
