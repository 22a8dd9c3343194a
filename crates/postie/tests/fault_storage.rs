//! Storage faults under the real server: a full disk, a read-only filesystem (both real
//! tmpfs mounts, so CI must run these as root), a damaged or missing index, a message file
//! that cannot be read, a message removed by someone else mid-session. Each gives the peer a
//! clear temporary or permanent answer for that user only, is logged, loses nothing, and
//! keeps every UIDL.

mod common;
mod harden_support;

use std::io::Write;

use common::{lmtp_deliver, Reply, ServerBuilder, TestServer};
use harden_support::{pop3_view, Mount};

fn server() -> TestServer {
    ServerBuilder::new().lmtp("").start()
}

fn message(n: usize) -> Vec<u8> {
    let mut m = format!("Subject: message {n}\r\n\r\n").into_bytes();
    m.extend(std::iter::repeat_n(b'a' + (n % 26) as u8, 3000));
    m.extend_from_slice(b"\r\n");
    m
}

/// Delivers one message over LMTP and returns the final reply.
fn deliver(server: &TestServer, user: &str, content: &[u8]) -> Reply {
    lmtp_deliver(
        server.lmtp.unwrap(),
        &format!("{user}@example.org"),
        content,
    )
}

/// Fills the filesystem holding `dir` up to the last byte.
fn fill(dir: &std::path::Path) {
    let mut filler = std::fs::File::create(dir.join("filler")).unwrap();
    let chunk = vec![0u8; 4096];
    while filler.write_all(&chunk).is_ok() {}
    let _ = filler.sync_all();
}

#[test]
fn a_full_disk_defers_mail_loses_nothing_and_others_are_served() {
    let server = server();
    let _mount = Mount::tmpfs(&server.mail_root().join("alice"), "1M");
    for n in 0..3 {
        assert_eq!(deliver(&server, "alice", &message(n)).code, 250);
    }
    let before = pop3_view(server.plain, "alice", "wonderland");
    fill(&server.mail_root().join("alice"));

    let refused = deliver(&server, "alice", &message(9));
    assert!(
        (450..460).contains(&refused.code),
        "a full disk must defer, not bounce: {refused:?}"
    );
    assert!(
        deliver(&server, "bob", &message(10)).code == 250,
        "others still get mail"
    );
    assert!(
        server.log().contains("No space left on device"),
        "{}",
        server.log()
    );
    let tmp = std::fs::read_dir(server.maildir("alice").join("tmp"))
        .unwrap()
        .count();
    assert_eq!(tmp, 0, "a failed delivery left its tmp file");

    // Deleting on a full disk: the files can go, the index may not be writable.
    let mut client = server.plain_client();
    client.login("alice", "wonderland");
    assert!(client.command("DELE 1").starts_with("+OK"));
    let quit = client.command("QUIT");
    assert!(
        quit.starts_with("+OK") || quit.starts_with("-ERR [SYS/TEMP]"),
        "{quit}"
    );
    let mut bob = server.plain_client();
    bob.login("bob", "pass word with spaces");
    // Delivered mail starts with trace headers, then the message as sent.
    assert!(bob.retr(1).ends_with(&message(10)), "bob's mail whole");

    std::fs::remove_file(server.mail_root().join("alice").join("filler")).unwrap();
    let after = pop3_view(server.plain, "alice", "wonderland");
    let first = before.keys().next().unwrap();
    for (uidl, content) in &before {
        match after.get(uidl) {
            Some(now) => assert_eq!(now, content, "{uidl} changed"),
            None => assert_eq!(uidl, first, "{uidl} lost"),
        }
    }
    assert_eq!(
        after.len() + usize::from(!after.contains_key(first)),
        before.len(),
        "nothing added"
    );
    assert!(
        deliver(&server, "alice", &message(11)).code == 250,
        "space back, mail back"
    );
}

#[test]
fn a_damaged_or_missing_index_is_repaired_without_changing_uidls() {
    let server = server();
    for n in 0..6 {
        server.add_message_named("alice", &format!("1700000000.M{n}P1.host"), &message(n));
    }
    let before = pop3_view(server.plain, "alice", "wonderland");
    let index = server.maildir("alice").join("postie-uidlist");
    let whole = std::fs::read(&index).unwrap();
    let damages: [(&str, Vec<u8>); 3] = [
        ("truncated", whole[..whole.len() / 2].to_vec()),
        ("overwritten", b"\x00garbage\nnot an index\n".to_vec()),
        ("emptied", Vec::new()),
    ];
    for (damage, bytes) in damages {
        std::fs::write(&index, bytes).unwrap();
        assert_eq!(
            pop3_view(server.plain, "alice", "wonderland"),
            before,
            "index {damage}"
        );
    }
    std::fs::remove_file(&index).unwrap();
    assert_eq!(
        pop3_view(server.plain, "alice", "wonderland"),
        before,
        "index removed"
    );
    assert!(
        server.log().contains("restored from its backup"),
        "{}",
        server.log()
    );
    assert_eq!(
        std::fs::read(&index).unwrap(),
        whole,
        "the index is written back whole"
    );
}

#[test]
fn an_index_that_cannot_be_read_fails_that_user_only_and_comes_back_unchanged() {
    let server = server();
    for n in 0..3 {
        server.add_message_named("alice", &format!("1700000000.M{n}P1.host"), &message(n));
    }
    let before = pop3_view(server.plain, "alice", "wonderland");
    // A directory where the index should be: every read of it is an I/O error (EISDIR).
    let index = server.maildir("alice").join("postie-uidlist");
    std::fs::remove_file(&index).unwrap();
    std::fs::create_dir(&index).unwrap();
    let mut client = server.plain_client();
    client.command("USER alice");
    let answer = client.command("PASS wonderland");
    assert!(answer.starts_with("-ERR [SYS/TEMP]"), "{answer}");
    assert!(
        server.log().contains("postie-uidlist"),
        "the failure is logged with its file"
    );
    let mut bob = server.plain_client();
    bob.login("bob", "pass word with spaces");
    assert!(
        bob.command("QUIT").starts_with("+OK"),
        "other users are served"
    );
    std::fs::remove_dir(&index).unwrap();
    assert_eq!(
        pop3_view(server.plain, "alice", "wonderland"),
        before,
        "UIDLs unchanged"
    );
}

#[test]
fn an_unreadable_or_vanished_message_gets_a_clear_answer_and_the_rest_is_served() {
    let server = server();
    for n in 0..3 {
        server.add_message_named("alice", &format!("1700000000.M{n}P1.host"), &message(n));
    }
    let cur = server.maildir("alice").join("cur");
    let mut client = server.plain_client();
    client.login("alice", "wonderland");
    assert_eq!(
        client.command("STAT"),
        format!("+OK 3 {}", 3 * message(0).len())
    );
    let file_of = |prefix: &str| {
        std::fs::read_dir(&cur)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
            .unwrap()
    };
    // After the login, message 3's file becomes something that is not a regular file: a
    // FIFO, whose reader would wait for ever for a writer.
    let third = file_of("1700000000.M2P1");
    std::fs::remove_file(&third).unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(&third)
        .status()
        .unwrap();
    assert!(status.success(), "mkfifo");
    let answer = client.command("RETR 3");
    assert!(answer.starts_with("-ERR [SYS/TEMP]"), "{answer}");
    // Someone else removes message 2 while the session runs.
    std::fs::remove_file(file_of("1700000000.M1P1")).unwrap();
    let answer = client.command("RETR 2");
    assert!(answer.starts_with("-ERR [SYS/TEMP]"), "{answer}");
    assert_eq!(client.retr(1), message(0));
    assert!(client.command("DELE 2").starts_with("+OK"));
    assert!(client.command("QUIT").starts_with("+OK"));
    let log = server.log();
    assert!(log.contains("cannot read message"), "{log}");
    let mut bob = server.plain_client();
    bob.login("bob", "pass word with spaces");
    assert!(bob.command("QUIT").starts_with("+OK"));
    let after = pop3_view(server.plain, "alice", "wonderland");
    let contents: Vec<&Vec<u8>> = after.values().collect();
    assert_eq!(
        contents,
        [&message(0)],
        "the FIFO is no message; message 1 is untouched"
    );
}

#[test]
fn a_read_only_maildir_is_served_changes_nothing_and_defers_mail() {
    let server = server();
    let mount = Mount::tmpfs(&server.mail_root().join("alice"), "4M");
    for n in 0..3 {
        assert_eq!(deliver(&server, "alice", &message(n)).code, 250);
    }
    let before = pop3_view(server.plain, "alice", "wonderland");
    mount.remount_read_only();

    let mut client = server.plain_client();
    client.login("alice", "wonderland");
    let first = client.retr(1);
    assert_eq!(&first, before.values().next().unwrap());
    assert!(client.command("DELE 1").starts_with("+OK"));
    let quit = client.command("QUIT");
    assert!(
        quit.starts_with("-ERR [SYS/TEMP]"),
        "deletion on a read-only filesystem: {quit}"
    );
    let refused = deliver(&server, "alice", &message(7));
    assert!(
        refused.code / 100 == 4,
        "delivery to a read-only filesystem must defer: {refused:?}"
    );
    assert!(
        deliver(&server, "bob", &message(8)).code == 250,
        "others still get mail"
    );
    assert!(
        server.log().contains("Read-only file system"),
        "{}",
        server.log()
    );

    mount.remount_read_write();
    assert_eq!(
        pop3_view(server.plain, "alice", "wonderland"),
        before,
        "nothing lost or changed"
    );
}
