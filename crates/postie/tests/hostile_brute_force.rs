//! Password guessing against the real server: failures slow down the address that makes them
//! and the user they aim at, the delay holds right and wrong answers alike (so giving up early
//! and reconnecting gains nothing), and the real user is never locked out: from another
//! address they log in after a bounded wait. LOGIN-DELAY counts only real logins.

mod common;
mod harden_support;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use common::{ServerBuilder, TestServer};
use harden_support::{client_from, connect_from, pop3_view, read_for};

fn server(pop3: &str) -> TestServer {
    let server = ServerBuilder::new()
        .pop3(&format!("max_connections_per_ip = 200\n{pop3}"))
        .failure_delay_secs(1)
        .start();
    server.add_message_named("alice", "1.M1P1.host", b"Subject: keep\n\nprecious\n");
    server
}

/// The time the server takes to answer PASS.
fn timed_pass(client: &mut common::Client, password: &str) -> (String, Duration) {
    let started = Instant::now();
    let answer = client.command(&format!("PASS {password}"));
    (answer, started.elapsed())
}

#[test]
fn an_address_that_keeps_failing_waits_longer_each_time_even_with_the_right_password() {
    let server = server("");
    let before = pop3_view(server.plain, "alice", "wonderland");
    let attacker = Ipv4Addr::new(127, 0, 0, 2);
    let mut client = client_from(attacker, server.plain);
    let mut waits = Vec::new();
    for _ in 0..3 {
        assert!(client.command("USER alice").starts_with("+OK"));
        let (answer, took) = timed_pass(&mut client, "guess");
        assert!(answer.starts_with("-ERR [AUTH]"), "{answer}");
        waits.push(took);
    }
    assert_eq!(
        client.line(),
        "-ERR Too many failed logins, closing the connection."
    );
    assert!(client.is_closed(), "three failures end the connection");
    eprintln!("waits of the first three failures: {waits:?}");
    assert!(waits[1] >= Duration::from_secs(1), "{waits:?}");
    assert!(waits[2] >= Duration::from_secs(2), "{waits:?}");

    // Giving up on a slow answer and reconnecting gains nothing: the right password is held
    // as long as a wrong one, so an early answer gives nothing away.
    let mut impatient = connect_from(attacker, server.plain).unwrap();
    read_for(&mut impatient, Duration::from_millis(300));
    use std::io::Write;
    impatient
        .write_all(b"USER alice\r\nPASS wonderland\r\n")
        .unwrap();
    let early = read_for(&mut impatient, Duration::from_millis(1500));
    let early = String::from_utf8_lossy(&early).into_owned();
    // At most USER's answer (the server may hold it to send with PASS's).
    assert!(
        early.lines().count() <= 1,
        "PASS answered within 1.5 s: {early:?}"
    );
    drop(impatient);
    let mut patient = client_from(attacker, server.plain);
    assert!(patient.command("USER alice").starts_with("+OK"));
    let (answer, took) = timed_pass(&mut patient, "wonderland");
    assert!(answer.starts_with("+OK"), "{answer}");
    assert!(
        took >= Duration::from_secs(4),
        "the right password was answered after {took:?}"
    );
    assert!(patient.command("QUIT").starts_with("+OK"));

    // Another address is not slowed down by this one's failures.
    let mut other = client_from(Ipv4Addr::new(127, 0, 0, 3), server.plain);
    assert!(other.command("USER bob").starts_with("+OK"));
    let (answer, took) = timed_pass(&mut other, "pass word with spaces");
    assert!(answer.starts_with("+OK"), "{answer}");
    assert!(
        took < Duration::from_secs(1),
        "an innocent address waited {took:?}"
    );
    assert_eq!(pop3_view(server.plain, "alice", "wonderland"), before);
}

#[test]
fn guesses_from_many_addresses_slow_the_user_but_never_lock_the_owner_out() {
    let server = server("");
    let before = pop3_view(server.plain, "alice", "wonderland");
    // Forty addresses guess alice's password at once, once each, through USER/PASS and
    // SASL PLAIN alike.
    let guesses: Vec<_> = (0..40u8)
        .map(|i| {
            let plain = server.plain;
            std::thread::spawn(move || {
                let mut client = client_from(Ipv4Addr::new(127, 0, 1, 1 + i), plain);
                let answer = if i % 2 == 0 {
                    client.command("USER alice");
                    client.command("PASS guess")
                } else {
                    // "\0alice\0guess"
                    client.command("AUTH PLAIN AGFsaWNlAGd1ZXNz")
                };
                assert!(answer.starts_with("-ERR"), "{answer}");
            })
        })
        .collect();
    for guess in guesses {
        guess.join().unwrap();
    }
    // The owner, from an address that never failed, waits: bounded, not locked out.
    let mut owner = client_from(Ipv4Addr::new(127, 0, 2, 1), server.plain);
    assert!(owner.command("USER alice").starts_with("+OK"));
    let (answer, owner_took) = timed_pass(&mut owner, "wonderland");
    assert!(
        answer.starts_with("+OK"),
        "the owner is locked out: {answer}"
    );
    assert!(
        owner_took >= Duration::from_secs(5),
        "the user under attack was not slowed down: {owner_took:?}"
    );
    assert!(
        owner_took <= Duration::from_secs(30),
        "the owner waited {owner_took:?}"
    );
    assert!(owner.command("QUIT").starts_with("+OK"));
    // Another user from the same address is not slowed down.
    let mut bob = client_from(Ipv4Addr::new(127, 0, 2, 1), server.plain);
    assert!(bob.command("USER bob").starts_with("+OK"));
    let (answer, bob_took) = timed_pass(&mut bob, "pass word with spaces");
    assert!(answer.starts_with("+OK"), "{answer}");
    assert!(
        bob_took * 5 < owner_took,
        "bob waited {bob_took:?}, alice {owner_took:?}"
    );
    eprintln!("alice under attack waited {owner_took:?}, bob {bob_took:?}");
    assert!(
        server.log().contains("authentication failed"),
        "failures are logged"
    );
    assert_eq!(pop3_view(server.plain, "alice", "wonderland"), before);
}

#[test]
fn login_delay_is_enforced_and_only_real_logins_count() {
    let server = server("login_delay_secs = 900");
    // Wrong passwords do not use up the user's LOGIN-DELAY: an attacker cannot keep the
    // owner out with it.
    let mut attacker = client_from(Ipv4Addr::new(127, 0, 3, 1), server.plain);
    attacker.command("USER alice");
    assert!(attacker.command("PASS guess").starts_with("-ERR [AUTH]"));
    let mut owner = server.plain_client();
    let capa = owner.command("CAPA");
    assert!(capa.starts_with("+OK"), "{capa}");
    assert!(String::from_utf8(owner.body())
        .unwrap()
        .contains("LOGIN-DELAY 900\r\n"));
    owner.login("alice", "wonderland");
    assert!(owner.command("QUIT").starts_with("+OK"));
    // The second real login within the delay is refused with the code that says why.
    let mut again = server.plain_client();
    again.command("USER alice");
    let answer = again.command("PASS wonderland");
    assert!(answer.starts_with("-ERR [LOGIN-DELAY]"), "{answer}");
}
