//! `postie fetch` rules against a real `postie serve`: every action, read back with Python's
//! `mailbox`; header-only decisions proven by the server's own log (a message deleted or
//! left by a rule is never RETRieved); and copies to several destinations made exactly once
//! while runs are killed at random moments.
//! `POSTIE_FETCH_RULES_ROUNDS` sets the number of killed runs (scripts/crash-loop runs 200).

mod common;
mod fetch_support;
mod harden_support;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{Random, TestServer};
use fetch_support::{mbox_messages, python_maildir_messages, sample_messages, sorted, FetchEnv};
use harden_support::rounds;

fn account(server: &TestServer, extra: &str) -> String {
    format!(
        "[accounts.a]\nserver = \"127.0.0.1:{}\"\ntls = \"none\"\nuser = \"alice\"\n\
         password = \"wonderland\"\ndeliver_to = \"maildir:Mail\"\n{extra}",
        server.plain.port()
    )
}

fn message(headers: &str, body: &str) -> Vec<u8> {
    format!("To: alice@example.org\n{headers}\n\n{body}\n").into_bytes()
}

/// RETRs the server answered in its first `sessions` sessions.
fn retrieved(server: &TestServer, sessions: usize) -> u64 {
    server
        .wait_for_log("session ended", sessions)
        .lines()
        .filter(|line| line.contains("session ended"))
        .filter_map(|line| {
            let start = line.find(" retr=")? + " retr=".len();
            let digits: String = line[start..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse::<u64>().ok()
        })
        .sum()
}

fn on_server(server: &TestServer) -> Vec<Vec<u8>> {
    sorted(
        server
            .message_files("alice")
            .iter()
            .filter_map(|path| std::fs::read(path).ok())
            .collect(),
    )
}

const RULES: &str = r#"
[[rules]]
name = "spam"
header = "X-Spam-Flag"
is = "yes"
action = "delete"

[[rules]]
name = "rust"
header = "Subject"
matches = "^\\[rust\\] café"
action = "deliver"
to = "maildir++:Mail/.Rust"

[[rules]]
name = "files"
has_attachments = true
action = "deliver"
to = ["maildir:Files", "mbox:files.mbox"]

[[rules]]
name = "announce"
header = "List-Id"
contains = "ANNOUNCE"
action = "discard"

[[rules]]
name = "boss"
header = "From"
contains = "boss@"
action = "command"
command = "cat > \"$HOME/boss.eml\""
"#;

#[test]
fn every_rule_action_is_applied_and_deleted_or_left_mail_is_never_downloaded() {
    let server = TestServer::start();
    let spam = message("Subject: win\nX-Spam-Flag: YES", "buy");
    let rust = message("Subject: =?UTF-8?Q?[rust]_caf=C3=A9?= and more", "fast");
    let big = message(
        "Subject: video",
        &format!("{}\n", "v".repeat(70)).repeat(900),
    );
    let files = message(
        "Subject: report\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b",
        "--b\n\ntext\n--b--",
    );
    let announce = message("Subject: news\nList-Id: <announce.example.org>", "news");
    let boss = message("From: The Boss <boss@example.org>\nSubject: now", "call");
    let plain = message("Subject: hello", "hi");
    for m in [&spam, &rust, &big, &files, &announce, &boss, &plain] {
        server.add_message("alice", m);
    }
    let env = FetchEnv::new();
    env.config(&format!(
        "{RULES}\n[[accounts.a.rules]]\nname = \"big\"\nlarger_than = 50000\naction = \"leave\"\n{}",
        account(&server, "")
    ));

    let run = env.fetch(&["a"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        python_maildir_messages(&env.path("Mail")),
        std::slice::from_ref(&plain)
    );
    assert_eq!(
        python_maildir_messages(&env.path("Mail/.Rust")),
        std::slice::from_ref(&rust)
    );
    assert!(env.path("Mail/.Rust/maildirfolder").is_file());
    assert_eq!(
        python_maildir_messages(&env.path("Files")),
        std::slice::from_ref(&files)
    );
    assert_eq!(
        mbox_messages(&env.path("files.mbox")),
        std::slice::from_ref(&files)
    );
    assert_eq!(
        std::fs::read(env.path("boss.eml")).unwrap(),
        boss,
        "the command's standard input is the message, with LF line endings as an MDA's"
    );
    assert_eq!(
        on_server(&server),
        std::slice::from_ref(&big),
        "the spam deleted, the large one left, the rest fetched and deleted"
    );
    assert_eq!(
        retrieved(&server, 1),
        5,
        "RETR only for the five messages stored or discarded: {}",
        server.log()
    );

    let again = env.fetch(&["a"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(
        retrieved(&server, 2),
        5,
        "the message left is not downloaded"
    );
    assert_eq!(python_maildir_messages(&env.path("Mail")).len(), 1);
    assert_eq!(on_server(&server), [big]);
}

#[test]
fn list_shows_each_decision_and_changes_nothing() {
    let server = TestServer::start();
    let spam = message("Subject: win\nX-Spam-Flag: yes", "buy");
    let plain = message("Subject: hello", "hi");
    server.add_message("alice", &spam);
    server.add_message("alice", &plain);
    let env = FetchEnv::new();
    env.config(&format!("{RULES}\n{}", account(&server, "")));
    let run = env.fetch(&["--list", "a"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("delete unread")
            && run
                .stdout
                .contains("rule spam: X-Spam-Flag: \"yes\" is \"yes\""),
        "{}",
        run.stdout
    );
    assert_eq!(on_server(&server).len(), 2);
    assert_eq!(retrieved(&server, 1), 0);
}

/// A message as Python's `mailbox` reads it back from destination `place`: the mbox (2)
/// keeps mboxrd's quoting of From_ lines.
fn as_stored(place: usize, message: &[u8]) -> Vec<u8> {
    if place != 2 {
        return message.to_vec();
    }
    let mut out = Vec::new();
    for line in message.split_inclusive(|&b| b == b'\n') {
        let quotes = line.iter().take_while(|&&b| b == b'>').count();
        if line[quotes..].starts_with(b"From ") {
            out.push(b'>');
        }
        out.extend_from_slice(line);
    }
    out
}

const COPIES: &str = r#"
[[rules]]
action = "deliver"
to = ["maildir:A", "maildir++:Mail/.B", "mbox:c.mbox"]
"#;

#[test]
fn copies_are_made_exactly_once_in_each_destination_whatever_the_kill() {
    let rounds = rounds("POSTIE_FETCH_RULES_ROUNDS", 15) as usize;
    let server = TestServer::start();
    let messages = sample_messages(10 + 3 * rounds, 4_000);
    let mut added = 0;
    let mut add = |count: usize| {
        for message in &messages[added..added + count] {
            server.add_message("alice", message);
        }
        added += count;
        added
    };
    add(10);
    let env = FetchEnv::new();
    env.config(&format!("{COPIES}\n{}", account(&server, "")));
    let mut random = Random::new();
    let (mut killed, mut stored_by_killed_runs) = (0, 0);
    // A destination is created when its first message arrives: none before is empty.
    let read_all = |env: &FetchEnv| {
        let [a, b, c] = [env.path("A"), env.path("Mail/.B"), env.path("c.mbox")];
        [
            if a.exists() {
                python_maildir_messages(&a)
            } else {
                Vec::new()
            },
            if b.exists() {
                python_maildir_messages(&b)
            } else {
                Vec::new()
            },
            if c.exists() {
                mbox_messages(&c)
            } else {
                Vec::new()
            },
        ]
    };
    for round in 0..rounds {
        let now_added = add(3);
        let mut child = env.spawn(&[]);
        std::thread::sleep(Duration::from_millis(random.below(250)));
        if child.try_wait().unwrap().is_none() {
            killed += 1;
        }
        let _ = child.kill();
        let _ = child.wait();
        let remaining = on_server(&server);
        let held = read_all(&env);
        stored_by_killed_runs = held.iter().map(Vec::len).sum::<usize>();
        for (place, copies) in held.iter().enumerate() {
            let unique: BTreeSet<&Vec<u8>> = copies.iter().collect();
            assert_eq!(
                unique.len(),
                copies.len(),
                "round {round}: destination {place} holds a message twice"
            );
            for message in &messages[..now_added] {
                assert!(
                    unique.contains(&as_stored(place, message)) || remaining.contains(message),
                    "round {round}: a message is neither in destination {place} nor on the server"
                );
            }
        }
    }
    let last = env.fetch(&[]);
    assert_eq!(last.code, 0, "{}", last.stderr);
    for (place, copies) in read_all(&env).into_iter().enumerate() {
        let expected = sorted(
            messages[..added]
                .iter()
                .map(|m| as_stored(place, m))
                .collect(),
        );
        assert!(
            copies == expected,
            "destination {place}: not every message exactly once"
        );
    }
    assert!(on_server(&server).is_empty());
    assert!(
        python_maildir_messages(&env.path("Mail")).is_empty(),
        "deliver_to took nothing"
    );
    eprintln!(
        "{rounds} runs, {killed} killed while running, {stored_by_killed_runs} copies made before \
         the last run; {added} messages in 3 places each"
    );
    assert!(
        killed > 0,
        "no run was interrupted: the test proved nothing"
    );
}

#[test]
fn test_rules_shows_which_rule_takes_a_message_file_and_why() {
    let env = FetchEnv::new();
    // No server: --test-rules connects nowhere.
    env.config(&format!(
        "{RULES}\n[accounts.a]\nserver = \"127.0.0.1:9\"\ntls = \"none\"\nuser = \"alice\"\n\
         password = \"p\"\ndeliver_to = \"maildir:Mail\"\n\
         [[accounts.a.rules]]\nname = \"big\"\nlarger_than = 50000\naction = \"leave\"\n\
         [accounts.b]\nserver = \"127.0.0.1:9\"\ntls = \"none\"\nuser = \"bob\"\n\
         password = \"p\"\ndeliver_to = \"mbox:b.mbox\"\n"
    ));
    let eml = env.path("m.eml");
    std::fs::write(
        &eml,
        message("Subject: =?UTF-8?B?W3J1c3RdIGNhZsOp?= news", "body"),
    )
    .unwrap();
    let run = env.fetch(&["--test-rules", eml.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("account a: deliver to maildir++:")
            && run
                .stdout
                .contains("rule rust: Subject: \"[rust] café news\" matches")
            && run.stdout.contains("account b: deliver to maildir++:"),
        "{}",
        run.stdout
    );
    std::fs::write(&eml, message("Subject: film", &"f\n".repeat(30_000))).unwrap();
    let run = env.fetch(&["--test-rules", eml.to_str().unwrap(), "a"]);
    assert!(
        run.stdout
            .contains("account a: leave on the server, unread")
            && run
                .stdout
                .contains("rule big: 90042 octets, larger than 50000")
            && !run.stdout.contains("account b"),
        "{}",
        run.stdout
    );
    let run = env.fetch(&["--test-rules", env.path("none.eml").to_str().unwrap()]);
    assert_eq!(run.code, 74, "{}", run.stderr);
    assert!(run.stderr.contains("none.eml"), "{}", run.stderr);
}
