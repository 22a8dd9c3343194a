//! The brute-force brake of front ends sharing one PostgreSQL store: a network a user logged
//! in from on one front end is known on every other, and an address's failures on either
//! count on both. Real PostgreSQL 15 (the cluster support of postie-store-pg), the real
//! binary, clients presented through a trusted PROXY on `::1`.

mod brake_support;
#[path = "../../postie-store-pg/tests/cluster/mod.rs"]
#[allow(dead_code)]
mod cluster;
mod common;
mod pg_support;

use brake_support::{behind_proxy, fail, last_delay, log_in, logged};
use common::{ServerBuilder, TestServer};

fn front_end(db: &cluster::TestDb) -> TestServer {
    behind_proxy(ServerBuilder::new().failure_delay_ms(50))
        .mail("store = \"postgres\"")
        .sections(&format!(
            "[postgres]\nurl = \"{}\"\npool_size = 4\n",
            pg_support::url(db.config())
        ))
        .start()
}

#[test]
fn two_front_ends_share_known_networks_and_an_addresss_failures() {
    let db = cluster::TestDb::new();
    let first = front_end(&db);
    let second = front_end(&db);
    let nat = "198.51.100.30";
    log_in(&first, nat, "alice");

    // Guesses from alice's address, alternating front ends: each costs what it would on one.
    for i in 0..4 {
        let front = if i % 2 == 0 { &first } else { &second };
        fail(front, nat, &format!("victim{i}"));
    }
    let delays = |server: &TestServer| -> Vec<u64> {
        logged(server, "authentication failed", 2)
            .iter()
            .map(|entry| entry.delay_ms)
            .collect()
    };
    assert_eq!(delays(&first), [0, 100]);
    assert_eq!(delays(&second), [50, 200]);

    // Alice logged in from there on the first front end: the second knows it.
    log_in(&second, nat, "alice");
    assert_eq!(last_delay(&second, "logged in", nat, "alice"), 0);
    // Bob never did: he waits for the address's four failures, then is known on both.
    log_in(&first, nat, "bob");
    assert_eq!(last_delay(&first, "logged in", nat, "bob"), 400);
    fail(&second, nat, "victim4");
    log_in(&second, nat, "bob");
    assert_eq!(last_delay(&second, "logged in", nat, "bob"), 0);
    // Bob's success halved the address's count (4 to 2) once: victim4 met 2 failures.
    assert_eq!(
        last_delay(&second, "authentication failed", nat, "victim4"),
        100
    );
}
