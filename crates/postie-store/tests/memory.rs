//! The in-memory store behaves like the Maildir one where the server can tell.

use std::io::Read;

use postie_store::{DeletePolicy, MailStore, Maildrop, MemoryStore, StoreError};

fn uidls(store: &MemoryStore) -> Vec<String> {
    let drop = store.open("bob", false).unwrap();
    drop.messages().iter().map(|m| m.uidl.clone()).collect()
}

fn deliver(store: &MemoryStore, message: &[u8]) {
    store.deliver("bob", &mut &message[..]).unwrap();
}

#[test]
fn sizes_and_uidls() {
    let store = MemoryStore::new();
    assert!(uidls(&store).is_empty());
    deliver(&store, b"a\nb");
    deliver(&store, b"");
    let mut drop = store.open("bob", true).unwrap();
    let sizes: Vec<u64> = drop.messages().iter().map(|m| m.size).collect();
    assert_eq!(sizes, [6, 0]);
    assert_eq!(drop.messages()[0].uidl, "0000000100000001");
    let mut content = Vec::new();
    drop.open_message(0)
        .unwrap()
        .read_to_end(&mut content)
        .unwrap();
    assert_eq!(content, b"a\nb");
    assert!(matches!(
        drop.open_message(2),
        Err(StoreError::Permanent(_))
    ));
}

#[test]
fn snapshot_ignores_later_deliveries() {
    let store = MemoryStore::new();
    deliver(&store, b"one\n");
    let drop = store.open("bob", true).unwrap();
    deliver(&store, b"two\n");
    assert_eq!(drop.messages().len(), 1);
    drop.commit(&[0], DeletePolicy::Expunge).unwrap();
    assert_eq!(uidls(&store), ["0000000200000001"]);
}

#[test]
fn exclusive_open_is_in_use_until_released() {
    let store = MemoryStore::new();
    let first = store.open("bob", true).unwrap();
    assert!(matches!(store.open("bob", true), Err(StoreError::InUse)));
    assert!(store.open("bob", false).is_ok());
    assert!(store.open("carol", true).is_ok());
    drop(first);
    let second = store.open("bob", true).unwrap();
    second.commit(&[], DeletePolicy::Expunge).unwrap();
    assert!(store.open("bob", true).is_ok());
}

#[test]
fn policies_and_uids_never_reused() {
    let store = MemoryStore::new();
    for message in [&b"1\n"[..], b"2\n", b"3\n"] {
        deliver(&store, message);
    }
    let mut drop = store.open("bob", true).unwrap();
    drop.mark_seen(0).unwrap();
    drop.commit(&[2], DeletePolicy::Expunge).unwrap();
    assert_eq!(store.seen("bob"), ["0000000100000001"]);
    deliver(&store, b"4\n");
    assert_eq!(
        uidls(&store),
        ["0000000100000001", "0000000200000001", "0000000400000001"]
    );

    store
        .open("bob", true)
        .unwrap()
        .commit(&[0], DeletePolicy::Trash)
        .unwrap();
    assert_eq!(store.trashed("bob"), ["0000000100000001"]);
    store
        .open("bob", true)
        .unwrap()
        .commit(&[0], DeletePolicy::Hide)
        .unwrap();
    assert_eq!(store.hidden("bob"), ["0000000200000001"]);
    assert_eq!(uidls(&store), ["0000000400000001"]);
}

#[test]
fn messages_deleted_by_another_session_vanish() {
    let store = MemoryStore::new();
    deliver(&store, b"1\n");
    let mut reader = store.open("bob", false).unwrap();
    store
        .open("bob", true)
        .unwrap()
        .commit(&[0], DeletePolicy::Expunge)
        .unwrap();
    assert!(matches!(
        reader.open_message(0),
        Err(StoreError::Vanished(_))
    ));
    assert!(matches!(reader.mark_seen(0), Err(StoreError::Vanished(_))));
    reader.commit(&[0], DeletePolicy::Expunge).unwrap();
}

#[test]
fn usage_follows_deliveries_and_deletions() {
    let store = MemoryStore::new();
    assert_eq!(store.usage("bob").unwrap().messages, 0);
    deliver(&store, b"12345");
    deliver(&store, b"abc");
    let usage = store.usage("bob").unwrap();
    assert_eq!((usage.messages, usage.bytes), (2, 8));
    store
        .open("bob", true)
        .unwrap()
        .commit(&[0], DeletePolicy::Expunge)
        .unwrap();
    let usage = store.usage("bob").unwrap();
    assert_eq!((usage.messages, usage.bytes), (1, 3));
}
