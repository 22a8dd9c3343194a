//! LMTP into the real `postie serve`, then POP3 out: pipelined recipients with per-recipient
//! replies, BDAT, the Unix socket, size limits, a 50 MB message, and the real clients python3
//! smtplib (LMTP class) and swaks.

mod common;
mod intake_support;

use std::process::Command;

use common::{crlf_form, SmtpClient};
use intake_support::{fetch_all, intake_server, require, split_trace, tricky_message};
use postie_proto::smtp::dot_stuff;

/// bob may hold 1 KiB: passwd-file quota rule, Dovecot style.
const BOB_SMALL_QUOTA: &str = "alice:{PLAIN}wonderland\nbob:{PLAIN}pass word with spaces::::::userdb_quota_rule=*:storage=1K\n";

#[test]
fn pipelined_recipients_get_one_reply_each() {
    let server = intake_server("");
    std::fs::write(server.dir.path().join("users"), BOB_SMALL_QUOTA).unwrap();
    let mut client = SmtpClient::tcp(server.lmtp.unwrap());
    assert!(
        client.greeting.text().contains("LMTP"),
        "{:?}",
        client.greeting
    );
    let body = b"Subject: pipelined\r\n\r\nhello\r\n".to_vec();
    let big_for_bob = {
        let mut b = body.clone();
        b.extend(std::iter::repeat_n(b'x', 2000));
        b.extend_from_slice(b"\r\n");
        b
    };
    // Everything in one write, as a PIPELINING client may.
    let mut wire = b"LHLO mx.example.net\r\nMAIL FROM:<sender@example.net> BODY=8BITMIME\r\n\
        RCPT TO:<alice@example.org>\r\nRCPT TO:<nobody@example.org>\r\nRCPT TO:<bob@example.org>\r\n\
        RCPT TO:<alice+list@example.org>\r\nDATA\r\n"
        .to_vec();
    wire.extend_from_slice(&dot_stuff(&big_for_bob));
    wire.extend_from_slice(b"QUIT\r\n");
    client.send(&wire);
    let lhlo = client.reply();
    for capability in [
        "PIPELINING",
        "ENHANCEDSTATUSCODES",
        "8BITMIME",
        "SMTPUTF8",
        "CHUNKING",
    ] {
        assert!(lhlo.lines.iter().any(|l| l == capability), "{lhlo:?}");
    }
    let replies: Vec<String> = (0..10)
        .map(|_| {
            let r = client.reply();
            format!("{} {}", r.code, r.text())
        })
        .collect();
    assert!(replies[0].starts_with("250 2.1.0"), "{replies:?}");
    assert!(replies[1].starts_with("250 2.1.5"), "{replies:?}");
    assert!(replies[2].starts_with("550 5.1.1"), "{replies:?}");
    assert!(replies[3].starts_with("250 2.1.5"), "{replies:?}");
    assert!(replies[4].starts_with("250 2.1.5"), "{replies:?}");
    assert!(replies[5].starts_with("354"), "{replies:?}");
    assert_eq!(replies[6], "250 2.0.0 <alice@example.org> Saved");
    assert!(
        replies[7].starts_with("552 5.2.2 <bob@example.org>"),
        "{replies:?}"
    );
    assert_eq!(replies[8], "250 2.0.0 <alice+list@example.org> Saved");
    assert!(replies[9].starts_with("221"), "{replies:?}");

    let alice = fetch_all(&server, "alice");
    assert_eq!(alice.len(), 2, "one copy per accepted recipient address");
    for (message, rcpt) in alice
        .iter()
        .zip(["alice@example.org", "alice+list@example.org"])
    {
        let (trace, rest) = split_trace(message);
        assert_eq!(rest, big_for_bob);
        assert!(
            trace.starts_with("Return-Path: <sender@example.net>\r\n"),
            "{trace}"
        );
        assert!(
            trace.contains(&format!("Delivered-To: {rcpt}\r\n")),
            "{trace}"
        );
        assert!(trace.contains("by test.example with LMTP"), "{trace}");
        assert!(trace.contains(&format!("for <{rcpt}>;")), "{trace}");
    }
    assert!(
        fetch_all(&server, "bob").is_empty(),
        "over quota: nothing written"
    );
    assert!(server.message_files("bob").is_empty());

    // A small message still fits bob's quota, and SIZE lets an over-quota one be refused early.
    let mut client = SmtpClient::tcp(server.lmtp.unwrap());
    client.command("LHLO x");
    client.command("MAIL FROM:<a@example.net> SIZE=5000");
    let early = client.command("RCPT TO:<bob@example.org>");
    assert_eq!(early.code, 552, "{early:?}");
    client.command("RSET");
    client.command("MAIL FROM:<a@example.net> SIZE=30");
    assert_eq!(client.command("RCPT TO:<bob@example.org>").code, 250);
    assert_eq!(client.command("DATA").code, 354);
    client.send(&dot_stuff(&body));
    let reply = client.reply();
    assert_eq!(reply.code, 250, "{reply:?}");
    let bob = fetch_all(&server, "bob");
    assert_eq!(split_trace(&bob[0]).1, body);
}

#[test]
fn bdat_over_the_unix_socket_is_byte_exact() {
    let server = intake_server("");
    let message = tricky_message();
    let mut client = SmtpClient::unix(&server.lmtp_socket());
    assert_eq!(client.command("LHLO local").code, 250);
    assert_eq!(
        client
            .command("MAIL FROM:<jörg@example.net> SMTPUTF8 BODY=8BITMIME")
            .code,
        250
    );
    assert_eq!(client.command("RCPT TO:<alice@example.org>").code, 250);
    let (first, second) = message.split_at(message.len() / 3);
    client.send(format!("BDAT {}\r\n", first.len()).as_bytes());
    client.send(first);
    assert_eq!(client.reply().code, 250);
    client.send(format!("BDAT {} LAST\r\n", second.len()).as_bytes());
    client.send(second);
    let reply = client.reply();
    assert_eq!(
        (reply.code, reply.text()),
        (250, "2.0.0 <alice@example.org> Saved".to_owned())
    );
    let fetched = fetch_all(&server, "alice");
    let (trace, rest) = split_trace(&fetched[0]);
    assert!(trace.contains("Return-Path: <jörg@example.net>"), "{trace}");
    assert!(trace.contains("from local (local)"), "{trace}");
    assert_eq!(
        rest,
        crlf_form(&message),
        "RETR gives the CRLF form, a final CRLF added"
    );
    // On disk, the body is exactly what was sent, without a final newline.
    let stored = std::fs::read(&server.message_files("alice")[0]).unwrap();
    assert!(stored.ends_with(&message), "stored bytes differ");
}

#[test]
fn too_big_messages_are_refused_whole() {
    let server = intake_server("max_message_size = 1000");
    let mut client = SmtpClient::tcp(server.lmtp.unwrap());
    client.command("LHLO x");
    assert_eq!(
        client.command("MAIL FROM:<a@b.example> SIZE=1001").code,
        552
    );
    assert_eq!(client.command("MAIL FROM:<a@b.example>").code, 250);
    assert_eq!(client.command("RCPT TO:<alice@example.org>").code, 250);
    assert_eq!(client.command("DATA").code, 354);
    client.send(&dot_stuff(&vec![b'y'; 5000]));
    let reply = client.reply();
    assert_eq!(reply.code, 552, "{reply:?}");
    assert!(reply.text().starts_with("5.3.4"), "{reply:?}");
    assert_eq!(client.command("NOOP").code, 250, "the session goes on");
    assert!(server.message_files("alice").is_empty());
}

#[test]
fn fifty_megabytes_arrive_whole() {
    let server = intake_server("");
    let mut message = b"Subject: big\r\n\r\n".to_vec();
    let line: Vec<u8> = (0..998u32).map(|i| b'!' + (i % 90) as u8).collect();
    while message.len() < 50_000_000 {
        message.extend_from_slice(&line);
        message.extend_from_slice(b"\r\n");
    }
    let mut client = SmtpClient::tcp(server.lmtp.unwrap());
    client.command("LHLO x");
    client.command("MAIL FROM:<a@b.example>");
    client.command("RCPT TO:<bob@example.org>");
    assert_eq!(client.command("DATA").code, 354);
    client.send(&dot_stuff(&message));
    assert_eq!(client.reply().code, 250);
    let fetched = fetch_all(&server, "bob");
    let (_, rest) = split_trace(&fetched[0]);
    assert!(rest == message, "50 MB message differs after RETR");
}

#[test]
fn python_smtplib_lmtp() {
    let python = require("python3");
    let server = intake_server("");
    let script = r#"
import smtplib, sys
host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
msg = b"Subject: from python\r\n\r\nline one\r\n.dot line\r\n\xc3\xa4 8-bit\r\n"
with smtplib.LMTP(host, port) as lmtp:
    refused = lmtp.sendmail("py@example.net", ["alice@example.org", "ghost@example.org"], msg,
                            mail_options=["BODY=8BITMIME"])
    assert list(refused) == ["ghost@example.org"], refused
with smtplib.LMTP(path) as lmtp:
    lmtp.sendmail("py@example.net", ["bob@example.org"], msg)
print("ok")
"#;
    let addr = server.lmtp.unwrap();
    let output = Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(addr.ip().to_string())
        .arg(addr.port().to_string())
        .arg(server.lmtp_socket())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let expected = b"Subject: from python\r\n\r\nline one\r\n.dot line\r\n\xc3\xa4 8-bit\r\n";
    for user in ["alice", "bob"] {
        let fetched = fetch_all(&server, user);
        assert_eq!(fetched.len(), 1);
        assert_eq!(split_trace(&fetched[0]).1, expected);
    }
}

#[test]
fn swaks_lmtp_over_tcp_and_socket() {
    let swaks = require("swaks");
    let server = intake_server("");
    let message = b"From: swaks@example.net\r\nSubject: swaks lmtp\r\n\r\n.starts with a dot\r\n\xe9t\xe9 8-bit\r\nlast\r\n";
    let data = server.dir.path().join("message.eml");
    // swaks ends the data with CRLF "." CRLF whatever the file's end, so the file leaves out the
    // message's final CRLF.
    std::fs::write(&data, &message[..message.len() - 2]).unwrap();
    let addr = server.lmtp.unwrap();
    let socket = server.lmtp_socket();
    let runs: [Vec<String>; 2] = [
        vec![
            "--server".into(),
            addr.ip().to_string(),
            "--port".into(),
            addr.port().to_string(),
            "--pipeline".into(),
        ],
        vec!["--socket".into(), socket.display().to_string()],
    ];
    for target in runs {
        let output = Command::new(&swaks)
            .args([
                "--protocol",
                "LMTP",
                "--from",
                "swaks@example.net",
                "--to",
                "alice@example.org",
            ])
            .args(&target)
            .arg("--data")
            .arg(format!("@{}", data.display()))
            .output()
            .unwrap();
        let transcript = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{transcript}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            transcript.contains("250 2.0.0 <alice@example.org> Saved"),
            "{transcript}"
        );
    }
    let fetched = fetch_all(&server, "alice");
    assert_eq!(fetched.len(), 2);
    for message_back in fetched {
        assert_eq!(split_trace(&message_back).1, message);
    }
}
