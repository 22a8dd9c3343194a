//! The contract every [`LoginRecords`] keeps, as one check each implementation runs on fresh
//! records (feature `contract-suite`): [`crate::LocalRecords`] in this crate's tests, the
//! database's records in the `postie` binary's. Times are not checked here (a database uses
//! its own clock); the forgetting periods are each implementation's unit tests.

use std::net::IpAddr;
use std::time::Duration;

use crate::login_policy::{LoginHistory, LoginRecords};

fn history(address_failures: u32, user_failures: u32, known_network: bool) -> LoginHistory {
    LoginHistory {
        address_failures,
        user_failures,
        known_network,
    }
}

/// Panics, naming the broken rule, where `records` breaks the contract.
pub async fn check(records: &dyn LoginRecords) {
    let network: IpAddr = "192.0.2.10".parse().unwrap();
    let other: IpAddr = "2001:db8:10::".parse().unwrap();

    assert_eq!(
        records
            .history(network, Some("alice"))
            .await
            .expect("the records could not be read"),
        LoginHistory::default(),
        "fresh records know nothing"
    );
    // A failure returns what was known before it, and counts for the network and the user.
    for before in 0..3 {
        assert_eq!(
            records
                .record_failure(network, Some("alice"))
                .await
                .expect("the records could not count a failure"),
            history(before, before, false),
            "record_failure returns the history before it"
        );
    }
    for _ in 0..5 {
        records
            .record_failure(network, None)
            .await
            .expect("the records could not count a failure without a user");
    }
    assert_eq!(
        records.history(other, Some("alice")).await.unwrap(),
        history(0, 3, false),
        "a user's failures count from every network, a network's only for itself"
    );

    // A success makes the pair known, halves the user's count every time and the network's
    // once per user within the window.
    records
        .record_success(network, "alice")
        .await
        .expect("the records could not record a success");
    assert_eq!(
        records.history(network, Some("alice")).await.unwrap(),
        history(4, 1, true),
        "alice's first success halves the network (8 to 4) and alice (3 to 1)"
    );
    records.record_success(network, "alice").await.unwrap();
    assert_eq!(
        records.history(network, Some("alice")).await.unwrap(),
        history(4, 0, true),
        "her second halves only her own count"
    );
    records.record_success(network, "bob").await.unwrap();
    assert_eq!(
        records.history(network, Some("bob")).await.unwrap(),
        history(2, 0, true),
        "another user's first success halves the network again"
    );
    assert!(
        !records
            .history(other, Some("alice"))
            .await
            .unwrap()
            .known_network,
        "a pair is known for its network only"
    );
    assert!(
        !records
            .history(network, Some("carol"))
            .await
            .unwrap()
            .known_network,
        "and for its user only"
    );
    assert!(
        !records.history(network, None).await.unwrap().known_network,
        "no user, no known pair"
    );

    // LOGIN-DELAY.
    let minute = Duration::from_secs(60);
    assert!(records.try_login("alice", minute).await.unwrap());
    assert!(!records.try_login("alice", minute).await.unwrap());
    assert!(records.try_login("bob", minute).await.unwrap());
}
