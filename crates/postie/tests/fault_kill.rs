//! The server killed with SIGKILL at random moments while POP3 sessions apply their deletions
//! at QUIT and LMTP deliveries run, many times over. After each kill the server starts
//! cleanly and every maildrop is consistent: no acknowledged message lost, none duplicated,
//! no partial message visible, every UIDL unchanged, only deleted messages gone.
//! `POSTIE_KILL_ROUNDS` sets the number of kills (scripts/crash-loop runs 200).

mod common;
mod harden_support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Random, Reply, ServerBuilder, SmtpClient, TestServer};
use harden_support::rounds;

/// LMTP connections delivering at once in every round.
const DELIVERY_CONNECTIONS: usize = 4;

/// A message that names itself: its marker appears once, its body is long enough that a torn
/// write would show.
fn message(marker: &str) -> Vec<u8> {
    let mut m = format!("Subject: {marker}\r\nMessage-Id: <{marker}@test>\r\n\r\n").into_bytes();
    for line in 0..60 {
        m.extend_from_slice(
            format!("{marker} line {line} of a message that must arrive whole\r\n").as_bytes(),
        );
    }
    m.extend_from_slice(format!("end of {marker}\r\n").as_bytes());
    m
}

/// The marker of a retrieved message, checking it arrived whole.
fn marker_of(content: &[u8]) -> String {
    let text = String::from_utf8_lossy(content);
    let marker = text
        .lines()
        .find_map(|l| l.strip_prefix("Subject: "))
        .unwrap_or_else(|| panic!("a message without its Subject: {text:?}"))
        .to_owned();
    let original = message(&marker);
    assert!(
        content.ends_with(&original),
        "partial or altered message {marker}: {text:?}"
    );
    marker
}

/// Delivers messages over LMTP one after another until told to stop, pushing the marker of
/// each one the server acknowledged with 250. Ends when told to stop or when the connection
/// dies (the kill); a refusal is an error, since nothing here should be refused.
fn deliver_until_stopped(
    lmtp: SocketAddr,
    prefix: String,
    stop: Arc<AtomicBool>,
    acknowledged: Arc<Mutex<Vec<String>>>,
) -> Result<(), Reply> {
    let Some(mut client) = TcpStream::connect(lmtp)
        .ok()
        .and_then(SmtpClient::try_over_tcp)
    else {
        return Ok(());
    };
    client.send(b"LHLO test\r\n");
    match client.try_reply() {
        Some(reply) if reply.code != 250 => return Err(reply),
        Some(_) => {}
        None => return Ok(()),
    }
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        let marker = format!("{prefix}-{n}");
        n += 1;
        match client.try_deliver("alice@example.org", &message(&marker)) {
            Some(reply) if reply.code == 250 => acknowledged.lock().unwrap().push(marker),
            Some(refusal) => return Err(refusal),
            None => return Ok(()),
        }
    }
    Ok(())
}

/// UIDL to marker, every message checked whole and listed once.
fn view(server: &TestServer) -> BTreeMap<String, String> {
    let mut markers = BTreeSet::new();
    harden_support::pop3_view(server.plain, "alice", "wonderland")
        .into_iter()
        .map(|(uidl, content)| {
            let marker = marker_of(&content);
            assert!(
                markers.insert(marker.clone()),
                "message {marker} is there twice"
            );
            (uidl, marker)
        })
        .collect()
}

#[test]
fn kill_9_during_quit_and_deliveries_loses_and_duplicates_nothing() {
    let rounds = rounds("POSTIE_KILL_ROUNDS", 25);
    let mut server = ServerBuilder::new().lmtp("").start();
    for i in 0..150 {
        server.add_message_named(
            "alice",
            &format!("1700000000.M{i}P1.host"),
            &message(&format!("seed-{i}")),
        );
    }
    let mut random = Random::new();
    let mut known = view(&server);
    let (mut killed_in_quit, mut killed_in_delivery, mut total_acknowledged) = (0, 0, 0);
    for round in 0..rounds {
        // A session marks some messages deleted and sends QUIT, deliveries run meanwhile,
        // and the server dies at a random moment.
        let stop = Arc::new(AtomicBool::new(false));
        let acknowledged = Arc::new(Mutex::new(Vec::new()));
        let mut client = server.plain_client();
        client.login("alice", "wonderland");
        // After the login, so that what they deliver is not in the session's snapshot. Several
        // connections at once, so that deliveries share their directory syncs (group commit)
        // when the kill lands.
        let deliveries: Vec<_> = (0..DELIVERY_CONNECTIONS)
            .map(|connection| {
                let (lmtp, stop, acknowledged) = (
                    server.lmtp.unwrap(),
                    Arc::clone(&stop),
                    Arc::clone(&acknowledged),
                );
                std::thread::spawn(move || {
                    let prefix = format!("r{round}-c{connection}");
                    deliver_until_stopped(lmtp, prefix, stop, acknowledged)
                })
            })
            .collect();
        let listing = {
            assert!(client.command("UIDL").starts_with("+OK"));
            String::from_utf8(client.body()).unwrap()
        };
        let mut deleting = BTreeSet::new();
        for line in listing.lines() {
            let (number, uidl) = line.split_once(' ').unwrap();
            if random.below(3) == 0 {
                assert!(client.command(&format!("DELE {number}")).starts_with("+OK"));
                deleting.insert(uidl.to_owned());
            }
        }
        // The kill must land among working deliveries, not before the first one.
        let deadline = Instant::now() + Duration::from_secs(30);
        while acknowledged.lock().unwrap().is_empty() && !deliveries.iter().all(|d| d.is_finished())
        {
            assert!(
                Instant::now() < deadline,
                "round {round}: no LMTP delivery was acknowledged within 30 s:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_micros(random.below(20_000)));
        client.send_raw(b"QUIT\r\n");
        std::thread::sleep(Duration::from_micros(random.below(4_000)));
        server.kill();
        if client.line().is_empty() {
            killed_in_quit += 1;
        }
        stop.store(true, Ordering::SeqCst);
        for delivery in deliveries {
            if let Err(refusal) = delivery.join().unwrap() {
                panic!("round {round}: the server refused a delivery before the kill: {refusal:?}");
            }
        }
        let acknowledged = acknowledged.lock().unwrap().clone();
        assert!(
            !acknowledged.is_empty(),
            "round {round}: the LMTP sessions ended before any delivery was acknowledged"
        );
        total_acknowledged += acknowledged.len();
        // Mail the server acknowledged is on disk whether or not the kill came next; an
        // unacknowledged delivery may or may not be there, but never in part.
        server.kill_and_restart();
        let now = view(&server);
        let present: BTreeSet<&String> = now.values().collect();
        for (uidl, marker) in &known {
            match now.get(uidl) {
                Some(same) => assert_eq!(same, marker, "UIDL {uidl} changed hands"),
                None => assert!(
                    deleting.contains(uidl),
                    "{marker} ({uidl}) was lost, not deleted"
                ),
            }
        }
        // `view` has checked that no marker is there twice.
        for marker in &acknowledged {
            assert!(
                present.contains(marker),
                "acknowledged delivery {marker} was lost"
            );
        }
        let unacknowledged = now
            .values()
            .filter(|m| m.starts_with(&format!("r{round}-")) && !acknowledged.contains(m))
            .count();
        killed_in_delivery += usize::from(unacknowledged > 0);
        known = now;
        // Keep the maildrop from running dry.
        if known.len() < 40 {
            for i in 0..60 {
                let marker = format!("refill-{round}-{i}");
                server.add_message_named(
                    "alice",
                    &format!("1800000000.M{round}x{i}P1.host"),
                    &message(&marker),
                );
            }
            known = view(&server);
        }
    }
    eprintln!(
        "{rounds} kills: {killed_in_quit} before QUIT's answer, {killed_in_delivery} with a delivery \
         unacknowledged but kept; {total_acknowledged} deliveries acknowledged; {} messages at the end",
        known.len()
    );
    assert!(
        killed_in_quit > 0,
        "no kill landed during QUIT: the test proved nothing"
    );
    // The server still serves normally.
    let mut client = server.plain_client();
    client.login("alice", "wonderland");
    assert!(client.command("QUIT").starts_with("+OK"));
}
