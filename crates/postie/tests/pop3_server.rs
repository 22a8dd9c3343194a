//! The real `postie serve` over real sockets: plain, STLS and implicit TLS; the snapshot and
//! deletion rules; UIDL stability; locking; the seen flag.

mod common;

use common::{crlf_form, Client, TestServer};

const TRICKY: &[u8] = b"From: a@example.org\nSubject: tricky\n\n.leading dot\n..two dots\n.\nbare LF and \r\nCRLF mixed\n8-bit \xe9\xff\x00 NUL\nno final newline";

#[test]
fn plain_session_retrieves_byte_exact() {
    let server = TestServer::start();
    server.add_message("alice", b"Subject: one\r\n\r\nfirst\r\n");
    server.add_message("alice", TRICKY);
    let mut client = server.plain_client();
    assert!(
        client.greeting.starts_with("+OK test.example"),
        "{}",
        client.greeting
    );
    client.login("alice", "wonderland");
    let expected_sizes = [
        crlf_form(b"Subject: one\r\n\r\nfirst\r\n").len(),
        crlf_form(TRICKY).len(),
    ];
    assert_eq!(
        client.command("STAT"),
        format!("+OK 2 {}", expected_sizes[0] + expected_sizes[1])
    );
    assert!(client.command("LIST").starts_with("+OK"));
    let listing = String::from_utf8(client.body()).unwrap();
    assert_eq!(
        listing,
        format!("1 {}\r\n2 {}\r\n", expected_sizes[0], expected_sizes[1])
    );
    let answer = client.command("RETR 2");
    assert_eq!(answer, format!("+OK {} octets", expected_sizes[1]));
    let body = client.body();
    assert_eq!(body, crlf_form(TRICKY));
    assert_eq!(
        body.len(),
        expected_sizes[1],
        "the announced size is the CRLF size"
    );
    assert_eq!(client.command("TOP 2 0"), "+OK Top of message follows.");
    assert_eq!(
        client.body(),
        b"From: a@example.org\r\nSubject: tricky\r\n\r\n"
    );
    assert_eq!(client.command("TOP 2 2"), "+OK Top of message follows.");
    assert_eq!(
        client.body(),
        b"From: a@example.org\r\nSubject: tricky\r\n\r\n.leading dot\r\n..two dots\r\n"
    );
    assert!(client.command("QUIT").starts_with("+OK"));
}

#[test]
fn password_with_spaces_over_implicit_tls() {
    let server = TestServer::start();
    server.add_message("bob", b"hello bob\n");
    let mut client = server.tls_client();
    client.login("bob", "pass word with spaces");
    assert_eq!(client.retr(1), b"hello bob\r\n");
    assert!(client.command("QUIT").starts_with("+OK"));
}

#[test]
fn stls_upgrades_and_changes_capa() {
    let server = TestServer::start();
    let mut client = server.plain_client();
    assert!(client.command("CAPA").starts_with("+OK"));
    let before = String::from_utf8(client.body()).unwrap();
    assert!(before.contains("STLS\r\n"), "{before}");
    let mut client = client.stls(&server.cert_pem);
    assert!(client.command("CAPA").starts_with("+OK"));
    let after = String::from_utf8(client.body()).unwrap();
    assert!(!after.contains("STLS"), "{after}");
    for capability in [
        "TOP",
        "UIDL",
        "USER",
        "RESP-CODES",
        "AUTH-RESP-CODE",
        "PIPELINING",
        "SASL SCRAM-SHA-256 PLAIN LOGIN",
    ] {
        assert!(
            after.contains(&format!("{capability}\r\n")),
            "{capability} missing in {after}"
        );
    }
    client.login("alice", "wonderland");
    assert_eq!(client.command("STAT"), "+OK 0 0");
}

#[test]
fn stls_injection_is_not_executed() {
    let server = TestServer::start();
    server.add_message("alice", b"x\n");
    let mut client = server.plain_client();
    // Commands pipelined behind STLS, in the clear, must be discarded.
    client.send_raw(b"STLS\r\nUSER alice\r\nPASS wonderland\r\nDELE 1\r\nQUIT\r\n");
    assert!(client.line().starts_with("+OK"));
    let mut client = client.upgrade(&server.cert_pem);
    assert_eq!(
        client.command("STAT"),
        "-ERR Not logged in: authenticate first."
    );
    client.login("alice", "wonderland");
    assert_eq!(client.command("STAT"), "+OK 1 3");
}

#[test]
fn uidls_are_stable_across_sessions_and_renames() {
    let server = TestServer::start();
    for i in 0..3 {
        server.add_message("alice", format!("message {i}\n").as_bytes());
    }
    let uidls = |client: &mut Client| {
        assert!(client.command("UIDL").starts_with("+OK"));
        String::from_utf8(client.body()).unwrap()
    };
    let mut client = server.plain_client();
    client.login("alice", "wonderland");
    let first = uidls(&mut client);
    client.retr(2);
    assert!(client.command("QUIT").starts_with("+OK"));
    let mut client = server.plain_client();
    client.login("alice", "wonderland");
    assert_eq!(uidls(&mut client), first);
    for line in first.lines() {
        let uidl = line.split(' ').nth(1).unwrap();
        assert!(
            (1..=70).contains(&uidl.len()) && uidl.bytes().all(|b| (0x21..=0x7e).contains(&b)),
            "{uidl}"
        );
    }
    assert!(client.command("DELE 3").starts_with("+OK"));
    assert!(client.command("QUIT").starts_with("+OK"));
    server.add_message("alice", b"message 4\n");
    let mut client = server.plain_client();
    client.login("alice", "wonderland");
    let after = uidls(&mut client);
    let old: Vec<&str> = first
        .lines()
        .map(|l| l.split(' ').nth(1).unwrap())
        .collect();
    let new: Vec<&str> = after
        .lines()
        .map(|l| l.split(' ').nth(1).unwrap())
        .collect();
    assert_eq!(&new[..2], &old[..2]);
    assert!(
        !old.contains(&new[2]),
        "a deleted message's UIDL is never reused"
    );
}

#[test]
fn retr_marks_the_message_seen() {
    let server = TestServer::start();
    server.add_message("alice", b"read me\n");
    server.add_message("alice", b"skip me\n");
    let mut client = server.plain_client();
    client.login("alice", "wonderland");
    client.retr(1);
    assert!(client.command("TOP 2 0").starts_with("+OK"));
    client.body();
    assert!(client.command("QUIT").starts_with("+OK"));
    let names: Vec<String> = server
        .message_files("alice")
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names.iter().filter(|n| n.ends_with(":2,S")).count(),
        1,
        "{names:?}"
    );
}

/// As in Dovecot, Seen flags are set at QUIT, with the deletions: a session cut off before
/// QUIT changes nothing, and a message retrieved and then deleted is removed, not renamed.
#[test]
fn lock_session_gives_in_use() {
    let server = TestServer::start_with("lock_session = true");
    let mut first = server.plain_client();
    first.login("alice", "wonderland");
    let mut second = server.plain_client();
    assert!(second.command("USER alice").starts_with("+OK"));
    assert_eq!(
        second.command("PASS wonderland").split(']').next().unwrap(),
        "-ERR [IN-USE"
    );
    assert!(first.command("QUIT").starts_with("+OK"));
    let mut third = server.plain_client();
    third.login("alice", "wonderland");
}

#[test]
fn unknown_user_and_wrong_password_look_the_same() {
    let server = TestServer::start();
    let mut client = server.plain_client();
    assert_eq!(
        client.command("USER nobody"),
        client.command("USER alice").replace("alice", "nobody")
    );
    let mut a = server.plain_client();
    a.command("USER nobody");
    let unknown = a.command("PASS wonderland");
    let mut b = server.plain_client();
    b.command("USER alice");
    let wrong = b.command("PASS wrong");
    assert_eq!(unknown, wrong);
    assert_eq!(unknown, "-ERR [AUTH] Authentication failed.");
}

#[test]
fn deleted_trash_moves_to_the_trash_folder() {
    let server = TestServer::start_with("deleted = \"trash\"");
    server.add_message("alice", b"to the trash\n");
    let mut client = server.plain_client();
    client.login("alice", "wonderland");
    assert!(client.command("DELE 1").starts_with("+OK"));
    assert!(client.command("QUIT").starts_with("+OK"));
    assert!(server.message_files("alice").is_empty());
    let trash = server.maildir("alice").join(".Trash");
    let count: usize = ["new", "cur"]
        .iter()
        .map(|d| std::fs::read_dir(trash.join(d)).map_or(0, |e| e.count()))
        .sum();
    assert_eq!(count, 1);
}

#[test]
fn deleted_hide_keeps_the_file_but_never_shows_it() {
    let server = TestServer::start_with("deleted = \"hide\"");
    server.add_message("alice", b"hidden\n");
    server.add_message("alice", b"shown\n");
    let mut client = server.plain_client();
    client.login("alice", "wonderland");
    assert!(client.command("DELE 1").starts_with("+OK"));
    assert!(client.command("QUIT").starts_with("+OK"));
    assert_eq!(server.message_files("alice").len(), 2);
    let mut client = server.plain_client();
    client.login("alice", "wonderland");
    assert_eq!(client.command("STAT"), "+OK 1 7");
    assert_eq!(client.retr(1), b"shown\r\n");
}

#[test]
fn login_delay_and_expire_are_announced_and_enforced() {
    let server = TestServer::start_with("login_delay_secs = 900\nexpire = \"never\"");
    let mut client = server.plain_client();
    assert!(client.command("CAPA").starts_with("+OK"));
    let capa = String::from_utf8(client.body()).unwrap();
    assert!(
        capa.contains("LOGIN-DELAY 900\r\n") && capa.contains("EXPIRE NEVER\r\n"),
        "{capa}"
    );
    client.login("alice", "wonderland");
    assert!(client.command("QUIT").starts_with("+OK"));
    let mut again = server.plain_client();
    again.command("USER alice");
    assert!(again
        .command("PASS wonderland")
        .starts_with("-ERR [LOGIN-DELAY]"));
}

#[test]
fn secrets_never_reach_the_log() {
    let server = TestServer::start();
    let mut client = server.plain_client();
    client.login("alice", "wonderland");
    assert!(client.command("QUIT").starts_with("+OK"));
    let mut client = server.plain_client();
    client.command("USER alice");
    client.command("PASS not-the-password");
    client.command("AUTH PLAIN AGFsaWNlAHNlY3JldHNhdWNl");
    drop(client);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let log = server.log();
    assert!(log.contains("session ended"), "{log}");
    for secret in [
        "wonderland",
        "not-the-password",
        "AGFsaWNlAHNlY3JldHNhdWNl",
        "secretsauce",
    ] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
}
