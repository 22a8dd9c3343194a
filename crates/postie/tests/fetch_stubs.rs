//! Headers first, bodies later, against a real `postie serve`: a message over max_size is
//! stored as a stub with its marker field; `postie fetch --get NAME UIDL` and a raised
//! max_size replace each stub, wherever the mail program moved it, with the whole message,
//! exactly once, also when runs are killed at random moments. Read back with Python's
//! `mailbox`.

mod common;
mod fetch_support;
mod harden_support;

use std::time::Duration;

use common::{Random, TestServer};
use fetch_support::{python_maildir_messages, sample_messages, sorted, FetchEnv};
use harden_support::rounds;

fn account(server: &TestServer, extra: &str) -> String {
    format!(
        "[accounts.a]\nserver = \"127.0.0.1:{}\"\ntls = \"none\"\nuser = \"alice\"\n\
         password = \"wonderland\"\n{extra}\n",
        server.plain.port()
    )
}

/// The header of `message` as a stub holds it, after the marker line.
fn header_of(message: &[u8]) -> Vec<u8> {
    let end = message
        .windows(2)
        .position(|w| w == b"\n\n")
        .expect("a header");
    message[..end + 2].to_vec()
}

/// The stubs in a Maildir: (file, UIDL from the marker).
fn stubs(maildir: &std::path::Path) -> Vec<(std::path::PathBuf, String)> {
    let mut out = Vec::new();
    for sub in ["new", "cur"] {
        for entry in std::fs::read_dir(maildir.join(sub)).unwrap() {
            let path = entry.unwrap().path();
            let content = std::fs::read(&path).unwrap();
            if let Some(rest) = content.strip_prefix(b"X-Postie-Stub: account=a; uidl=") {
                let end = rest.iter().position(|&b| b == b';').unwrap();
                out.push((path, String::from_utf8(rest[..end].to_vec()).unwrap()));
            }
        }
    }
    out
}

#[test]
fn a_stub_is_replaced_in_place_by_get_and_by_a_raised_max_size_exactly_once() {
    let server = TestServer::start();
    let messages = sample_messages(3, 20_000);
    let small = b"Subject: small\n\nhi\n".to_vec();
    server.add_message("alice", &small);
    for m in &messages[..2] {
        server.add_message("alice", m);
    }
    let env = FetchEnv::new();
    let maildir = env.path("Mail");
    env.config(&account(
        &server,
        "deliver_to = \"maildir:Mail\"\nmax_size = 10000",
    ));
    let run = env.fetch(&[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let found = stubs(&maildir);
    assert_eq!(found.len(), 2, "two stubs");
    for (path, _) in &found {
        let content = std::fs::read(path).unwrap();
        let after_marker = &content[content.iter().position(|&b| b == b'\n').unwrap() + 1..];
        assert!(
            messages[..2]
                .iter()
                .any(|m| after_marker == header_of(m).as_slice()),
            "a stub is the marker and the header"
        );
    }

    // The mail program marks the first stub seen: it moves to cur/ with flags.
    let (stub_path, uidl) = found
        .iter()
        .find(|(p, _)| {
            std::fs::read(p)
                .unwrap()
                .windows(11)
                .any(|w| w == b"message 0\nM")
        })
        .cloned()
        .expect("the stub of message 0");
    let moved = maildir.join("cur").join(format!(
        "{}:2,S",
        stub_path.file_name().unwrap().to_str().unwrap()
    ));
    std::fs::rename(&stub_path, &moved).unwrap();

    let get = env.fetch(&["--get", "a", &uidl]);
    assert_eq!(get.code, 0, "{}", get.stderr);
    assert_eq!(
        std::fs::read(&moved).unwrap(),
        messages[0],
        "the whole message in the stub's place, flags kept"
    );
    let again = env.fetch(&["--get", "a", &uidl]);
    assert_ne!(again.code, 0);
    assert!(again.stderr.contains("not a stub"), "{}", again.stderr);
    let unknown = env.fetch(&["--get", "a", "nosuchuidl"]);
    assert!(
        unknown.stderr.contains("no such message"),
        "{}",
        unknown.stderr
    );

    // max_size raised: the other stub is completed, then both leave the server.
    env.config(&account(
        &server,
        "deliver_to = \"maildir:Mail\"\nmax_size = 1000000",
    ));
    for _ in 0..2 {
        let run = env.fetch(&[]);
        assert_eq!(run.code, 0, "{}", run.stderr);
    }
    assert!(stubs(&maildir).is_empty());
    assert_eq!(
        python_maildir_messages(&maildir),
        sorted(vec![small, messages[0].clone(), messages[1].clone()]),
        "each message once, whole"
    );
    assert!(server.message_files("alice").is_empty());
}

#[test]
fn get_refuses_a_destination_whose_stubs_cannot_be_replaced() {
    let server = TestServer::start();
    let env = FetchEnv::new();
    env.config(&account(
        &server,
        "deliver_to = \"mbox:inbox.mbox\"\nmax_size = 10000",
    ));
    let run = env.fetch(&["--get", "a", "u1"]);
    assert_eq!(run.code, 78, "{}", run.stderr);
    assert!(
        run.stderr.contains("only stubs in a Maildir"),
        "{}",
        run.stderr
    );
}

#[test]
fn stubs_are_completed_exactly_once_whatever_the_kill() {
    let rounds = rounds("POSTIE_FETCH_STUB_ROUNDS", 10) as usize;
    let server = TestServer::start();
    let messages = sample_messages(12, 30_000);
    for m in &messages {
        server.add_message("alice", m);
    }
    let env = FetchEnv::new();
    let maildir = env.path("Mail");
    env.config(&account(
        &server,
        "deliver_to = \"maildir:Mail\"\nkeep = true\nmax_size = 10000",
    ));
    let first = env.fetch(&["--reset-state"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(stubs(&maildir).len(), 12);
    env.config(&account(
        &server,
        "deliver_to = \"maildir:Mail\"\nkeep = true",
    ));
    let mut random = Random::new();
    let mut killed = 0;
    for round in 0..rounds {
        let mut child = env.spawn(&[]);
        // Early rounds are cut soon after the start, while every stub is still to do; later
        // ones anywhere up to 150 ms. A fast machine completes all stubs within one long
        // window, and then no later round has anything left to cut.
        let window = 20 + 130 * round as u64 / rounds as u64;
        std::thread::sleep(Duration::from_millis(random.below(window)));
        if child.try_wait().unwrap().is_none() {
            killed += 1;
        }
        let _ = child.kill();
        let _ = child.wait();
        let held = python_maildir_messages(&maildir);
        assert_eq!(
            held.len(),
            12,
            "round {round}: one file per message, stub or whole"
        );
    }
    let last = env.fetch(&[]);
    assert_eq!(last.code, 0, "{}", last.stderr);
    assert!(stubs(&maildir).is_empty());
    assert_eq!(python_maildir_messages(&maildir), sorted(messages));
    eprintln!("{rounds} runs, {killed} killed while running; 12 stubs completed once each");
    assert!(
        killed > 0,
        "no run was interrupted: the test proved nothing"
    );
}

#[test]
fn a_stub_a_rule_filed_in_a_folder_is_completed_there() {
    let server = TestServer::start();
    let message = &sample_messages(1, 20_000)[0];
    server.add_message("alice", message);
    let env = FetchEnv::new();
    let rules = "[[rules]]\nheader = \"Subject\"\ncontains = \"message\"\naction = \"deliver\"\n\
                 to = \"maildir++:Mail/.Lists\"\n";
    env.config(&format!(
        "{rules}{}",
        account(&server, "deliver_to = \"maildir:Mail\"\nmax_size = 10000")
    ));
    let run = env.fetch(&[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(stubs(&env.path("Mail/.Lists")).len(), 1);
    env.config(&format!(
        "{rules}{}",
        account(&server, "deliver_to = \"maildir:Mail\"")
    ));
    for _ in 0..2 {
        let run = env.fetch(&[]);
        assert_eq!(run.code, 0, "{}", run.stderr);
    }
    assert_eq!(
        python_maildir_messages(&env.path("Mail/.Lists")),
        std::slice::from_ref(message)
    );
    assert!(python_maildir_messages(&env.path("Mail")).is_empty());
    assert!(server.message_files("alice").is_empty());
}
