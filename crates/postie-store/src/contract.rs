//! The contract suite: what every store must do, as tests that take any [`MailStore`].
//!
//! A store's test file runs the whole suite with one line,
//! `postie_store::store_contract_tests!(make)`, where `make()` returns `(guard, store)`: a
//! fresh, empty store and whatever keeps it alive (a temporary folder, a database). Each case
//! is a `#[test]` of its own, run on a single-threaded tokio runtime so that the memory
//! check can count this thread's allocations.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::HashSet;
use std::future::Future;
use std::io::{self, Read};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use postie_types::Uidl;

use crate::{
    AfterRetrieval, DeletePolicy, Delivery, MailStore, Maildrop, MessageBody, MessageSource,
    PopSettings, Quota, Recipient, StoreError, Update, View,
};

/// Runs every case of the suite as a `#[test]` against the stores `$make` returns; see the
/// module documentation. Installs [`CountingAllocator`] as the test binary's allocator.
#[macro_export]
macro_rules! store_contract_tests {
    ($make:expr) => {
        #[global_allocator]
        static CONTRACT_ALLOCATOR: $crate::contract::CountingAllocator =
            $crate::contract::CountingAllocator;
        $crate::store_contract_tests!(@cases $make;
            sizes_are_crlf_sizes_and_content_is_kept,
            a_missing_maildrop_opens_empty,
            the_snapshot_ignores_later_deliveries,
            exclusive_opens_exclude_each_other_until_released,
            uidls_are_stable_and_never_reused,
            delete_policies,
            retrieved_messages_are_marked_seen_at_quit,
            a_session_without_quit_changes_nothing,
            a_message_vanished_under_a_session,
            indices_outside_the_snapshot_are_refused,
            quotas_are_checked_in_the_delivery,
            each_recipient_gets_its_own_headers,
            a_large_body_is_read_in_bounded_memory,
            deliveries_racing_a_session,
            pop_settings_are_kept_per_user,
            from_now_on_leaves_older_mail_stored_but_unlisted,
            after_retrieval_choices,
            recent_sessions_see_archived_mail_and_archive_nothing,
        );
    };
    (@cases $make:expr; $($case:ident,)*) => {
        $(
            #[test]
            fn $case() {
                let (_guard, store) = ($make)();
                $crate::contract::run($crate::contract::$case(store));
            }
        )*
    };
}

/// Runs one case on a fresh single-threaded runtime.
pub fn run(case: impl Future<Output = ()>) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(case)
}

const ALICE: &str = "alice";
const BOB: &str = "bob";

fn recipient(user: &str) -> Recipient {
    Recipient {
        user: user.to_owned(),
        headers: Vec::new(),
        quota: Quota::default(),
    }
}

async fn deliver<S: MailStore>(store: &S, user: &str, message: &[u8]) -> Result<(), StoreError> {
    let delivery = Delivery {
        message: Arc::new(message.to_vec()),
        recipients: vec![recipient(user)],
    };
    let mut results = store.deliver(delivery).await;
    assert_eq!(results.len(), 1, "one result per recipient");
    results.remove(0)
}

async fn deliver_ok<S: MailStore>(store: &S, user: &str, message: &[u8]) {
    deliver(store, user, message)
        .await
        .unwrap_or_else(|e| panic!("delivering to {user}: {e}"));
}

async fn open<S: MailStore>(store: &S, user: &str, exclusive: bool) -> S::Maildrop {
    store
        .open(user, exclusive, View::Normal)
        .await
        .unwrap_or_else(|e| panic!("opening {user}'s maildrop: {e}"))
}

async fn uidls<S: MailStore>(store: &S, user: &str) -> Vec<Uidl> {
    let drop = open(store, user, false).await;
    drop.messages().iter().map(|m| m.uidl.clone()).collect()
}

/// Message `index` of `drop`, read whole through its [`MessageBody`].
pub async fn read_all<D: Maildrop>(drop: &mut D, index: usize) -> Vec<u8> {
    let mut body = drop
        .open_message(index)
        .await
        .unwrap_or_else(|e| panic!("opening message {}: {e}", index + 1));
    let mut content = Vec::new();
    let mut buf = vec![0u8; 8192];
    loop {
        let n = body.read(&mut buf).await.expect("reading a message");
        if n == 0 {
            return content;
        }
        assert!(n <= buf.len());
        content.extend_from_slice(&buf[..n]);
    }
}

async fn quit<D: Maildrop>(drop: D, deleted: &[usize], policy: DeletePolicy) {
    let update = Update {
        deleted: deleted.to_vec(),
        retrieved: Vec::new(),
        policy,
    };
    drop.quit(update).await.expect("QUIT");
}

pub async fn sizes_are_crlf_sizes_and_content_is_kept<S: MailStore>(store: S) {
    let messages: [(&[u8], u64); 5] = [
        (b"Subject: lf\n\nbody\n", 21),
        (b"Subject: crlf\r\n\r\nbody\r\n", 23),
        (b"Subject: no final newline\n\nbody", 35),
        (b"", 0),
        (b"mixed\r\nlf\n.dot\n", 17),
    ];
    for (message, _) in &messages {
        deliver_ok(&store, ALICE, message).await;
    }
    let mut drop = open(&store, ALICE, true).await;
    let sizes: Vec<u64> = drop.messages().iter().map(|m| m.size).collect();
    let expected: Vec<u64> = messages.iter().map(|(_, size)| *size).collect();
    assert_eq!(
        sizes, expected,
        "sizes are of the CRLF form, before stuffing"
    );
    for (index, (message, _)) in messages.iter().enumerate() {
        assert_eq!(
            read_all(&mut drop, index).await,
            *message,
            "stored as delivered"
        );
    }
    assert!(drop.messages().iter().all(|m| !m.seen));
}

pub async fn a_missing_maildrop_opens_empty<S: MailStore>(store: S) {
    assert!(open(&store, "nobody-yet", true).await.messages().is_empty());
    assert_eq!(store.usage("nobody-yet").await.unwrap(), Default::default());
}

pub async fn the_snapshot_ignores_later_deliveries<S: MailStore>(store: S) {
    deliver_ok(&store, ALICE, b"one\n").await;
    let mut drop = open(&store, ALICE, true).await;
    deliver_ok(&store, ALICE, b"two\n").await;
    assert_eq!(drop.messages().len(), 1);
    assert_eq!(read_all(&mut drop, 0).await, b"one\n");
    quit(drop, &[0], DeletePolicy::Expunge).await;
    let mut next = open(&store, ALICE, true).await;
    assert_eq!(
        next.messages().len(),
        1,
        "the later delivery waits for the next session"
    );
    assert_eq!(read_all(&mut next, 0).await, b"two\n");
}

pub async fn exclusive_opens_exclude_each_other_until_released<S: MailStore>(store: S) {
    let first = open(&store, ALICE, true).await;
    assert!(matches!(
        store.open(ALICE, true, View::Normal).await,
        Err(StoreError::InUse)
    ));
    drop(open(&store, ALICE, false).await);
    drop(open(&store, BOB, true).await);
    deliver_ok(&store, ALICE, b"delivery is never held up\n").await;
    drop(first);
    let second = open(&store, ALICE, true).await;
    assert_eq!(second.messages().len(), 1);
    quit(second, &[], DeletePolicy::Expunge).await;
    drop(open(&store, ALICE, true).await);
}

pub async fn uidls_are_stable_and_never_reused<S: MailStore>(store: S) {
    for i in 0..3 {
        deliver_ok(&store, ALICE, format!("message {i}\n").as_bytes()).await;
    }
    let first = uidls(&store, ALICE).await;
    assert_eq!(first.len(), 3);
    assert_eq!(first.iter().collect::<HashSet<_>>().len(), 3, "distinct");
    assert_eq!(uidls(&store, ALICE).await, first, "stable across opens");
    // The last one too: a store that numbers from its highest message would reuse it.
    quit(
        open(&store, ALICE, true).await,
        &[1, 2],
        DeletePolicy::Expunge,
    )
    .await;
    deliver_ok(&store, ALICE, b"later\n").await;
    let after = uidls(&store, ALICE).await;
    assert_eq!(after.len(), 2);
    assert_eq!(after[0], first[0], "the survivor keeps its UIDL");
    assert!(
        !first.contains(&after[1]),
        "a new message never reuses a UIDL"
    );
}

pub async fn delete_policies<S: MailStore>(store: S) {
    for (user, policy, counted) in [
        ("expunge", DeletePolicy::Expunge, 1),
        ("trash", DeletePolicy::Trash, 1),
        ("hide", DeletePolicy::Hide, 2),
    ] {
        deliver_ok(&store, user, b"first\n").await;
        deliver_ok(&store, user, b"second\n").await;
        let before = uidls(&store, user).await;
        quit(open(&store, user, true).await, &[0], policy).await;
        let mut drop = open(&store, user, true).await;
        assert_eq!(
            drop.messages().iter().map(|m| &m.uidl).collect::<Vec<_>>(),
            [&before[1]],
            "{policy:?}: gone from POP3, the other one kept"
        );
        assert_eq!(read_all(&mut drop, 0).await, b"second\n");
        let usage = store.usage(user).await.unwrap();
        assert_eq!(
            usage.messages, counted,
            "{policy:?}: what still takes space"
        );
    }
}

pub async fn pop_settings_are_kept_per_user<S: MailStore>(store: S) {
    assert_eq!(
        store.pop_settings(ALICE).await.unwrap(),
        PopSettings::default()
    );
    let chosen = PopSettings {
        since: Some(UNIX_EPOCH + Duration::from_secs(1_800_000_000)),
        after_retrieval: AfterRetrieval::Archive,
    };
    store.set_pop_settings(ALICE, chosen).await.unwrap();
    assert_eq!(store.pop_settings(ALICE).await.unwrap(), chosen);
    assert_eq!(
        store.pop_settings(BOB).await.unwrap(),
        PopSettings::default()
    );
    store
        .set_pop_settings(ALICE, PopSettings::default())
        .await
        .unwrap();
    assert_eq!(
        store.pop_settings(ALICE).await.unwrap(),
        PopSettings::default()
    );
}

/// Clock steps between deliveries and the moment a user chooses "from now on", so the order
/// of the three is unambiguous for stores that keep delivery times to the microsecond.
async fn tick() {
    tokio::time::sleep(Duration::from_millis(20)).await;
}

pub async fn from_now_on_leaves_older_mail_stored_but_unlisted<S: MailStore>(store: S) {
    deliver_ok(&store, ALICE, b"before\n").await;
    tick().await;
    let chosen = PopSettings {
        since: Some(SystemTime::now()),
        ..PopSettings::default()
    };
    store.set_pop_settings(ALICE, chosen).await.unwrap();
    tick().await;
    deliver_ok(&store, ALICE, b"after\n").await;
    for view in [View::Normal, View::Recent] {
        let mut drop = store.open(ALICE, false, view).await.unwrap();
        assert_eq!(drop.messages().len(), 1, "{view:?}: only mail from now on");
        assert_eq!(read_all(&mut drop, 0).await, b"after\n");
    }
    assert_eq!(
        store.usage(ALICE).await.unwrap().messages,
        2,
        "still stored"
    );
    store
        .set_pop_settings(ALICE, PopSettings::default())
        .await
        .unwrap();
    assert_eq!(uidls(&store, ALICE).await.len(), 2, "all mail again");
}

pub async fn after_retrieval_choices<S: MailStore>(store: S) {
    // (choice, listed afterwards, still counted, listed to a recent: session)
    for (choice, listed, counted, recent) in [
        (AfterRetrieval::Keep, 2, 2, 2),
        (AfterRetrieval::Archive, 1, 2, 2),
        (AfterRetrieval::Trash, 1, 1, 1),
        (AfterRetrieval::Delete, 1, 1, 1),
    ] {
        let user = choice.as_str();
        deliver_ok(&store, user, b"first\n").await;
        deliver_ok(&store, user, b"second\n").await;
        let settings = PopSettings {
            after_retrieval: choice,
            ..PopSettings::default()
        };
        store.set_pop_settings(user, settings).await.unwrap();
        let drop = open(&store, user, true).await;
        let update = Update {
            retrieved: vec![0],
            ..Update::default()
        };
        drop.quit(update).await.expect("QUIT");
        let mut drop = open(&store, user, true).await;
        assert_eq!(drop.messages().len(), listed, "{choice:?}: listed");
        let last = drop.messages().len() - 1;
        assert_eq!(read_all(&mut drop, last).await, b"second\n", "{choice:?}");
        drop_session(drop);
        let usage = store.usage(user).await.unwrap();
        assert_eq!(
            usage.messages, counted,
            "{choice:?}: what still takes space"
        );
        let recent_view = store.open(user, false, View::Recent).await.unwrap();
        assert_eq!(recent_view.messages().len(), recent, "{choice:?}: recent:");
    }
}

pub async fn recent_sessions_see_archived_mail_and_archive_nothing<S: MailStore>(store: S) {
    let archive = PopSettings {
        after_retrieval: AfterRetrieval::Archive,
        ..PopSettings::default()
    };
    store.set_pop_settings(ALICE, archive).await.unwrap();
    for i in 0..3 {
        deliver_ok(&store, ALICE, format!("message {i}\n").as_bytes()).await;
    }
    let everything = uidls(&store, ALICE).await;
    let laptop = open(&store, ALICE, true).await;
    let update = Update {
        retrieved: vec![0],
        ..Update::default()
    };
    laptop.quit(update).await.expect("QUIT");
    assert_eq!(uidls(&store, ALICE).await, everything[1..], "archived");

    // The phone sees every message, the archived one too, and its retrievals archive
    // nothing; its deletions apply as anyone's.
    let phone = store.open(ALICE, true, View::Recent).await.unwrap();
    let listed: Vec<Uidl> = phone.messages().iter().map(|m| m.uidl.clone()).collect();
    assert_eq!(listed, everything);
    let update = Update {
        retrieved: vec![0, 1, 2],
        deleted: vec![2],
        policy: DeletePolicy::Expunge,
    };
    phone.quit(update).await.expect("QUIT");
    assert_eq!(uidls(&store, ALICE).await, everything[1..2]);
    let again = store.open(ALICE, false, View::Recent).await.unwrap();
    assert_eq!(again.messages().len(), 2, "the deleted one is gone for all");
}

pub async fn retrieved_messages_are_marked_seen_at_quit<S: MailStore>(store: S) {
    for i in 0..3 {
        deliver_ok(&store, ALICE, format!("message {i}\n").as_bytes()).await;
    }
    let drop = open(&store, ALICE, true).await;
    let uidl = |i: usize| drop.messages()[i].uidl.clone();
    let (kept, unread) = (uidl(0), uidl(2));
    let update = Update {
        deleted: vec![1],
        retrieved: vec![0, 1, 0],
        policy: DeletePolicy::Expunge,
    };
    drop.quit(update).await.expect("QUIT");
    let next = open(&store, ALICE, true).await;
    let seen: Vec<(Uidl, bool)> = next
        .messages()
        .iter()
        .map(|m| (m.uidl.clone(), m.seen))
        .collect();
    assert_eq!(seen, [(kept, true), (unread, false)]);
}

pub async fn a_session_without_quit_changes_nothing<S: MailStore>(store: S) {
    deliver_ok(&store, ALICE, b"keep me\n").await;
    let mut drop = open(&store, ALICE, true).await;
    let _ = read_all(&mut drop, 0).await;
    drop_session(drop);
    let after = open(&store, ALICE, true).await;
    assert_eq!(after.messages().len(), 1);
    assert!(!after.messages()[0].seen);
}

fn drop_session<D>(session: D) {
    drop(session);
}

pub async fn a_message_vanished_under_a_session<S: MailStore>(store: S) {
    deliver_ok(&store, ALICE, b"one\n").await;
    deliver_ok(&store, ALICE, b"two\n").await;
    let mut watcher = open(&store, ALICE, false).await;
    quit(
        open(&store, ALICE, false).await,
        &[0],
        DeletePolicy::Expunge,
    )
    .await;
    assert!(matches!(
        watcher.open_message(0).await,
        Err(StoreError::Vanished(1))
    ));
    assert_eq!(read_all(&mut watcher, 1).await, b"two\n");
    quit(watcher, &[0], DeletePolicy::Expunge).await;
    assert_eq!(uidls(&store, ALICE).await.len(), 1);
}

pub async fn indices_outside_the_snapshot_are_refused<S: MailStore>(store: S) {
    deliver_ok(&store, ALICE, b"only\n").await;
    let mut drop = open(&store, ALICE, true).await;
    assert!(matches!(
        drop.open_message(1).await,
        Err(StoreError::Permanent(_))
    ));
    let update = Update {
        deleted: vec![0, 1],
        retrieved: Vec::new(),
        policy: DeletePolicy::Expunge,
    };
    assert!(drop.quit(update).await.is_err());
    assert_eq!(uidls(&store, ALICE).await.len(), 1, "nothing was changed");
}

pub async fn quotas_are_checked_in_the_delivery<S: MailStore>(store: S) {
    let limited = |bytes, messages| Recipient {
        quota: Quota { bytes, messages },
        ..recipient(ALICE)
    };
    let message = Arc::new(vec![b'x'; 60]);
    let mut deliveries = Vec::new();
    for quota in [limited(100, 0), limited(100, 0), limited(0, 1)] {
        let delivery = Delivery {
            message: message.clone(),
            recipients: vec![quota, recipient(BOB)],
        };
        deliveries.push(store.deliver(delivery).await);
    }
    let over = |r: &Result<(), StoreError>| matches!(r, Err(StoreError::OverQuota(_)));
    assert!(deliveries[0].iter().all(Result::is_ok));
    assert!(over(&deliveries[1][0]), "120 octets > 100");
    assert!(over(&deliveries[2][0]), "2 messages > 1");
    assert!(
        deliveries.iter().all(|d| d[1].is_ok()),
        "other recipients still get theirs"
    );
    assert_eq!(uidls(&store, ALICE).await.len(), 1);
    assert_eq!(uidls(&store, BOB).await.len(), 3);
    let usage = store.usage(ALICE).await.unwrap();
    assert_eq!((usage.bytes, usage.messages), (60, 1));
}

pub async fn each_recipient_gets_its_own_headers<S: MailStore>(store: S) {
    let delivery = Delivery {
        message: Arc::new(b"Subject: shared\n\nbody\n".to_vec()),
        recipients: vec![
            Recipient {
                headers: b"Delivered-To: alice\n".to_vec(),
                ..recipient(ALICE)
            },
            Recipient {
                headers: b"Delivered-To: bob\n".to_vec(),
                ..recipient(BOB)
            },
        ],
    };
    let results = store.deliver(delivery).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    for user in [ALICE, BOB] {
        let mut drop = open(&store, user, true).await;
        let expected = format!("Delivered-To: {user}\nSubject: shared\n\nbody\n");
        assert_eq!(read_all(&mut drop, 0).await, expected.as_bytes());
        let lines = expected.bytes().filter(|&b| b == b'\n').count();
        assert_eq!(drop.messages()[0].size, (expected.len() + lines) as u64);
    }
}

/// 64 MiB in 78-octet lines, made as they are read rather than held.
struct Generated {
    len: u64,
}

impl Generated {
    fn byte_at(offset: u64) -> u8 {
        match offset % 78 {
            77 => b'\n',
            column => b'a' + ((offset / 78 + column) % 26) as u8,
        }
    }
}

struct GeneratedReader {
    at: u64,
    len: u64,
}

impl Read for GeneratedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min((self.len - self.at) as usize);
        for (i, byte) in buf[..n].iter_mut().enumerate() {
            *byte = Generated::byte_at(self.at + i as u64);
        }
        self.at += n as u64;
        Ok(n)
    }
}

impl MessageSource for Generated {
    fn len(&self) -> u64 {
        self.len
    }

    fn reader(&self) -> io::Result<Box<dyn Read + Send + '_>> {
        Ok(Box::new(GeneratedReader {
            at: 0,
            len: self.len,
        }))
    }
}

/// What the reader of a message may hold in memory, whatever the message's size.
const READ_MEMORY_BOUND: isize = 8 << 20;

pub async fn a_large_body_is_read_in_bounded_memory<S: MailStore>(store: S) {
    let len = 78 * 860_000;
    let delivery = Delivery {
        message: Arc::new(Generated { len }),
        recipients: vec![recipient(ALICE)],
    };
    let results = store.deliver(delivery).await;
    assert!(results[0].is_ok(), "{results:?}");
    let mut drop = open(&store, ALICE, true).await;
    assert_eq!(drop.messages()[0].size, len + len / 78);
    let mut buf = vec![0u8; 64 * 1024];
    let start = CountingAllocator::reset_peak();
    let mut body = drop.open_message(0).await.expect("opening the message");
    let mut at = 0u64;
    loop {
        let n = body.read(&mut buf).await.expect("reading the message");
        if n == 0 {
            break;
        }
        let wrong = (0..n).find(|&i| buf[i] != Generated::byte_at(at + i as u64));
        assert_eq!(wrong, None, "content differs near octet {at}");
        at += n as u64;
    }
    drop_session(body);
    let grown = CountingAllocator::peak() - start;
    assert_eq!(at, len, "the whole message was read");
    assert!(
        grown < READ_MEMORY_BOUND,
        "reading 64 MiB held {grown} octets at once (bound {READ_MEMORY_BOUND})"
    );
}

pub async fn deliveries_racing_a_session<S: MailStore + Clone>(store: S) {
    const WRITERS: usize = 4;
    const EACH: usize = 10;
    for i in 0..5 {
        deliver_ok(&store, ALICE, format!("before {i}\n").as_bytes()).await;
    }
    let mut session = open(&store, ALICE, true).await;
    let old: Vec<Uidl> = session.messages().iter().map(|m| m.uidl.clone()).collect();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..EACH {
                    deliver_ok(&store, ALICE, format!("racer {w} {i}\n").as_bytes()).await;
                }
            })
        })
        .collect();
    for index in 0..old.len() {
        let content = read_all(&mut session, index).await;
        assert_eq!(content, format!("before {index}\n").as_bytes());
        tokio::task::yield_now().await;
    }
    assert_eq!(
        session.messages().len(),
        old.len(),
        "the snapshot stays fixed"
    );
    let update = Update {
        deleted: (0..old.len()).collect(),
        retrieved: (0..old.len()).collect(),
        policy: DeletePolicy::Expunge,
    };
    session.quit(update).await.expect("QUIT");
    for writer in writers {
        writer.await.expect("a delivery task");
    }
    let mut after = open(&store, ALICE, true).await;
    let uidls: HashSet<Uidl> = after.messages().iter().map(|m| m.uidl.clone()).collect();
    assert_eq!(
        uidls.len(),
        WRITERS * EACH,
        "every racer's message, each once"
    );
    assert!(
        old.iter().all(|u| !uidls.contains(u)),
        "the deleted are gone"
    );
    let mut contents = HashSet::new();
    for index in 0..after.messages().len() {
        contents.insert(read_all(&mut after, index).await);
    }
    assert_eq!(contents.len(), WRITERS * EACH);
}

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

/// The system allocator, counting the octets each thread has allocated and not freed, and
/// their high-water mark, for the suite's memory bound.
pub struct CountingAllocator;

impl CountingAllocator {
    /// Starts a new high-water mark at this thread's current count, and returns that count.
    pub fn reset_peak() -> isize {
        let live = LIVE.with(Cell::get);
        PEAK.with(|peak| peak.set(live));
        live
    }

    /// This thread's high-water mark since [`CountingAllocator::reset_peak`].
    pub fn peak() -> isize {
        PEAK.with(Cell::get)
    }

    fn note(delta: isize) {
        // try_with: allocations still happen while a thread's locals are torn down.
        let _ = LIVE.try_with(|live| {
            let now = live.get() + delta;
            live.set(now);
            let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
        });
    }
}

// SAFETY: every call is passed to `System` unchanged; the bookkeeping touches only
// const-initialised thread-locals, which never allocate.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = System.alloc(layout);
        if !ptr.is_null() {
            Self::note(layout.size() as isize);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        Self::note(-(layout.size() as isize));
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = System.alloc_zeroed(layout);
        if !ptr.is_null() {
            Self::note(layout.size() as isize);
        }
        ptr
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let moved = System.realloc(ptr, layout, new_size);
        if !moved.is_null() {
            Self::note(new_size as isize - layout.size() as isize);
        }
        moved
    }
}
