//! `postie deliver` and the durability of every delivery: sysexits codes, quotas, I/O errors,
//! processes killed mid-delivery, and deliveries racing POP3 sessions on one maildrop.

mod common;
mod intake_support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{crlf_form, lmtp_deliver, Random, SmtpClient, BIN};
use intake_support::{fetch_all, intake_server, split_trace};
use postie_proto::smtp::dot_stuff;

fn deliver(config: &Path, user: &str, sender: Option<&str>, message: &[u8]) -> (i32, String) {
    let mut command = Command::new(BIN);
    command
        .arg("deliver")
        .arg("--config")
        .arg(config)
        .args(["-d", user]);
    if let Some(sender) = sender {
        command.args(["-f", sender]);
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // deliver may refuse (unknown user, no configuration) before it reads its input.
    let _ = child.stdin.take().unwrap().write_all(message);
    let output = child.wait_with_output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

const SMALL_BOB: &str = "alice:{PLAIN}wonderland\nbob:{PLAIN}pass word with spaces::::::userdb_quota_rule=*:storage=1K\n";

#[test]
fn deliver_exit_codes_follow_sysexits() {
    let server = intake_server("");
    std::fs::write(server.dir.path().join("users"), SMALL_BOB).unwrap();
    let config = server.config_path();

    // An mbox envelope line on top is not part of the message; it names the sender.
    let message = b"From: someone@example.net\nSubject: local\n\nbody line\n.dot\n\xe9 8-bit";
    let mut with_envelope = b"From someone@example.net  Fri Nov 27 09:00:00 2026\n".to_vec();
    with_envelope.extend_from_slice(message);
    let (code, stderr) = deliver(&config, "alice", None, &with_envelope);
    assert_eq!(code, 0, "{stderr}");
    let (code, stderr) = deliver(
        &config,
        "alice+tag@example.org",
        Some("other@example.net"),
        message,
    );
    assert_eq!(code, 0, "{stderr}");
    let fetched = fetch_all(&server, "alice");
    assert_eq!(fetched.len(), 2);
    let (trace, rest) = split_trace(&fetched[0]);
    assert_eq!(
        trace,
        "Return-Path: <someone@example.net>\r\nDelivered-To: alice\r\n"
    );
    assert_eq!(rest, crlf_form(message));
    let (trace, rest) = split_trace(&fetched[1]);
    assert!(
        trace.starts_with(
            "Return-Path: <other@example.net>\r\nDelivered-To: alice+tag@example.org\r\n"
        ),
        "{trace}"
    );
    assert_eq!(rest, crlf_form(message));
    // On disk the added headers take the message's own LF line endings. File names do not
    // sort in delivery order (their microseconds are not zero-padded): pick by sender.
    let stored = server
        .message_files("alice")
        .iter()
        .map(|path| std::fs::read(path).unwrap())
        .find(|bytes| bytes.starts_with(b"Return-Path: <someone@"))
        .expect("the first delivery is stored");
    assert!(
        stored
            .starts_with(b"Return-Path: <someone@example.net>\nDelivered-To: alice\nFrom: someone"),
        "{}",
        String::from_utf8_lossy(&stored)
    );

    let (code, stderr) = deliver(&config, "ghost", None, message);
    assert_eq!(code, 67, "{stderr}");

    let big = vec![b'x'; 2000];
    let (code, stderr) = deliver(&config, "bob", None, &big);
    assert_eq!(code, 73, "{stderr}");
    assert!(stderr.contains("quota"), "{stderr}");
    assert!(
        server.message_files("bob").is_empty(),
        "over quota: nothing written"
    );

    let tempfail = server.dir.path().join("tempfail.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &tempfail,
        text.replace("[mail]\n", "[mail]\nquota_full_tempfail = true\n"),
    )
    .unwrap();
    let (code, stderr) = deliver(&tempfail, "bob", None, &big);
    assert_eq!(code, 75, "{stderr}");

    let (code, stderr) = deliver(&server.dir.path().join("missing.toml"), "bob", None, b"x\n");
    assert_eq!(code, 75, "a broken setup must not bounce mail: {stderr}");
}

#[test]
fn io_errors_are_temporary_and_leave_nothing() {
    let server = intake_server("");
    // bob's tmp/ is a plain file: every write into it fails, as on a broken or full disk.
    let maildir = server.maildir("bob");
    std::fs::create_dir_all(maildir.join("new")).unwrap();
    std::fs::create_dir_all(maildir.join("cur")).unwrap();
    std::fs::write(maildir.join("tmp"), b"not a directory").unwrap();

    let (code, stderr) = deliver(&server.config_path(), "bob", None, b"Subject: x\n\nbody\n");
    assert_eq!(code, 75, "{stderr}");

    let mut client = SmtpClient::tcp(server.lmtp.unwrap());
    client.command("LHLO x");
    client.command("MAIL FROM:<a@example.net>");
    assert_eq!(client.command("RCPT TO:<bob@example.org>").code, 250);
    assert_eq!(client.command("RCPT TO:<alice@example.org>").code, 250);
    assert_eq!(client.command("DATA").code, 354);
    client.send(&dot_stuff(b"Subject: x\r\n\r\nbody\r\n"));
    let bob = client.reply();
    assert_eq!(bob.code, 451, "{bob:?}");
    assert!(bob.text().starts_with("4.3.0 <bob@example.org>"), "{bob:?}");
    assert_eq!(client.reply().code, 250, "alice still gets the message");
    assert_eq!(client.command("NOOP").code, 250, "the server goes on");
    assert!(server.message_files("bob").is_empty());
    assert_eq!(fetch_all(&server, "alice").len(), 1);

    std::fs::remove_file(maildir.join("tmp")).unwrap();
    let (code, stderr) = deliver(&server.config_path(), "bob", None, b"Subject: x\n\nbody\n");
    assert_eq!(code, 0, "{stderr}");
}

/// Every message file visible in new/ or cur/ must be whole: its size as named, and content
/// that ends with the marker the test put last.
fn assert_no_partial_message(maildir: &Path, marker: &[u8]) -> usize {
    let mut count = 0;
    for sub in ["new", "cur"] {
        let Ok(entries) = std::fs::read_dir(maildir.join(sub)) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let content = std::fs::read(&path).unwrap();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let size: usize = name
                .split(',')
                .find_map(|f| f.strip_prefix("S="))
                .unwrap()
                .split(':')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(content.len(), size, "{name} is not whole");
            assert!(content.ends_with(marker), "{name} is cut short");
            count += 1;
        }
    }
    count
}

#[test]
fn killed_deliveries_never_leave_a_partial_message() {
    let server = intake_server("");
    let mut random = Random::new();
    let mut message = b"Subject: crash test\n\n".to_vec();
    while message.len() < 2_000_000 {
        message.extend_from_slice(b"0123456789 the quick brown fox jumps over the lazy dog\n");
    }
    message.extend_from_slice(b"END OF MESSAGE\n");
    let mut completed = 0;
    for _ in 0..25 {
        let mut child = Command::new(BIN)
            .arg("deliver")
            .arg("--config")
            .arg(server.config_path())
            .args(["-d", "alice"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let cut = random.below(message.len() as u64 + 1) as usize;
        let whole = random.below(3) == 0;
        let end = if whole { message.len() } else { cut };
        let _ = stdin.write_all(&message[..end]);
        if whole {
            drop(stdin);
        }
        // Killed while reading, writing, syncing or renaming, or after it finished.
        std::thread::sleep(Duration::from_micros(random.below(40_000)));
        let _ = child.kill();
        let status = child.wait().unwrap();
        completed += usize::from(status.success());
        assert_no_partial_message(&server.maildir("alice"), b"END OF MESSAGE\n");
    }
    let visible = assert_no_partial_message(&server.maildir("alice"), b"END OF MESSAGE\n");
    println!("{completed} of 25 deliveries completed before the kill, {visible} visible");
    assert!(
        visible >= completed,
        "a delivery that reported success was lost"
    );

    // The server itself killed in the middle of an LMTP DATA: nothing shows.
    let mut server = server;
    let mut client = SmtpClient::tcp(server.lmtp.unwrap());
    client.command("LHLO x");
    client.command("MAIL FROM:<a@example.net>");
    client.command("RCPT TO:<bob@example.org>");
    assert_eq!(client.command("DATA").code, 354);
    client.send(&message[..message.len() / 2]);
    std::thread::sleep(Duration::from_millis(100));
    server.kill();
    assert_eq!(
        assert_no_partial_message(&server.maildir("bob"), b"END OF MESSAGE\n"),
        0
    );
}

#[test]
fn deliveries_race_pop3_sessions_without_loss() {
    let server = intake_server("");
    let lmtp = server.lmtp.unwrap();

    // An open session keeps its snapshot; delivery does not wait for it.
    let mut session = server.plain_client();
    session.login("alice", "wonderland");
    assert_eq!(session.command("STAT"), "+OK 0 0");
    let started = Instant::now();
    let (code, stderr) = deliver(
        &server.config_path(),
        "alice",
        None,
        b"Subject: during\n\nx\nEND\n",
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "delivery was blocked"
    );
    assert_eq!(
        session.command("STAT"),
        "+OK 0 0",
        "the open session does not see it"
    );
    let mut next = server.plain_client();
    next.login("alice", "wonderland");
    assert!(
        next.command("STAT").starts_with("+OK 1 "),
        "the next session does"
    );
    assert!(next.command("QUIT").starts_with("+OK"));
    assert!(session.command("QUIT").starts_with("+OK"));

    let senders: Vec<_> = (0..4)
        .map(|thread| {
            std::thread::spawn(move || {
                for n in 0..10 {
                    let body = format!(
                        "Subject: t{thread}-{n}\r\n\r\n{}END\r\n",
                        "line\r\n".repeat(500)
                    );
                    let reply = lmtp_deliver(lmtp, "alice@example.org", body.as_bytes());
                    assert_eq!(reply.code, 250, "{reply:?}");
                }
            })
        })
        .collect();
    let local = {
        let config = server.config_path();
        std::thread::spawn(move || {
            for n in 0..5 {
                let body = format!("Subject: local-{n}\n\nEND\n");
                let (code, stderr) = deliver(&config, "alice", None, body.as_bytes());
                assert_eq!(code, 0, "{stderr}");
            }
        })
    };
    // Meanwhile, sessions come and go and must always see whole messages.
    let mut sessions = 0;
    while senders.iter().any(|s| !s.is_finished()) || !local.is_finished() {
        for message in fetch_all(&server, "alice") {
            assert!(
                message.ends_with(b"END\r\n"),
                "a session saw a partial message"
            );
        }
        sessions += 1;
    }
    for sender in senders {
        sender.join().unwrap();
    }
    local.join().unwrap();
    let all = fetch_all(&server, "alice");
    assert_eq!(
        all.len(),
        1 + 40 + 5,
        "after {sessions} concurrent sessions"
    );
    let mut subjects: Vec<String> = all
        .iter()
        .map(|m| {
            let text = String::from_utf8_lossy(m);
            text.lines()
                .find_map(|l| l.strip_prefix("Subject: "))
                .unwrap()
                .to_owned()
        })
        .collect();
    subjects.sort();
    subjects.dedup();
    assert_eq!(subjects.len(), 46, "every message once");
}
