//! The command line as an administrator uses it: `postie user`, `postie pw`, configuration
//! errors at start-up, and the demo.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::BIN;

fn postie(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A command that refuses its arguments exits before reading its input.
    let _ = child.stdin.take().unwrap().write_all(stdin);
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn user_add_passwd_list_del() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    let file = users.to_str().unwrap();
    std::fs::write(&users, "# our users\nzed:{PLAIN}z:1000:1000::/home/zed::\n").unwrap();
    let out = postie(
        &[
            "user",
            "add",
            "amy",
            "--password-stdin",
            "--passwd-file",
            file,
        ],
        b"s3cret\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = postie(&["user", "list", "--passwd-file", file], b"");
    assert_eq!(text(&out.stdout), "zed\namy\n");
    let contents = std::fs::read_to_string(&users).unwrap();
    assert!(
        contents.starts_with(
            "# our users\nzed:{PLAIN}z:1000:1000::/home/zed::\namy:{ARGON2ID}$argon2id$"
        ),
        "{contents}"
    );
    let out = postie(
        &[
            "user",
            "passwd",
            "zed",
            "-s",
            "SHA512-CRYPT",
            "--password-stdin",
            "--passwd-file",
            file,
        ],
        b"new\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let contents = std::fs::read_to_string(&users).unwrap();
    assert!(
        contents.contains("zed:{SHA512-CRYPT}$6$") && contents.contains(":1000:1000::/home/zed::"),
        "{contents}"
    );
    let out = postie(
        &[
            "user",
            "passwd",
            "nobody",
            "--password-stdin",
            "--passwd-file",
            file,
        ],
        b"x\n",
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no user \"nobody\""),
        "{}",
        text(&out.stderr)
    );
    let out = postie(&["user", "del", "amy", "--passwd-file", file], b"");
    assert!(out.status.success());
    assert_eq!(
        text(&postie(&["user", "list", "--passwd-file", file], b"").stdout),
        "zed\n"
    );
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&users).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o644, "the original mode is kept");
}

#[test]
fn bad_user_names_and_schemes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users");
    let file = file.to_str().unwrap();
    for name in ["a:b", "with space", ""] {
        let out = postie(
            &[
                "user",
                "add",
                name,
                "--password-stdin",
                "--passwd-file",
                file,
            ],
            b"pw\n",
        );
        assert!(!out.status.success(), "{name:?} accepted");
    }
    let out = postie(
        &[
            "user",
            "add",
            "amy",
            "-s",
            "ROT13",
            "--password-stdin",
            "--passwd-file",
            file,
        ],
        b"pw\n",
    );
    assert!(
        text(&out.stderr).contains("unknown password scheme \"ROT13\": use one of"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn two_admins_at_once_lose_no_user() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users");
    let children: Vec<_> = (0..16)
        .map(|i| {
            let mut child = Command::new(BIN)
                .args([
                    "user",
                    "add",
                    &format!("user{i}"),
                    "-s",
                    "PLAIN",
                    "--password-stdin",
                    "--passwd-file",
                ])
                .arg(&file)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            child.stdin.take().unwrap().write_all(b"pw\n").unwrap();
            child
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let listed = text(
        &postie(
            &["user", "list", "--passwd-file", file.to_str().unwrap()],
            b"",
        )
        .stdout,
    );
    assert_eq!(listed.lines().count(), 16, "{listed}");
}

#[test]
fn pw_hash_prints_dovecot_form() {
    let out = postie(&["pw", "hash", "--password-stdin"], b"secret\n");
    assert!(
        text(&out.stdout).starts_with("{ARGON2ID}$argon2id$v=19$"),
        "{}",
        text(&out.stdout)
    );
    let out = postie(
        &["pw", "hash", "-s", "ssha512", "--password-stdin"],
        b"secret\n",
    );
    assert!(
        text(&out.stdout).starts_with("{SSHA512}"),
        "{}",
        text(&out.stdout)
    );
}

fn serve_error(config: &str, dir: &Path) -> String {
    let path = dir.join("postie.toml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&path)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "started with a broken config: {config}"
    );
    text(&out.stderr)
}

#[test]
fn configuration_errors_name_file_key_and_fix() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("users"), "").unwrap();
    let base =
        "[pop3]\nlisten = [\"127.0.0.1:0\"]\nlisten_tls = []\n[mail]\nmaildir = \"m/{user}\"\n";
    let error = serve_error(
        &format!("{base}[auth]\npasswd_file = \"users\"\nfailure_dely_secs = 1\n"),
        dir.path(),
    );
    assert!(
        error.contains("postie.toml") && error.contains("failure_dely_secs"),
        "{error}"
    );
    let error = serve_error(
        &format!("{base}[tls]\ncert = \"missing.pem\"\nkey = \"key.pem\"\n"),
        dir.path(),
    );
    assert!(
        error.contains("[tls]") && error.contains("missing.pem"),
        "{error}"
    );
    let error = serve_error(
        &format!("{base}[auth]\npasswd_file = \"nope\"\n"),
        dir.path(),
    );
    assert!(
        error.contains("passwd_file") && error.contains("postie user add"),
        "{error}"
    );
    std::fs::write(dir.path().join("bad.pem"), "not a certificate").unwrap();
    let error = serve_error(
        &format!("{base}[tls]\ncert = \"bad.pem\"\nkey = \"bad.pem\"\n"),
        dir.path(),
    );
    assert!(
        error.contains("bad.pem") && error.contains("PEM"),
        "{error}"
    );
    let error = serve_error(
        "[pop3]\nlisten = [\"127.0.0.1:0\"]\n[tls]\ncert = 5\n",
        dir.path(),
    );
    assert!(
        error.contains("postie.toml") && error.contains("line 4"),
        "{error}"
    );
    let missing = dir.path().join("absent.toml");
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&missing)
        .output()
        .unwrap();
    assert!(text(&out.stderr).contains("absent.toml") && text(&out.stderr).contains("--config"));
}

#[test]
fn demo_starts_and_reuses_what_it_made() {
    let dir = tempfile::tempdir().unwrap();
    let demo = dir.path().join("demo");
    let run = || {
        let mut child = Command::new(BIN)
            .args(["serve", "--demo", "--demo-dir"])
            .arg(&demo)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut printed = String::new();
        while !printed.contains("Ctrl-C") {
            let mut line = String::new();
            if std::io::BufRead::read_line(&mut stdout, &mut line).unwrap() == 0 {
                break;
            }
            printed.push_str(&line);
        }
        (child, printed)
    };
    let (mut child, printed) = run();
    assert!(
        printed.contains("curl")
            && printed.contains("demo:demo")
            && printed.contains("Thunderbird")
            && printed.contains("http://127.0.0.1:8080/account/"),
        "{printed}"
    );
    let cert = std::fs::read_to_string(demo.join("cert.pem")).unwrap();
    let mut client = common::Client::implicit_tls("127.0.0.1:1995".parse().unwrap(), &cert);
    client.login("demo", "demo");
    assert!(client.command("STAT").starts_with("+OK 3 "));
    assert!(client.command("DELE 1").starts_with("+OK"));
    assert!(client.command("QUIT").starts_with("+OK"));
    child.kill().unwrap();
    child.wait().unwrap();
    let (mut child, _) = run();
    assert_eq!(
        std::fs::read_to_string(demo.join("cert.pem")).unwrap(),
        cert,
        "the certificate is reused"
    );
    let mut client = common::Client::plain("127.0.0.1:1110".parse().unwrap()).stls(&cert);
    client.login("demo", "demo");
    assert!(
        client.command("STAT").starts_with("+OK 2 "),
        "the maildrop is reused, not re-seeded"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}
