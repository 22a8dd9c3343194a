//! A delivery whose connection fails during COMMIT: the front end cannot tell from the
//! error whether the copy was committed, so it looks the copy up by its delivery id. Here a
//! proxy between the store and PostgreSQL cuts the connection at the recipient's COMMIT,
//! either after PostgreSQL answered it (committed, acknowledgement lost) or before
//! forwarding it (never committed).

mod cluster;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use cluster::TestDb;
use postie_store::View;
use postie_store::{Delivery, MailStore, Maildrop, Quota, Recipient, StoreError};
use postie_store_pg::{PgOptions, PgStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The simple-protocol query tokio-postgres sends to commit.
const COMMIT: &[u8] = b"Q\0\0\0\x0bCOMMIT\0";
/// How long [`Cut::HeldBack`] keeps the COMMIT from PostgreSQL: far longer than the lookup.
const HOLD_BACK: std::time::Duration = std::time::Duration::from_secs(3);
/// PostgreSQL's CommandComplete for a COMMIT.
const COMMITTED: &[u8] = b"C\0\0\0\x0bCOMMIT\0";
/// Sent in the recipient's transaction, before its COMMIT.
const MESSAGE_INSERT: &[u8] = b"INSERT INTO messages";

#[derive(Clone, Copy, PartialEq)]
enum Cut {
    /// Forward the COMMIT, wait for PostgreSQL's answer, and drop it with the connection.
    AfterCommit,
    /// Drop the connection instead of forwarding the COMMIT.
    BeforeCommit,
    /// Close the store's side at once, and forward the COMMIT to PostgreSQL only later, as a
    /// server process still busy with it would: the store's lookup runs meanwhile.
    HeldBack,
}

/// Listens on 127.0.0.1 and forwards to `port`; cuts the first recipient COMMIT as `cut`
/// says, and sets the returned flag once it has.
async fn proxy(port: u16, cut: Cut) -> (u16, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_port = listener.local_addr().unwrap().port();
    let done = Arc::new(AtomicBool::new(false));
    let cut_done = Arc::clone(&done);
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            tokio::spawn(forward(client, server, cut, Arc::clone(&cut_done)));
        }
    });
    (proxy_port, done)
}

async fn forward(mut client: TcpStream, mut server: TcpStream, cut: Cut, done: Arc<AtomicBool>) {
    let contains = |data: &[u8], what: &[u8]| data.windows(what.len()).any(|w| w == what);
    let (mut from_client, mut from_server) = (vec![0u8; 65536], vec![0u8; 65536]);
    let mut armed = false;
    loop {
        tokio::select! {
            read = client.read(&mut from_client) => {
                let Ok(n @ 1..) = read else { return };
                let data = &from_client[..n];
                armed |= contains(data, MESSAGE_INSERT);
                if armed && contains(data, COMMIT) && !done.swap(true, Ordering::SeqCst) {
                    if cut == Cut::HeldBack {
                        let _ = client.shutdown().await;
                        tokio::time::sleep(HOLD_BACK).await;
                    }
                    if cut != Cut::BeforeCommit {
                        server.write_all(data).await.unwrap();
                        // Until the COMMIT's own CommandComplete: answers to earlier
                        // statements may still be on their way, and dropping the connection
                        // before PostgreSQL has committed would make the test race it.
                        let mut answer = Vec::new();
                        while !contains(&answer, COMMITTED) {
                            match server.read(&mut from_server).await {
                                Ok(n @ 1..) => answer.extend_from_slice(&from_server[..n]),
                                _ => break,
                            }
                        }
                    }
                    return;
                }
                if server.write_all(data).await.is_err() {
                    return;
                }
            }
            read = server.read(&mut from_server) => {
                let Ok(n @ 1..) = read else { return };
                if client.write_all(&from_server[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Delivers one message through a proxy that cuts the recipient's COMMIT; returns a store
/// that reaches the database directly, and the delivery's result.
async fn deliver_through(cut: Cut) -> (PgStore, Result<(), StoreError>) {
    let db = TestDb::create().await;
    let (port, done) = proxy(db.config().get_ports()[0], cut).await;
    let mut config = postie_store_pg::Config::new();
    config
        .host("127.0.0.1")
        .port(port)
        .user("postgres")
        .dbname(db.config().get_dbname().unwrap());
    let store = PgStore::new(config, PgOptions::default());
    let delivery = Delivery {
        message: Arc::new(b"Subject: in doubt\n\nbody\n".to_vec()),
        recipients: vec![Recipient {
            user: "alice".into(),
            headers: Vec::new(),
            quota: Quota::default(),
        }],
    };
    let result = store.deliver(delivery).await.remove(0);
    assert!(done.load(Ordering::SeqCst), "the proxy cut the COMMIT");
    (db.store(PgOptions::default()), result)
}

/// In-doubt commits resolved with `outcome`, as `/metrics` shows them.
fn in_doubt(outcome: &'static str) -> i64 {
    postie_metrics::METRICS.db_in_doubt_commits.get([outcome])
}

#[tokio::test]
async fn a_commit_whose_answer_was_lost_is_acknowledged() {
    let (store, result) = deliver_through(Cut::AfterCommit).await;
    result.expect("the copy was committed, so the delivery is acknowledged");
    // The tests of this binary share the process's metrics; each counts its own outcome.
    assert!(in_doubt("committed") >= 1);
    let drop = store.open("alice", false, View::Normal).await.unwrap();
    assert_eq!(drop.messages().len(), 1, "delivered once");
}

#[tokio::test]
async fn a_commit_that_never_reached_the_server_is_a_temporary_failure() {
    let (store, result) = deliver_through(Cut::BeforeCommit).await;
    assert!(
        matches!(result, Err(StoreError::Temporary(_))),
        "{result:?}"
    );
    assert!(in_doubt("absent") >= 1);
    assert!(store
        .open("alice", false, View::Normal)
        .await
        .unwrap()
        .messages()
        .is_empty());
}

#[tokio::test]
async fn a_lookup_waits_for_a_commit_still_on_its_way_to_the_server() {
    let (store, result) = deliver_through(Cut::HeldBack).await;
    result.expect("the COMMIT reached the server after the connection failed: acknowledged");
    let drop = store.open("alice", false, View::Normal).await.unwrap();
    assert_eq!(drop.messages().len(), 1, "delivered once");
}
