//! Failover: a front end configured with a primary and its synchronous streaming replica
//! (`url = "postgresql://…@P1,P2/…?target_session_attrs=read-write"`) while LMTP deliveries
//! run; the primary's processes are killed with SIGKILL and the replica promoted. The front
//! end, never restarted, finds the new primary by itself: deliveries resume, every one that
//! got a 250 is there exactly once and whole, a POP3 session opened before the failover
//! finishes after it, and POP3 serves again within a generous bound.

#[path = "../../postie-store-pg/tests/cluster/mod.rs"]
#[allow(dead_code)]
mod cluster;
mod common;
mod ops_support;
mod pg_support;

use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Client, SmtpClient};
use ops_support::{http, metric};
use pg_support::{front_end, marker_of, message, view};

/// How long the test waits for anything the failover delays: far longer than it takes.
const BOUND: Duration = Duration::from_secs(60);

/// What the senders saw.
#[derive(Default)]
struct Sent {
    acknowledged: Mutex<Vec<String>>,
    /// 4xx answers, each retried as a sending MTA would.
    deferred: AtomicUsize,
}

/// Delivers `PREFIX-0`, `PREFIX-1`, … over LMTP until told to stop; a message deferred with
/// 4xx or cut off by a closed connection is sent again (on a new connection if need be)
/// until it gets its 250. Anything else is an error.
fn send_until_stopped(lmtp: SocketAddr, prefix: &str, stop: &AtomicBool, sent: &Sent) {
    let mut client: Option<SmtpClient> = None;
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        let marker = format!("{prefix}-{n}");
        let session = match client.as_mut() {
            Some(session) => session,
            None => client.insert(SmtpClient::lmtp(lmtp)),
        };
        match session.try_deliver("alice@example.org", &message(&marker)) {
            Some(reply) if reply.code == 250 => {
                sent.acknowledged.lock().unwrap().push(marker);
                n += 1;
            }
            Some(reply) if (400..500).contains(&reply.code) => {
                sent.deferred.fetch_add(1, Ordering::SeqCst);
                // A deferral may come at RCPT or after DATA: start the next try afresh.
                client = None;
            }
            Some(reply) => panic!("{marker} refused: {reply:?}"),
            None => client = None,
        }
    }
}

/// `GET /healthz`: the status and the body.
fn healthz(http_addr: SocketAddr) -> (u16, String) {
    http(http_addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
}

/// Waits until `/healthz` answers `status`, and returns its body.
fn wait_for_health(http_addr: SocketAddr, status: u16) -> String {
    let deadline = Instant::now() + BOUND;
    loop {
        let (now, body) = healthz(http_addr);
        if now == status {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "/healthz still answers {now} {body:?}, not {status}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A POP3 login as alice on `addr`, tried again on temporary failures until `BOUND`.
fn login_within_bound(addr: SocketAddr) -> Client {
    let deadline = Instant::now() + BOUND;
    loop {
        if let Ok(tcp) = TcpStream::connect(addr) {
            tcp.set_read_timeout(Some(BOUND)).unwrap();
            let mut client = Client::over_tcp(tcp);
            if client.command("USER alice").starts_with("+OK")
                && client.command("PASS wonderland").starts_with("+OK")
            {
                return client;
            }
        }
        assert!(
            Instant::now() < deadline,
            "POP3 did not serve again within {BOUND:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_front_end_finds_the_promoted_replica_and_loses_no_acknowledged_delivery() {
    let cluster = cluster::ReplicatedCluster::start();
    let front = front_end(&cluster.config(), "", true);
    let http_addr = front.listener("http");
    let pid = front.pid();
    for n in 0..3 {
        let reply = common::lmtp_deliver(
            front.lmtp.unwrap(),
            "alice@example.org",
            &message(&format!("before-{n}")),
        );
        assert_eq!(reply.code, 250, "{}", reply.text());
    }
    assert_eq!(wait_for_health(http_addr, 200), "ok\n");

    // A session that lives through the failover, without holding a transaction.
    let mut session = Client::plain(front.plain);
    session.login("alice", "wonderland");
    assert!(session.command("STAT").starts_with("+OK 3 "));
    assert!(session.command("DELE 1").starts_with("+OK"));

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(Sent::default());
    let senders: Vec<_> = (0..3)
        .map(|s| {
            let (lmtp, stop, sent) = (front.lmtp.unwrap(), Arc::clone(&stop), Arc::clone(&sent));
            std::thread::spawn(move || send_until_stopped(lmtp, &format!("s{s}"), &stop, &sent))
        })
        .collect();
    let acknowledged = || sent.acknowledged.lock().unwrap().len();
    let wait_for_deliveries = |more: usize, what: &str| {
        let target = acknowledged() + more;
        let deadline = Instant::now() + BOUND;
        while acknowledged() < target {
            assert!(
                Instant::now() < deadline,
                "deliveries did not {what} within {BOUND:?}:\n{}",
                front.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    wait_for_deliveries(20, "run");

    cluster.kill_primary();
    // No host takes writes until the promotion: the front end says so to load balancers.
    let reason = wait_for_health(http_addr, 503);
    assert!(
        reason.starts_with("unhealthy: no read-write database host is reachable"),
        "{reason}"
    );
    cluster.promote_replica();
    wait_for_deliveries(20, "resume after the promotion");
    assert_eq!(wait_for_health(http_addr, 200), "ok\n");
    // Transactions that met the dead primary were run again on new connections.
    let retries = metric(
        &front,
        "postie_db_transaction_retries_total{sqlstate=\"connection\"}",
    );
    assert!(retries > 0.0, "no retry counted");
    stop.store(true, Ordering::SeqCst);
    for sender in senders {
        sender.join().unwrap();
    }

    // The session from before the failover reads and quits on the new primary.
    marker_of(&session.retr(2));
    assert!(session.command("QUIT").starts_with("+OK"));
    drop(login_within_bound(front.plain));

    let now = view(front.plain);
    let present: Vec<&str> = now.values().map(|(_, m)| m.as_str()).collect();
    assert!(
        !present.contains(&"before-0"),
        "the QUIT's deletion was lost"
    );
    for marker in sent.acknowledged.lock().unwrap().iter() {
        // `view` has checked that each is whole and there once.
        assert!(
            present.contains(&marker.as_str()),
            "acknowledged delivery {marker} was lost in the failover"
        );
    }
    assert_eq!(front.pid(), pid, "the front end was restarted");
    eprintln!(
        "{} deliveries acknowledged, {} deferred and sent again; {} messages at the end; \
         {retries} transactions retried, in-doubt commits: {} committed, {} absent",
        acknowledged(),
        sent.deferred.load(Ordering::SeqCst),
        now.len(),
        metric(
            &front,
            "postie_db_in_doubt_commits_total{outcome=\"committed\"}"
        ),
        metric(
            &front,
            "postie_db_in_doubt_commits_total{outcome=\"absent\"}"
        ),
    );
}
