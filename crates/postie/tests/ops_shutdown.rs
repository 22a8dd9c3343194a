//! SIGTERM: no new connections; open sessions get the grace period to finish (a QUIT within
//! it applies its deletions); sessions still open after it end without deleting anything.

mod common;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::ServerBuilder;

#[test]
fn sigterm_lets_sessions_finish_and_changes_nothing_unquit() {
    let mut server = ServerBuilder::new().top("shutdown_grace_secs = 2").start();
    for user in ["alice", "bob"] {
        server.add_message_named(user, "1.M1P1.test", b"Subject: one\n\nfirst\n");
        server.add_message_named(user, "2.M2P1.test", b"Subject: two\n\nsecond\n");
    }
    let alice_before = server.messages("alice");

    let mut unquit = server.tls_client();
    unquit.login("alice", "wonderland");
    assert!(unquit.command("DELE 1").starts_with("+OK"));
    assert!(unquit.command("DELE 2").starts_with("+OK"));
    let mut finishing = server.tls_client();
    finishing.login("bob", "pass word with spaces");
    assert!(finishing.command("DELE 1").starts_with("+OK"));

    let signalled = Instant::now();
    server.stop();
    server.wait_for_log("shutting down", 1);
    // The listeners close right after that line.
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(server.tls).is_ok() {
        assert!(
            Instant::now() < deadline,
            "new connections are still accepted"
        );
        std::thread::sleep(Duration::from_millis(10));
    }

    // Within the grace period a session carries on and its QUIT applies its deletion.
    assert!(finishing.retr(2).ends_with(b"second\r\n"));
    assert!(finishing.command("QUIT").starts_with("+OK"));

    // After it, the other is told and closed, deleting nothing.
    let answer = unquit.line();
    assert!(
        answer.starts_with("-ERR") && answer.contains("shutting down"),
        "{answer}"
    );
    assert!(unquit.is_closed());
    assert!(signalled.elapsed() >= Duration::from_secs(2));
    assert!(server.wait_exit(Duration::from_secs(20)), "exit status");

    assert_eq!(
        server.messages("alice"),
        alice_before,
        "alice's maildrop changed"
    );
    let bob = server.messages("bob");
    assert_eq!(
        bob.len(),
        1,
        "bob's QUIT within the grace period deleted one"
    );
    assert!(bob[0].ends_with(b"second\n"));
    let log = server.log();
    assert!(log.contains("ending the sessions still open"), "{log}");
    assert!(log.contains("stopped"), "{log}");
}
