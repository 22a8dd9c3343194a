//! Three `postie serve` front ends on one PostgreSQL database, as real processes: LMTP
//! deliveries to one user through all three at once, POP3 through any of them, `[IN-USE]`
//! across them, and front ends killed with SIGKILL mid-QUIT and mid-delivery, round after
//! round: nothing acknowledged lost, nothing visible twice, nothing partial, counters exact.
//! `POSTIE_KILL_ROUNDS` sets the number of kills.

#[path = "../../postie-store-pg/tests/cluster/mod.rs"]
#[allow(dead_code)]
mod cluster;
mod common;
mod harden_support;
mod pg_support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Random, Reply, SmtpClient, TestServer};
use harden_support::rounds;
use pg_support::{front_end, login_when_free, message, uid_of, view};

/// A short lease, so that a front end killed mid-session frees alice's maildrop quickly;
/// few connections, since this binary's tests run nine front ends on one cluster at once.
const POSTGRES: &str = "lease_secs = 2\npool_size = 4";

fn three_front_ends(db: &cluster::TestDb) -> Vec<TestServer> {
    (0..3)
        .map(|_| front_end(db.config(), POSTGRES, false))
        .collect()
}

/// What the counter row of alice's maildrop says, and what its messages add up to: (next
/// UID, counted octets, counted messages), (octets, messages) of the rows that count.
type Counters = ((i64, i64, i64), (i64, i64));

fn counters(db: &cluster::TestDb) -> Counters {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let client = db.client().await;
            let row = client
                .query_one(
                    "SELECT d.next_uid, d.bytes, d.messages,
                            coalesce(sum(m.raw_size), 0)::bigint, count(m.uid)
                     FROM maildrops d
                     LEFT JOIN messages m ON m.maildrop_id = d.id AND m.state <> 'trashed'
                     WHERE d.user_name = 'alice'
                     GROUP BY d.id",
                    &[],
                )
                .await
                .expect("alice's counter row");
            (
                (row.get(0), row.get(1), row.get(2)),
                (row.get(3), row.get(4)),
            )
        })
}

/// The counter row agrees with the messages it counts.
fn assert_counters_exact(db: &cluster::TestDb) -> Counters {
    let found = counters(db);
    let ((_, bytes, messages), (sum, count)) = found;
    assert_eq!((bytes, messages), (sum, count), "counters drifted");
    found
}

/// Delivers messages `PREFIX-0`, `PREFIX-1`, … over one LMTP session until told to stop,
/// pushing the marker of each one acknowledged with 250. Ends when told to stop or when the
/// connection dies (a kill); a refusal is an error, since nothing here should be refused.
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

#[test]
fn deliveries_through_three_front_ends_at_once_get_unique_increasing_uids() {
    const SESSIONS_PER_FRONT_END: usize = 2;
    const MESSAGES_PER_SESSION: usize = 15;
    let db = cluster::TestDb::new();
    let front_ends = three_front_ends(&db);
    let senders: Vec<_> = front_ends
        .iter()
        .enumerate()
        .flat_map(|(f, front)| {
            let lmtp = front.lmtp.unwrap();
            (0..SESSIONS_PER_FRONT_END).map(move |s| {
                std::thread::spawn(move || {
                    let mut client = SmtpClient::lmtp(lmtp);
                    let markers: Vec<String> = (0..MESSAGES_PER_SESSION)
                        .map(|n| {
                            let marker = format!("f{f}s{s}-{n}");
                            let reply = client.deliver("alice@example.org", &message(&marker));
                            assert_eq!(reply.code, 250, "{marker}: {}", reply.text());
                            marker
                        })
                        .collect();
                    client.quit();
                    markers
                })
            })
        })
        .collect();
    let sent: Vec<Vec<String>> = senders.into_iter().map(|t| t.join().unwrap()).collect();
    let total = sent.iter().map(Vec::len).sum::<usize>();

    // Every front end sees the same maildrop: every message once, whole, with its UID.
    let views: Vec<_> = front_ends.iter().map(|front| view(front.plain)).collect();
    assert!(
        views.iter().all(|v| *v == views[0]),
        "the front ends disagree"
    );
    let uid_of_marker: BTreeMap<&str, u32> = views[0]
        .iter()
        .map(|(&uid, (_, marker))| (marker.as_str(), uid))
        .collect();
    assert_eq!(uid_of_marker.len(), total);
    // No delivery failed, so the UIDs are exactly 1..=total; each session's messages got
    // increasing UIDs, in the order their 250s came.
    let uids: Vec<u32> = views[0].keys().copied().collect();
    assert_eq!(uids, (1..=total as u32).collect::<Vec<_>>());
    for markers in &sent {
        let in_order: Vec<u32> = markers
            .iter()
            .map(|m| {
                *uid_of_marker
                    .get(m.as_str())
                    .expect("an acknowledged message")
            })
            .collect();
        assert!(
            in_order.windows(2).all(|w| w[0] < w[1]),
            "UIDs not increasing in commit order: {markers:?} got {in_order:?}"
        );
    }
    let ((next_uid, _, messages), _) = assert_counters_exact(&db);
    assert_eq!((next_uid, messages), (total as i64 + 1, total as i64));
}

#[test]
fn a_session_on_one_front_end_holds_the_maildrop_on_all() {
    let db = cluster::TestDb::new();
    let front_ends = three_front_ends(&db);
    for (n, front) in front_ends.iter().enumerate() {
        let reply = common::lmtp_deliver(
            front.lmtp.unwrap(),
            "alice@example.org",
            &message(&format!("m{n}")),
        );
        assert_eq!(reply.code, 250, "{}", reply.text());
    }
    for holder in 0..3 {
        let mut session = front_ends[holder].plain_client();
        session.login("alice", "wonderland");
        assert!(session.command("STAT").starts_with("+OK 3 "));
        for (other, front) in front_ends.iter().enumerate() {
            let mut refused = front.plain_client();
            assert!(refused.command("USER alice").starts_with("+OK"));
            let answer = refused.command("PASS wonderland");
            assert!(
                answer.starts_with("-ERR [IN-USE]"),
                "front end {other} while {holder} holds alice: {answer}"
            );
        }
        assert!(session.command("QUIT").starts_with("+OK"));
    }
    // Once the holder has quit, any front end serves the maildrop at once.
    let mut next = front_ends[2].plain_client();
    next.login("alice", "wonderland");
    assert!(next.command("QUIT").starts_with("+OK"));
}

#[test]
fn front_ends_killed_mid_quit_and_mid_delivery_lose_and_duplicate_nothing() {
    let rounds = rounds("POSTIE_KILL_ROUNDS", 9);
    let db = cluster::TestDb::new();
    let mut front_ends = three_front_ends(&db);
    for n in 0..60 {
        let reply = common::lmtp_deliver(
            front_ends[n % 3].lmtp.unwrap(),
            "alice@example.org",
            &message(&format!("seed-{n}")),
        );
        assert_eq!(reply.code, 250, "{}", reply.text());
    }
    let mut random = Random::new();
    let mut known = view(front_ends[0].plain);
    let (mut killed_in_quit, mut quits_applied, mut killed_in_delivery, mut total_acknowledged) =
        (0, 0, 0, 0);
    for round in 0..rounds {
        let victim = round as usize % 3;
        // A session on the victim marks some messages deleted and sends QUIT, deliveries run
        // through every front end meanwhile, and the victim dies at a random moment.
        let mut client = login_when_free(front_ends[victim].plain, "alice", "wonderland");
        let stop = Arc::new(AtomicBool::new(false));
        let acknowledged = Arc::new(Mutex::new(Vec::new()));
        // After the login, so that what they deliver is not in the session's snapshot.
        let deliveries: Vec<_> = front_ends
            .iter()
            .enumerate()
            .map(|(f, front)| {
                let (lmtp, stop, acknowledged) = (
                    front.lmtp.unwrap(),
                    Arc::clone(&stop),
                    Arc::clone(&acknowledged),
                );
                let prefix = format!("r{round}f{f}");
                std::thread::spawn(move || deliver_until_stopped(lmtp, prefix, stop, acknowledged))
            })
            .collect();
        assert!(client.command("UIDL").starts_with("+OK"));
        let listing = String::from_utf8(client.body()).unwrap();
        let mut deleting = BTreeSet::new();
        for line in listing.lines() {
            let (number, uidl) = line.split_once(' ').unwrap();
            if random.below(3) == 0 {
                assert!(client.command(&format!("DELE {number}")).starts_with("+OK"));
                deleting.insert(uid_of(uidl));
            }
        }
        // The kill must land among working deliveries through the victim.
        let victims_prefix = format!("r{round}f{victim}-");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !acknowledged
            .lock()
            .unwrap()
            .iter()
            .any(|m: &String| m.starts_with(&victims_prefix))
        {
            assert!(
                Instant::now() < deadline && !deliveries[victim].is_finished(),
                "round {round}: no delivery through front end {victim} was acknowledged:\n{}",
                front_ends[victim].log()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_micros(random.below(20_000)));
        client.send_raw(b"QUIT\r\n");
        // QUIT takes a few round trips and a commit: the kill lands before, during or after.
        std::thread::sleep(Duration::from_micros(random.below(30_000)));
        front_ends[victim].kill();
        if client.line().is_empty() {
            killed_in_quit += 1;
        }
        stop.store(true, Ordering::SeqCst);
        for (f, delivery) in deliveries.into_iter().enumerate() {
            if let Err(refusal) = delivery.join().unwrap() {
                panic!("round {round}: front end {f} refused a delivery: {refusal:?}");
            }
        }
        let acknowledged = acknowledged.lock().unwrap().clone();
        total_acknowledged += acknowledged.len();
        front_ends[victim].kill_and_restart();

        // Seen through another front end and through the restarted one alike.
        let now = view(front_ends[(victim + 1) % 3].plain);
        assert_eq!(
            now,
            view(front_ends[victim].plain),
            "the front ends disagree"
        );
        let present: BTreeSet<&str> = now.values().map(|(_, m)| m.as_str()).collect();
        for (uid, (uidl, marker)) in &known {
            match now.get(uid) {
                Some(same) => {
                    assert_eq!(same, &(uidl.clone(), marker.clone()), "UID {uid} changed")
                }
                None => assert!(
                    deleting.contains(uid),
                    "{marker} ({uidl}) was lost, not deleted"
                ),
            }
        }
        for marker in &acknowledged {
            assert!(
                present.contains(marker.as_str()),
                "acknowledged delivery {marker} was lost"
            );
        }
        // What arrived since is newer than all that was there; an unacknowledged delivery
        // may be there (the kill came between COMMIT and 250), but whole (`view` checked).
        let newest_known = known.keys().last().copied().unwrap_or(0);
        assert!(
            now.range(..=newest_known)
                .all(|(uid, _)| known.contains_key(uid)),
            "a new message got an old UID"
        );
        quits_applied +=
            usize::from(!deleting.is_empty() && deleting.iter().all(|uid| !now.contains_key(uid)));
        killed_in_delivery += usize::from(
            now.values()
                .any(|(_, m)| m.starts_with(&victims_prefix) && !acknowledged.contains(m)),
        );
        assert_counters_exact(&db);
        known = now;
    }
    eprintln!(
        "{rounds} kills: {killed_in_quit} before QUIT's answer, {quits_applied} QUITs applied, \
         {killed_in_delivery} with a \
         delivery unacknowledged but kept; {total_acknowledged} deliveries acknowledged; {} \
         messages at the end",
        known.len()
    );
    assert!(
        killed_in_quit > 0,
        "no kill landed during QUIT: the test proved nothing"
    );
}
