//! The POP3 shell and core together, in process (see `harness`): what a client sees of RETR,
//! TOP, QUIT with deletions, timeouts, shutdown and STLS.

mod harness;

use std::time::Duration;

use harness::Harness;
use postie_store::View;
use postie_store::{DeletePolicy, MailStore, Maildrop};

/// The message as RETR must send it: CRLF line endings, leading dots doubled, a final CRLF.
fn on_the_wire(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in message.split_inclusive(|&b| b == b'\n') {
        let text = line
            .strip_suffix(b"\n")
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .unwrap_or(line);
        if text.starts_with(b".") {
            out.push(b'.');
        }
        out.extend_from_slice(text);
        out.extend_from_slice(b"\r\n");
    }
    out
}

const MESSAGES: [&[u8]; 3] = [
    b"Subject: one\n\n.leading dot\n..two dots\nlast line without newline",
    b"Subject: two\r\nX-8bit: \xe9t\xe9\r\n\r\nbody\r\n.\r\n",
    b"Subject: three\n\nline 1\nline 2\nline 3\n",
];

#[tokio::test]
async fn retr_top_list_and_uidl_are_byte_exact() {
    let harness = Harness::new();
    for message in MESSAGES {
        harness.deliver(message).await;
    }
    let mut client = harness.connect().await;
    client.login().await;
    let sizes: Vec<usize> = MESSAGES
        .iter()
        .map(|m| {
            let wire = on_the_wire(m);
            let stuffed = wire
                .split(|&b| b == b'\n')
                .filter(|l| l.starts_with(b"."))
                .count();
            wire.len() - stuffed
        })
        .collect();
    let total: usize = sizes.iter().sum();
    assert_eq!(client.command("STAT").await, format!("+OK 3 {total}"));
    assert!(client.command("LIST").await.starts_with("+OK 3 messages"));
    let listed = String::from_utf8(client.multiline().await).unwrap();
    let expected: String = sizes
        .iter()
        .enumerate()
        .map(|(i, s)| format!("{} {s}\r\n", i + 1))
        .collect();
    assert_eq!(listed, expected);
    assert!(client.command("UIDL").await.starts_with("+OK"));
    let uidls = String::from_utf8(client.multiline().await).unwrap();
    assert_eq!(
        uidls,
        "1 0000000100000001\r\n2 0000000200000001\r\n3 0000000300000001\r\n"
    );
    for (index, message) in MESSAGES.iter().enumerate() {
        let status = client.command(&format!("RETR {}", index + 1)).await;
        assert_eq!(status, format!("+OK {} octets", sizes[index]));
        assert_eq!(
            client.multiline().await,
            on_the_wire(message),
            "message {}",
            index + 1
        );
    }
    assert!(client.command("TOP 3 1").await.starts_with("+OK"));
    assert_eq!(
        client.multiline().await,
        b"Subject: three\r\n\r\nline 1\r\n"
    );
    assert!(client.command("TOP 1 0").await.starts_with("+OK"));
    assert_eq!(client.multiline().await, b"Subject: one\r\n\r\n");
    assert!(client.command("RETR 4").await.starts_with("-ERR"));
}

#[tokio::test]
async fn quit_applies_deletions_and_seen_marks_and_new_mail_waits() {
    let harness = Harness::new();
    for message in MESSAGES {
        harness.deliver(message).await;
    }
    let before = harness.uidls().await;
    let mut client = harness.connect().await;
    client.login().await;
    harness.deliver(b"Subject: later\n\n").await;
    assert_eq!(client.command("STAT").await.split(' ').nth(1), Some("3"));
    assert!(client.command("RETR 2").await.starts_with("+OK"));
    client.multiline().await;
    assert!(client.command("DELE 1").await.starts_with("+OK"));
    assert!(client.command("RETR 1").await.starts_with("-ERR"));
    assert_eq!(client.command("STAT").await.split(' ').nth(1), Some("2"));
    assert_eq!(
        harness.uidls().await.len(),
        4,
        "nothing deleted before QUIT"
    );
    assert!(client.command("QUIT").await.starts_with("+OK"));
    assert!(client.is_closed().await);

    let drop = harness
        .store
        .open(harness::USER, false, View::Normal)
        .await
        .unwrap();
    let left: Vec<(String, bool)> = drop
        .messages()
        .iter()
        .map(|m| (m.uidl.to_string(), m.seen))
        .collect();
    assert_eq!(
        left,
        [
            (before[1].clone(), true),
            (before[2].clone(), false),
            ("0000000400000001".to_owned(), false)
        ]
    );
}

#[tokio::test]
async fn rset_and_a_dropped_connection_change_nothing() {
    let harness = Harness::new();
    harness.deliver(MESSAGES[0]).await;
    let mut client = harness.connect().await;
    client.login().await;
    assert!(client.command("RETR 1").await.starts_with("+OK"));
    client.multiline().await;
    assert!(client.command("DELE 1").await.starts_with("+OK"));
    assert!(client.command("RSET").await.starts_with("+OK"));
    assert!(client.command("DELE 1").await.starts_with("+OK"));
    drop(client);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let drop = harness
        .store
        .open(harness::USER, false, View::Normal)
        .await
        .unwrap();
    assert_eq!(drop.messages().len(), 1, "not deleted");
    assert!(!drop.messages()[0].seen, "not marked seen without QUIT");
}

#[tokio::test(start_paused = true)]
async fn idle_sessions_time_out_after_ten_minutes_and_delete_nothing() {
    let harness = Harness::new();
    harness.deliver(MESSAGES[0]).await;
    let mut client = harness.connect().await;
    client.login().await;
    assert!(client.command("DELE 1").await.starts_with("+OK"));
    let started = tokio::time::Instant::now();
    assert_eq!(
        client.line().await,
        "-ERR Idle timeout, closing the connection."
    );
    assert!(
        started.elapsed() >= Duration::from_secs(600),
        "RFC 1939: at least 10 minutes"
    );
    assert!(client.is_closed().await);
    assert_eq!(harness.uidls().await.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_login_is_a_deadline_not_a_per_read_timeout() {
    let harness = Harness::new();
    let mut client = harness.connect().await;
    let started = tokio::time::Instant::now();
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_secs(15)).await;
        if started.elapsed() >= Duration::from_secs(60) {
            break;
        }
        assert!(client.command("NOOP").await.starts_with("-ERR"));
    }
    assert_eq!(
        client.line().await,
        "-ERR Idle timeout, closing the connection."
    );
    assert!(
        started.elapsed() <= Duration::from_secs(61),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn shutdown_ends_sessions_without_deleting() {
    let harness = Harness::new();
    harness.deliver(MESSAGES[0]).await;
    let mut client = harness.connect().await;
    client.login().await;
    assert!(client.command("DELE 1").await.starts_with("+OK"));
    harness.shut_down();
    assert_eq!(
        client.line().await,
        "-ERR Server shutting down, closing the connection."
    );
    assert!(client.is_closed().await);
    assert_eq!(harness.uidls().await.len(), 1);
}

#[tokio::test]
async fn stls_upgrades_in_memory_and_forgets_what_came_before() {
    let harness = Harness::with(|config| config.allow_plaintext_auth = false);
    // Not loopback: USER is refused until TLS is on.
    let mut client = harness
        .connect_from("192.0.2.7:4000".parse().unwrap())
        .await;
    assert!(client.command("USER alice").await.starts_with("-ERR"));
    client.stls().await;
    assert!(client.command("CAPA").await.starts_with("+OK"));
    let capa = String::from_utf8(client.multiline().await).unwrap();
    assert!(!capa.contains("STLS"), "{capa}");
    assert!(capa.contains("USER"), "{capa}");
    client.login().await;
    assert!(client.command("QUIT").await.starts_with("+OK"));
}

#[tokio::test]
async fn pipelined_commands_are_answered_in_order() {
    let harness = Harness::new();
    harness.deliver(MESSAGES[2]).await;
    let mut client = harness.connect().await;
    client
        .send(b"USER alice\r\nPASS wonderland\r\nSTAT\r\nRETR 1\r\nNOOP\r\nQUIT\r\n")
        .await;
    assert!(client.line().await.starts_with("+OK"));
    assert!(client.line().await.starts_with("+OK Logged in"));
    assert!(client.line().await.starts_with("+OK 1 "));
    assert!(client.line().await.starts_with("+OK"));
    assert_eq!(client.multiline().await, on_the_wire(MESSAGES[2]));
    assert_eq!(client.line().await, "+OK");
    assert!(client.line().await.starts_with("+OK Logging out"));
}

#[tokio::test]
async fn deleted_messages_follow_the_configured_policy() {
    let harness = Harness::with(|config| config.deleted = DeletePolicy::Hide);
    harness.deliver(MESSAGES[0]).await;
    let mut client = harness.connect().await;
    client.login().await;
    assert!(client.command("DELE 1").await.starts_with("+OK"));
    assert!(client.command("QUIT").await.starts_with("+OK"));
    assert!(harness.uidls().await.is_empty());
    assert_eq!(
        harness.store.usage(harness::USER).await.unwrap().messages,
        1,
        "hidden, kept"
    );
}

#[tokio::test]
async fn a_second_session_gets_in_use_with_lock_session() {
    let harness = Harness::with(|config| config.lock_session = true);
    let mut first = harness.connect().await;
    first.login().await;
    let mut second = harness.connect().await;
    assert!(second.command("USER alice").await.starts_with("+OK"));
    assert!(second
        .command("PASS wonderland")
        .await
        .starts_with("-ERR [IN-USE]"));
    assert!(first.command("QUIT").await.starts_with("+OK"));
    let mut third = harness.connect().await;
    third.login().await;
}
