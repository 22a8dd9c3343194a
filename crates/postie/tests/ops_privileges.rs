//! Privilege drop: started as root with `user = …`, postie binds its ports and then every
//! thread runs as that user, still serving; started as root without it, it refuses.

mod common;

use std::process::Command;

use common::{find_program, ServerBuilder, BIN};

const USER: &str = "postie-test";

/// Fails the test unless it can run here: as root, with the tools it calls. It never
/// passes without having run (CI runs the tests as root).
fn require_root(tools: &[&str]) {
    // SAFETY: geteuid has no preconditions.
    let problem = if unsafe { libc::geteuid() } != 0 {
        Some("it must run as root (CI runs the tests as root)".to_owned())
    } else {
        tools
            .iter()
            .find(|tool| find_program(tool).is_none())
            .map(|tool| format!("it needs {tool}, which is not installed"))
    };
    if let Some(problem) = problem {
        panic!("this test cannot run here: {problem}");
    }
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
    require_root(&["id", "useradd", "chown"]);
    let uid = test_user();
    let server = ServerBuilder::new()
        .top(&format!("user = \"{USER}\""))
        .serve_args(&[])
        .start();
    server.wait_for_log("running as an unprivileged user", 1);

    let pid = server.pid();
    let tasks: Vec<_> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .collect();
    assert!(!tasks.is_empty());
    for task in tasks {
        let status = std::fs::read_to_string(task.unwrap().path().join("status")).unwrap();
        assert_eq!(uids(&status), vec![uid; 4], "{status}");
    }

    // Still serving, as that user: the maildrop it owns is read and changed.
    server.add_message_named("alice", "1.M1P1.test", b"Subject: hi\n\nhello\n");
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
    require_root(&[]);
    let dir = tempfile::tempdir().unwrap();
    ServerBuilder::new().write(dir.path());
    let out = serve_and_wait(&dir.path().join("postie.toml"));
    assert!(!out.status.success());
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(
        error.contains("user = \"postie\"") && error.contains("--allow-root"),
        "{error}"
    );

    std::fs::write(
        dir.path().join("postie.toml"),
        ServerBuilder::new()
            .top("user = \"no-such-user-here\"")
            .config(),
    )
    .unwrap();
    let out = serve_and_wait(&dir.path().join("postie.toml"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("useradd"));
}
