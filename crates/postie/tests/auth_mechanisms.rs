//! Every way to log in, against the real server: USER/PASS with UTF-8, APOP, SASL PLAIN,
//! LOGIN and SCRAM-SHA-256 (initial-response and continuation forms), passwd-file reloads,
//! and hashes made by Dovecot's own `doveadm pw`.

mod common;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use common::{Client, TestServer};
use hmac::{Hmac, Mac};
use md5::Md5;
use sha2::{Digest, Sha256};

fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

fn challenge(line: &str) -> Vec<u8> {
    let data = line
        .strip_prefix("+ ")
        .unwrap_or_else(|| panic!("not a challenge: {line}"));
    B64.decode(data).unwrap()
}

fn append_user(server: &TestServer, line: &str) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(server.dir.path().join("users"))
        .unwrap();
    writeln!(file, "{line}").unwrap();
}

#[test]
fn sasl_plain_initial_response_and_continuation() {
    let server = TestServer::start();
    let mut client = server.tls_client();
    assert!(client
        .command(&format!("AUTH PLAIN {}", b64(b"\0alice\0wrong")))
        .starts_with("-ERR [AUTH]"));
    assert!(client
        .command(&format!("AUTH PLAIN {}", b64(b"\0alice\0wonderland")))
        .starts_with("+OK"));
    let mut client = server.tls_client();
    assert_eq!(client.command("AUTH PLAIN"), "+ ");
    assert!(client
        .command(&b64(b"alice\0alice\0wonderland"))
        .starts_with("+OK"));
    let mut client = server.tls_client();
    assert_eq!(client.command("AUTH PLAIN"), "+ ");
    assert_eq!(client.command("*"), "-ERR Authentication cancelled.");
}

#[test]
fn sasl_login() {
    let server = TestServer::start();
    let mut client = server.tls_client();
    assert_eq!(challenge(&client.command("AUTH LOGIN")), b"Username:");
    assert_eq!(challenge(&client.command(&b64(b"bob"))), b"Password:");
    assert!(client
        .command(&b64(b"pass word with spaces"))
        .starts_with("+OK"));
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// A SCRAM-SHA-256 client (RFC 5802/7677) run over POP3 AUTH; `initial` selects the
/// initial-response form.
fn scram_login(client: &mut Client, user: &str, password: &str, initial: bool) -> String {
    let client_nonce = "rOprNGfwEbeRWgbNEkqO";
    let first_bare = format!("n={user},r={client_nonce}");
    let first = format!("n,,{first_bare}");
    let answer = if initial {
        client.command(&format!("AUTH SCRAM-SHA-256 {}", b64(first.as_bytes())))
    } else {
        assert_eq!(client.command("AUTH SCRAM-SHA-256"), "+ ");
        client.command(&b64(first.as_bytes()))
    };
    if !answer.starts_with("+ ") {
        return answer;
    }
    let server_first = String::from_utf8(challenge(&answer)).unwrap();
    let fields: Vec<&str> = server_first.split(',').collect();
    let nonce = fields[0].strip_prefix("r=").unwrap();
    assert!(nonce.starts_with(client_nonce));
    let salt = B64.decode(fields[1].strip_prefix("s=").unwrap()).unwrap();
    let iterations: u32 = fields[2].strip_prefix("i=").unwrap().parse().unwrap();
    let mut salted = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &salt, iterations, &mut salted);
    let client_key = hmac(&salted, b"Client Key");
    let stored_key = Sha256::digest(&client_key);
    let without_proof = format!("c=biws,r={nonce}");
    let auth_message = format!("{first_bare},{server_first},{without_proof}");
    let signature = hmac(&stored_key, auth_message.as_bytes());
    let proof: Vec<u8> = client_key
        .iter()
        .zip(&signature)
        .map(|(a, b)| a ^ b)
        .collect();
    let answer = client.command(&b64(format!("{without_proof},p={}", b64(&proof)).as_bytes()));
    if !answer.starts_with("+ ") {
        return answer;
    }
    let server_final = String::from_utf8(challenge(&answer)).unwrap();
    let server_key = hmac(&salted, b"Server Key");
    let expected = format!("v={}", b64(&hmac(&server_key, auth_message.as_bytes())));
    assert_eq!(
        server_final, expected,
        "the server proves it knows the password too"
    );
    client.command("")
}

#[test]
fn scram_sha_256_with_plain_and_scram_stored_users() {
    let server = TestServer::start();
    let hash = std::process::Command::new(common::BIN)
        .args([
            "pw",
            "hash",
            "--scheme",
            "SCRAM-SHA-256",
            "--password-stdin",
        ])
        .stdin_bytes(b"tea party\n");
    append_user(&server, &format!("hatter:{hash}"));
    let mut client = server.plain_client();
    assert!(scram_login(&mut client, "alice", "wonderland", true).starts_with("+OK"));
    let mut client = server.plain_client();
    assert!(scram_login(&mut client, "hatter", "tea party", false).starts_with("+OK"));
    let mut client = server.plain_client();
    assert!(scram_login(&mut client, "hatter", "wrong", true).starts_with("-ERR [AUTH]"));
    let mut client = server.plain_client();
    assert!(scram_login(&mut client, "nobody", "wrong", true).starts_with("-ERR [AUTH]"));
}

#[test]
fn apop_with_the_greeting_timestamp() {
    let server = TestServer::start_with("apop = true");
    let mut client = server.plain_client();
    let timestamp = &client.greeting[client.greeting.find('<').unwrap()..];
    let digest = hex::encode(Md5::digest(format!("{timestamp}wonderland").as_bytes()));
    assert!(client
        .command(&format!("APOP alice {digest}"))
        .starts_with("+OK"));
    let mut other = server.plain_client();
    assert_ne!(
        other.greeting, client.greeting,
        "every greeting has a fresh timestamp"
    );
    assert!(
        other
            .command(&format!("APOP alice {digest}"))
            .starts_with("-ERR [AUTH]"),
        "no replay"
    );
}

#[test]
fn utf8_user_names_and_passwords() {
    let server = TestServer::start();
    append_user(&server, "jöns:{PLAIN}pässwörd ✓");
    server.add_message("jöns", "Subject: hej\n\nKöttbullar\n".as_bytes());
    let mut client = server.tls_client();
    assert!(client.command("UTF8").starts_with("+OK"));
    client.login("jöns", "pässwörd ✓");
    assert_eq!(
        client.retr(1),
        "Subject: hej\r\n\r\nKöttbullar\r\n".as_bytes()
    );
}

#[test]
fn passwd_file_changes_apply_without_restart() {
    let server = TestServer::start();
    let mut client = server.plain_client();
    client.command("USER carol");
    assert!(client.command("PASS rabbit").starts_with("-ERR [AUTH]"));
    // Same-second edits must be noticed too.
    append_user(&server, "carol:{PLAIN}rabbit");
    let mut client = server.plain_client();
    client.login("carol", "rabbit");
}

#[test]
fn hashes_made_by_doveadm_log_in() {
    let server = TestServer::start();
    let schemes = [
        "SHA512-CRYPT",
        "SHA256-CRYPT",
        "BLF-CRYPT",
        "ARGON2ID",
        "ARGON2I",
        "SSHA256",
        "SSHA512",
        "PBKDF2",
        "SCRAM-SHA-256",
    ];
    for (i, scheme) in schemes.iter().enumerate() {
        let output = std::process::Command::new("doveadm")
            .args(["pw", "-s", scheme, "-p", "mock turtle"])
            .output()
            .expect("doveadm is missing: run scripts/test (it installs dovecot-core)");
        assert!(
            output.status.success(),
            "doveadm pw -s {scheme}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let hash = String::from_utf8(output.stdout).unwrap();
        append_user(&server, &format!("user{i}:{}", hash.trim()));
    }
    for (i, scheme) in schemes.iter().enumerate() {
        let mut client = server.tls_client();
        client.command(&format!("USER user{i}"));
        assert!(
            client.command("PASS mock turtle").starts_with("+OK"),
            "{scheme}"
        );
        let mut client = server.tls_client();
        client.command(&format!("USER user{i}"));
        assert!(
            client
                .command("PASS mock turtlE")
                .starts_with("-ERR [AUTH]"),
            "{scheme}"
        );
    }
}

trait StdinBytes {
    fn stdin_bytes(&mut self, input: &[u8]) -> String;
}

impl StdinBytes for std::process::Command {
    /// Runs the command with `input` on stdin; returns stdout, trimmed. Panics on failure.
    fn stdin_bytes(&mut self, input: &[u8]) -> String {
        use std::io::Write;
        use std::process::Stdio;
        let mut child = self
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    }
}
