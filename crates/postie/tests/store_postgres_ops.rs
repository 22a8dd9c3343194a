//! What a front end on PostgreSQL tells its operator, through the real HTTP endpoints:
//! `/metrics` for pool waits, lease conflicts and the sweep backlog, and `/healthz`, which
//! fails with its reason when no database host that takes writes is reachable. Retries by
//! SQLSTATE are seen in store_postgres_failover.rs; in-doubt commits in postie-store-pg's
//! in_doubt_commit.rs.

#[path = "../../postie-store-pg/tests/cluster/mod.rs"]
#[allow(dead_code)]
mod cluster;
mod common;
mod ops_support;
mod pg_support;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::{SmtpClient, TestServer};
use ops_support::{http, metric};
use pg_support::{front_end, message};

fn healthz(server: &TestServer) -> (u16, String) {
    http(
        server.listener("http"),
        "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    )
}

/// Waits until the series shows `value` (the sweeper measures in the background).
fn wait_for_metric(server: &TestServer, series: &str, value: f64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = metric(server, series);
        if now == value {
            return;
        }
        assert!(Instant::now() < deadline, "{series} is {now}, not {value}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn metrics_show_pool_waits_lease_conflicts_and_the_sweep_backlog() {
    let db = cluster::TestDb::new();
    // One connection for four senders at once, to two users: the two maildrops' transactions
    // wait for it (copies for one maildrop are committed one batch at a time anyway).
    let mut front = front_end(db.config(), "pool_size = 1", true);
    assert_eq!(healthz(&front), (200, "ok\n".into()));

    let lmtp = front.lmtp.unwrap();
    let senders: Vec<_> = (0..4)
        .map(|s| {
            std::thread::spawn(move || {
                let mut client = SmtpClient::lmtp(lmtp);
                let to = ["alice@example.org", "bob@example.org"][s % 2];
                for n in 0..5 {
                    let reply = client.deliver(to, &message(&format!("{s}-{n}")));
                    assert_eq!(reply.code, 250, "{}", reply.text());
                }
                client.quit();
            })
        })
        .collect();
    for sender in senders {
        sender.join().unwrap();
    }
    assert!(metric(&front, "postie_db_pool_wait_seconds_count") > 0.0);

    let in_use = "postie_db_lease_conflicts_total{result=\"in_use\"}";
    assert_eq!(metric(&front, in_use), 0.0);
    let mut holder = front.plain_client();
    holder.login("alice", "wonderland");
    let mut second = front.plain_client();
    assert!(second.command("USER alice").starts_with("+OK"));
    assert!(second
        .command("PASS wonderland")
        .starts_with("-ERR [IN-USE]"));
    assert_eq!(metric(&front, in_use), 1.0);

    // Two deleted messages leave two bodies that no message refers to, for the sweep once
    // their grace (an hour) has passed; a front end's sweeper counts them when it starts.
    assert!(holder.command("DELE 1").starts_with("+OK"));
    assert!(holder.command("DELE 2").starts_with("+OK"));
    assert!(holder.command("QUIT").starts_with("+OK"));
    front.kill_and_restart();
    wait_for_metric(&front, "postie_db_sweep_backlog", 2.0);
}

#[test]
fn healthz_fails_when_no_database_host_takes_writes() {
    let db = cluster::TestDb::new();
    let healthy = front_end(db.config(), "", true);
    assert_eq!(healthz(&healthy), (200, "ok\n".into()));

    // A database URL whose host has nothing listening: the front end starts (the database
    // is connected to lazily), serves /healthz, and says why it is of no use.
    let nobody = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut nowhere = postie_store_pg::Config::new();
    nowhere
        .host("127.0.0.1")
        .port(nobody.local_addr().unwrap().port())
        .user("postgres")
        .dbname("postie");
    drop(nobody);
    let broken = front_end(&nowhere, "", true);
    let (status, body) = healthz(&broken);
    assert_eq!(status, 503, "{body}");
    assert!(
        body.starts_with("unhealthy: no read-write database host is reachable: "),
        "{body}"
    );
    // HEAD gets the status alone.
    let (status, body) = http(
        broken.listener("http"),
        "HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert_eq!((status, body.as_str()), (503, ""));
}
