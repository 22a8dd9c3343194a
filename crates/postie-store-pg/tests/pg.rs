//! What only the PostgreSQL store does, beyond the contract: bodies stored once and in
//! chunks, quotas held across front ends, leases that expire, the sweep, the retry helper and
//! the migrations; on a real PostgreSQL 15 started for this test binary.

mod cluster;

use std::collections::HashSet;
use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cluster::TestDb;
use postie_store::View;
use postie_store::{
    DeletePolicy, Delivery, MailStore, Maildrop, MessageBody, Quota, Recipient, StoreError, Update,
};
use postie_store_pg::{PgOptions, PgStore, SCHEMA_VERSION};
use tokio::sync::Barrier;
use tokio_postgres::IsolationLevel;

const CHUNK: usize = 256 * 1024;

fn recipient(user: &str) -> Recipient {
    Recipient {
        user: user.to_owned(),
        headers: format!("Delivered-To: {user}\n").into_bytes(),
        quota: Quota::default(),
    }
}

async fn deliver(store: &PgStore, users: &[&str], message: &[u8]) -> Vec<Result<(), StoreError>> {
    store
        .deliver(Delivery {
            message: Arc::new(message.to_vec()),
            recipients: users.iter().map(|user| recipient(user)).collect(),
        })
        .await
}

async fn deliver_ok(store: &PgStore, users: &[&str], message: &[u8]) {
    for result in deliver(store, users, message).await {
        result.expect("delivered");
    }
}

async fn count(db: &TestDb, query: &str) -> i64 {
    db.client()
        .await
        .query_one(query, &[])
        .await
        .unwrap_or_else(|e| panic!("{query}: {e}"))
        .get(0)
}

async fn read_all<D: Maildrop>(drop: &mut D, index: usize) -> io::Result<Vec<u8>> {
    let mut body = drop.open_message(index).await.expect("opening a message");
    let mut content = Vec::new();
    let mut buf = vec![0u8; 8192];
    loop {
        match body.read(&mut buf).await? {
            0 => return Ok(content),
            n => content.extend_from_slice(&buf[..n]),
        }
    }
}

async fn quit(drop: postie_store_pg::PgDrop, deleted: &[usize], policy: DeletePolicy) {
    let update = Update {
        deleted: deleted.to_vec(),
        retrieved: Vec::new(),
        policy,
    };
    drop.quit(update).await.expect("QUIT");
}

#[tokio::test]
async fn a_body_is_stored_once_for_all_its_recipients() {
    let db = TestDb::create().await;
    let store = db.store(PgOptions::default());
    deliver_ok(
        &store,
        &["alice", "bob", "carol"],
        b"Subject: shared\n\nbody\n",
    )
    .await;
    assert_eq!(count(&db, "SELECT count(*) FROM bodies").await, 1);
    assert_eq!(count(&db, "SELECT count(*) FROM messages").await, 3);
    assert_eq!(count(&db, "SELECT sum(refs)::bigint FROM bodies").await, 3);
    let mut drop = store.open("carol", true, View::Normal).await.unwrap();
    assert_eq!(
        read_all(&mut drop, 0).await.unwrap(),
        b"Delivered-To: carol\nSubject: shared\n\nbody\n"
    );
}

#[tokio::test]
async fn bodies_are_kept_in_chunks_of_at_most_256_kib() {
    let db = TestDb::create().await;
    let store = db.store(PgOptions::default());
    let message: Vec<u8> = (0..4 * CHUNK + 1).map(|i| b'a' + (i % 26) as u8).collect();
    deliver_ok(&store, &["alice"], &message).await;
    assert_eq!(count(&db, "SELECT count(*) FROM body_chunks").await, 5);
    assert_eq!(
        count(
            &db,
            "SELECT max(coalesce(packed_from, octet_length(data)))::bigint FROM body_chunks"
        )
        .await,
        CHUNK as i64
    );
    let mut drop = store.open("alice", true, View::Normal).await.unwrap();
    let content = read_all(&mut drop, 0).await.unwrap();
    assert_eq!(
        &content[..b"Delivered-To: alice\n".len()],
        b"Delivered-To: alice\n"
    );
    assert!(
        content.ends_with(&message),
        "the body follows the headers whole"
    );
}

/// Text is stored compressed by the front end, what does not compress as it is; both read
/// back byte for byte, and a compressed chunk that was damaged is a read error, never other
/// octets.
#[tokio::test]
async fn chunks_that_compress_are_stored_compressed_and_read_back_exactly() {
    let db = TestDb::create().await;
    let store = db.store(PgOptions::default());
    let text: Vec<u8> = b"Subject: text\n\n"
        .iter()
        .copied()
        .chain((0..3 * CHUNK).map(|i| b"the quick brown fox\n"[i % 20]))
        .collect();
    let mut noise = vec![0u8; CHUNK + 100];
    let mut x: u32 = 1;
    for byte in &mut noise {
        // xorshift: octets that do not compress, the same every run.
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *byte = x as u8;
    }
    deliver_ok(&store, &["alice"], &text).await;
    deliver_ok(&store, &["alice"], &noise).await;
    let compressed = count(
        &db,
        "SELECT count(*) FROM body_chunks WHERE packed_from IS NOT NULL",
    );
    assert_eq!(
        compressed.await,
        3,
        "the text's three full chunks; its last 15 octets do not compress"
    );
    assert_eq!(
        count(
            &db,
            "SELECT sum(octet_length(data))::bigint FROM body_chunks WHERE packed_from IS NULL"
        )
        .await,
        (noise.len() + text.len() - 3 * CHUNK) as i64,
        "noise and the text's short last chunk stored as they are"
    );
    let mut drop = store.open("alice", true, View::Normal).await.unwrap();
    for (index, message) in [&text[..], &noise[..]].into_iter().enumerate() {
        let read = read_all(&mut drop, index).await.unwrap();
        assert!(read == [&b"Delivered-To: alice\n"[..], message].concat());
    }
    assert!(store.check(false).await.unwrap().findings.is_empty());
    db.client()
        .await
        .execute(
            "UPDATE body_chunks SET data = substring(data FROM 1 FOR 40)
             WHERE seq = 2 AND packed_from IS NOT NULL",
            &[],
        )
        .await
        .unwrap();
    let error = read_all(&mut drop, 0)
        .await
        .expect_err("the chunk is damaged");
    assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{error}");
}

#[tokio::test]
async fn a_missing_chunk_is_a_read_error_not_a_short_message() {
    let db = TestDb::create().await;
    let store = db.store(PgOptions::default());
    deliver_ok(&store, &["alice"], &vec![b'x'; 3 * CHUNK]).await;
    db.client()
        .await
        .execute("DELETE FROM body_chunks WHERE seq = 2", &[])
        .await
        .unwrap();
    let mut drop = store.open("alice", true, View::Normal).await.unwrap();
    let error = read_all(&mut drop, 0)
        .await
        .expect_err("the body is damaged");
    assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof, "{error}");
}

/// The store reads the next message ahead of its RETR; messages asked for in any order, or
/// twice, are still each its own, whole.
#[tokio::test]
async fn messages_read_in_any_order_are_each_whole() {
    let db = TestDb::create().await;
    let store = db.store(PgOptions::default());
    let messages: Vec<Vec<u8>> = (0..4u8)
        .map(|n| {
            let mut m = format!("Subject: {n}\n\n").into_bytes();
            m.extend(std::iter::repeat_n(b'a' + n, (n as usize + 1) * CHUNK));
            m
        })
        .collect();
    for message in &messages {
        deliver_ok(&store, &["alice"], message).await;
    }
    let mut drop = store.open("alice", true, View::Normal).await.unwrap();
    for index in [0, 2, 1, 1, 3, 0, 3] {
        let read = read_all(&mut drop, index).await.unwrap();
        let expected = [&b"Delivered-To: alice\n"[..], &messages[index]].concat();
        assert!(read == expected, "message {} read whole", index + 1);
    }
}

/// Two front ends (two pools) deliver to one maildrop at once: the quota holds exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_front_ends_never_overshoot_a_quota() {
    const EACH: usize = 12;
    let db = TestDb::create().await;
    let front_ends = [
        db.store(PgOptions::default()),
        db.store(PgOptions::default()),
    ];
    let message = Arc::new(vec![b'q'; 100]);
    let deliveries: Vec<_> = (0..EACH)
        .flat_map(|_| front_ends.iter().cloned())
        .map(|store| {
            let message = Arc::clone(&message);
            tokio::spawn(async move {
                let delivery = Delivery {
                    message,
                    recipients: vec![Recipient {
                        user: "alice".into(),
                        headers: Vec::new(),
                        quota: Quota {
                            bytes: 1000,
                            messages: 0,
                        },
                    }],
                };
                store.deliver(delivery).await.remove(0)
            })
        })
        .collect();
    let mut delivered = 0;
    for delivery in deliveries {
        match delivery.await.unwrap() {
            Ok(()) => delivered += 1,
            Err(StoreError::OverQuota(_)) => {}
            Err(e) => panic!("a delivery failed otherwise: {e}"),
        }
    }
    assert_eq!(
        delivered, 10,
        "1000 octets hold exactly ten 100-octet messages"
    );
    let usage = front_ends[1].usage("alice").await.unwrap();
    assert_eq!((usage.bytes, usage.messages), (1000, 10));
    let drop = front_ends[0]
        .open("alice", false, View::Normal)
        .await
        .unwrap();
    let uidls: HashSet<_> = drop.messages().iter().map(|m| m.uidl.clone()).collect();
    assert_eq!(uidls.len(), 10, "one UID each");
}

/// A front end that stalls (its renewals stop) loses the maildrop once its lease expires,
/// and its QUIT then changes nothing.
#[tokio::test]
async fn a_lease_taken_over_after_expiry_blocks_the_old_quit() {
    let db = TestDb::create().await;
    let stalled = db.store(PgOptions {
        lease_ttl: Duration::from_secs(1),
        lease_renew_every: Duration::from_secs(3600),
        ..PgOptions::default()
    });
    let other = db.store(PgOptions::default());
    deliver_ok(&stalled, &["alice"], b"keep me\n").await;
    let old = stalled.open("alice", true, View::Normal).await.unwrap();
    assert!(matches!(
        other.open("alice", true, View::Normal).await,
        Err(StoreError::InUse)
    ));
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let new = other
        .open("alice", true, View::Normal)
        .await
        .expect("the expired lease is taken over");
    let refused = old
        .quit(Update {
            deleted: vec![0],
            retrieved: Vec::new(),
            policy: DeletePolicy::Expunge,
        })
        .await;
    assert!(
        matches!(refused, Err(StoreError::Temporary(_))),
        "{refused:?}"
    );
    assert_eq!(new.messages().len(), 1);
    assert_eq!(
        other.usage("alice").await.unwrap().messages,
        1,
        "nothing changed"
    );
    assert!(
        matches!(
            stalled.open("alice", true, View::Normal).await,
            Err(StoreError::InUse)
        ),
        "the new session holds the maildrop"
    );
    quit(new, &[0], DeletePolicy::Expunge).await;
    assert_eq!(other.usage("alice").await.unwrap().messages, 0);
}

/// A live session keeps its lease past the lease's length; dropped, it frees the maildrop
/// for other front ends soon after.
#[tokio::test]
async fn a_live_session_renews_its_lease_and_a_dropped_one_releases_it() {
    let db = TestDb::create().await;
    let short = PgOptions {
        lease_ttl: Duration::from_secs(1),
        lease_renew_every: Duration::from_millis(100),
        ..PgOptions::default()
    };
    let (holder, other) = (db.store(short), db.store(PgOptions::default()));
    let session = holder.open("alice", true, View::Normal).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(matches!(
        other.open("alice", true, View::Normal).await,
        Err(StoreError::InUse)
    ));
    drop(session);
    let mut waited = Duration::ZERO;
    let taken = loop {
        match other.open("alice", true, View::Normal).await {
            Ok(taken) => break taken,
            Err(StoreError::InUse) if waited < Duration::from_secs(5) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                waited += Duration::from_millis(20);
            }
            Err(e) => panic!("the dropped session's lease is still held: {e}"),
        }
    };
    quit(taken, &[], DeletePolicy::Expunge).await;
    assert_eq!(count(&db, "SELECT count(*) FROM leases").await, 0);
}

#[tokio::test]
async fn the_sweep_reclaims_only_bodies_nothing_refers_to_after_the_grace() {
    let db = TestDb::create().await;
    let patient = db.store(PgOptions::default());
    let store = db.store(PgOptions {
        sweep_grace: Duration::ZERO,
        ..PgOptions::default()
    });
    deliver_ok(&store, &["alice", "bob"], b"shared\n").await;
    deliver_ok(&store, &["alice"], b"expunged\n").await;
    deliver_ok(&store, &["bob"], b"trashed\n").await;
    quit(
        store.open("alice", true, View::Normal).await.unwrap(),
        &[0, 1],
        DeletePolicy::Expunge,
    )
    .await;
    quit(
        store.open("bob", true, View::Normal).await.unwrap(),
        &[1],
        DeletePolicy::Trash,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(patient.sweep(10).await.unwrap(), 0, "within the grace");
    assert_eq!(store.sweep(10).await.unwrap(), 1, "only the expunged one's");
    assert_eq!(count(&db, "SELECT count(*) FROM bodies").await, 2);
    let mut bob = store.open("bob", true, View::Normal).await.unwrap();
    assert_eq!(
        read_all(&mut bob, 0).await.unwrap(),
        b"Delivered-To: bob\nshared\n",
        "a body still referred to is kept"
    );
    quit(bob, &[0], DeletePolicy::Expunge).await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(
        store.sweep(10).await.unwrap(),
        1,
        "the last reference is gone"
    );
    assert_eq!(store.sweep(10).await.unwrap(), 0);
    assert_eq!(
        count(&db, "SELECT count(*) FROM body_chunks").await,
        1,
        "only the trashed message's chunk is left"
    );
}

#[tokio::test]
async fn an_interrupted_delivery_leaves_a_body_for_the_sweep() {
    // Large enough that chunks were written before the reader failed; a body that fails
    // within its first few chunks is never written at all.
    struct Failing;
    impl postie_store::MessageSource for Failing {
        fn len(&self) -> u64 {
            12 * CHUNK as u64
        }
        fn reader(&self) -> io::Result<Box<dyn io::Read + Send + '_>> {
            let first = io::Cursor::new(vec![b'f'; 6 * CHUNK]);
            let broken = FailingRead;
            Ok(Box::new(io::Read::chain(first, broken)))
        }
    }
    struct FailingRead;
    impl io::Read for FailingRead {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::other("the spool file went away"))
        }
    }
    let db = TestDb::create().await;
    let store = db.store(PgOptions {
        sweep_grace: Duration::ZERO,
        ..PgOptions::default()
    });
    let results = store
        .deliver(Delivery {
            message: Arc::new(Failing),
            recipients: vec![recipient("alice")],
        })
        .await;
    assert!(
        matches!(results[..], [Err(StoreError::Temporary(_))]),
        "{results:?}"
    );
    assert!(store
        .open("alice", true, View::Normal)
        .await
        .unwrap()
        .messages()
        .is_empty());
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(store.sweep(10).await.unwrap(), 1);
    assert_eq!(count(&db, "SELECT count(*) FROM body_chunks").await, 0);
}

#[tokio::test]
async fn an_interrupted_small_delivery_leaves_nothing() {
    struct Failing;
    impl postie_store::MessageSource for Failing {
        fn len(&self) -> u64 {
            4096
        }
        fn reader(&self) -> io::Result<Box<dyn io::Read + Send + '_>> {
            Ok(Box::new(io::Read::chain(&[b's'; 100][..], FailingRead)))
        }
    }
    struct FailingRead;
    impl io::Read for FailingRead {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::other("the spool file went away"))
        }
    }
    let db = TestDb::create().await;
    let store = db.store(PgOptions::default());
    for recipients in [
        vec![recipient("alice")],
        vec![recipient("alice"), recipient("bob")],
    ] {
        let results = store
            .deliver(Delivery {
                message: Arc::new(Failing),
                recipients,
            })
            .await;
        assert!(
            results
                .iter()
                .all(|r| matches!(r, Err(StoreError::Temporary(_)))),
            "{results:?}"
        );
    }
    assert_eq!(count(&db, "SELECT count(*) FROM bodies").await, 0);
    assert_eq!(count(&db, "SELECT count(*) FROM messages").await, 0);
}

/// Copies for one maildrop queued while none is being committed go in one transaction; a
/// copy over the quota is refused there without failing the others.
#[tokio::test]
async fn copies_for_one_maildrop_queued_together_commit_together() {
    let db = TestDb::create().await;
    let store = db.store(PgOptions::default());
    let over_two = Recipient {
        quota: Quota {
            bytes: 0,
            messages: 4,
        },
        ..recipient("alice")
    };
    let results = store
        .deliver(Delivery {
            message: Arc::new(b"Subject: six copies\n\nhello\n".to_vec()),
            recipients: vec![over_two; 6],
        })
        .await;
    let delivered = results.iter().filter(|r| r.is_ok()).count();
    let refused = results
        .iter()
        .filter(|r| matches!(r, Err(StoreError::OverQuota(_))))
        .count();
    assert_eq!((delivered, refused), (4, 2), "{results:?}");
    assert_eq!(
        count(&db, "SELECT count(DISTINCT xmin::text) FROM messages").await,
        1,
        "the four copies were added by one transaction"
    );
    assert_eq!(
        count(&db, "SELECT max(uid) FROM messages").await,
        4,
        "consecutive UIDs"
    );
    let usage = store.usage("alice").await.unwrap();
    assert_eq!(usage.messages, 4);
    assert_eq!(
        count(&db, "SELECT refs::bigint FROM bodies").await,
        4,
        "one body, referred to by each copy delivered"
    );
}

/// One of two transactions racing to increment a counter.
struct Racer {
    barrier: Arc<Barrier>,
    attempts: AtomicU32,
}

async fn increment(store: &PgStore, racer: &Racer) -> Result<(), StoreError> {
    store
        .pool()
        .transaction(IsolationLevel::Serializable, racer, |tx, racer| {
            Box::pin(async move {
                let n: i32 = tx
                    .query_one("SELECT n FROM counter WHERE id = 1", &[])
                    .await?
                    .get(0);
                // Both read before either writes, the first time round.
                if racer.attempts.fetch_add(1, Ordering::SeqCst) == 0 {
                    racer.barrier.wait().await;
                }
                tx.execute("UPDATE counter SET n = $1 WHERE id = 1", &[&(n + 1)])
                    .await?;
                Ok(())
            })
        })
        .await
}

/// Two SERIALIZABLE transactions read and then write the same row: one fails to serialize,
/// and the helper runs it again, so both increments land.
#[tokio::test]
async fn the_transaction_helper_retries_serialization_failures() {
    let db = TestDb::create().await;
    db.client()
        .await
        .batch_execute(
            "CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL);
             INSERT INTO counter VALUES (1, 0);",
        )
        .await
        .unwrap();
    let store = db.store(PgOptions::default());
    let barrier = Arc::new(Barrier::new(2));
    let racers = [0, 1].map(|_| Racer {
        barrier: Arc::clone(&barrier),
        attempts: AtomicU32::new(0),
    });
    let (first, second) =
        tokio::join!(increment(&store, &racers[0]), increment(&store, &racers[1]));
    first.expect("the first increment");
    second.expect("the second increment");
    assert_eq!(count(&db, "SELECT n::bigint FROM counter").await, 2);
    let attempts: u32 = racers
        .iter()
        .map(|r| r.attempts.load(Ordering::SeqCst))
        .sum();
    assert_eq!(attempts, 3, "one of them ran twice");
}

#[tokio::test]
async fn migrations_run_once() {
    let db = TestDb::create().await;
    let store = db.store(PgOptions::default());
    assert_eq!(
        store.migrate().await.unwrap(),
        Vec::<i32>::new(),
        "already there"
    );
    assert_eq!(
        count(
            &db,
            "SELECT max(version)::bigint FROM postie_schema_version"
        )
        .await,
        i64::from(SCHEMA_VERSION)
    );
}

#[tokio::test]
async fn migrations_racing_each_other_both_succeed_and_apply_each_once() {
    let db = TestDb::create_empty().await;
    let (first, second) = (db.client().await, db.client().await);
    let (a, b) = tokio::join!(
        postie_store_pg::migrate(&first),
        postie_store_pg::migrate(&second)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let mut applied: Vec<i32> = a.iter().chain(&b).copied().collect();
    applied.sort();
    let every: Vec<i32> = (1..=SCHEMA_VERSION).collect();
    assert_eq!(
        applied, every,
        "each migration applied by exactly one of them"
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM postie_schema_version").await,
        i64::from(SCHEMA_VERSION)
    );
}
