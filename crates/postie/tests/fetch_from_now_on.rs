//! `postie fetch --from-now-on NAME` against a real `postie serve`: the mail on the server
//! now is recorded as fetched without a single RETR (by the server's session log) and left
//! there; only mail that arrives afterwards is fetched, read back with Python's `mailbox`.

mod common;
mod fetch_support;

use common::TestServer;
use fetch_support::{python_maildir_messages, FetchEnv};

#[test]
fn only_mail_arriving_afterwards_is_fetched_and_the_old_mail_stays() {
    let server = TestServer::start();
    let old: Vec<Vec<u8>> = (0..3)
        .map(|i| format!("Subject: old {i}\n\nbody\n").into_bytes())
        .collect();
    for m in &old {
        server.add_message("alice", m);
    }
    let env = FetchEnv::new();
    env.config(&format!(
        "[accounts.a]\nserver = \"127.0.0.1:{}\"\ntls = \"none\"\nuser = \"alice\"\n\
         password = \"wonderland\"\ndeliver_to = \"maildir:Mail\"\nmax_size = 100000\n",
        server.plain.port()
    ));
    let start = env.fetch(&["--from-now-on", "a"]);
    assert_eq!(start.code, 0, "{}", start.stderr);
    assert!(
        start
            .stderr
            .contains("3 messages on the server recorded as fetched"),
        "{}",
        start.stderr
    );
    let log = server.wait_for_log("session ended", 1);
    assert!(
        log.lines()
            .filter(|l| l.contains("session ended"))
            .all(|l| l.contains(" retr=0 ") && l.contains(" top=0 ")),
        "nothing downloaded: {log}"
    );

    let new = b"Subject: new\n\nfresh\n".to_vec();
    server.add_message("alice", &new);
    for _ in 0..2 {
        let run = env.fetch(&["a"]);
        assert_eq!(run.code, 0, "{}", run.stderr);
    }
    assert_eq!(python_maildir_messages(&env.path("Mail")), [new]);
    let mut remaining: Vec<Vec<u8>> = server
        .message_files("alice")
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    remaining.sort();
    assert_eq!(
        remaining, old,
        "the old mail stays on the server, untouched"
    );
    let again = env.fetch(&["--from-now-on", "a"]);
    assert!(
        again.stderr.contains("0 messages on the server recorded"),
        "{}",
        again.stderr
    );
}
