//! Large maildrops reuse the previous login's snapshot while nothing changed; every change
//! (delivery, flag rename, deletion, another client's rename) is seen by the next login.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use postie_store::View;
use postie_store::{
    DeletePolicy, Delivery, MailStore, MaildirDrop, MaildirStore, Maildrop, Quota, Recipient,
    Update,
};

/// Runs one store call to its end; the Maildir store sends its file work to the blocking pool.
fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a tokio runtime")
        .block_on(future)
}

fn deliver(store: &MaildirStore, message: &[u8]) {
    let delivery = Delivery {
        message: Arc::new(message.to_vec()),
        recipients: vec![Recipient {
            user: "u".to_owned(),
            headers: Vec::new(),
            quota: Quota::default(),
        }],
    };
    let results = block_on(store.deliver(delivery));
    assert!(results.iter().all(Result::is_ok), "{results:?}");
}

fn store_with(count: usize) -> (tempfile::TempDir, MaildirStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = MaildirStore::new(dir.path().join("{user}").to_string_lossy().into_owned());
    for i in 0..count {
        deliver(&store, format!("Subject: {i}\n\nbody {i}\n").as_bytes());
    }
    (dir, store)
}

fn open(store: &MaildirStore) -> MaildirDrop {
    block_on(store.open("u", false, View::Normal)).unwrap()
}

fn uidls(store: &MaildirStore) -> Vec<String> {
    open(store)
        .messages()
        .iter()
        .map(|m| m.uidl.as_str().to_owned())
        .collect()
}

fn read_all(drop: &mut MaildirDrop, index: usize) -> Vec<u8> {
    block_on(postie_store::contract::read_all(drop, index))
}

fn quit(drop: MaildirDrop, update: Update) {
    block_on(drop.quit(update)).unwrap();
}

fn settle() {
    std::thread::sleep(Duration::from_millis(250));
}

#[test]
fn unchanged_logins_agree_and_every_change_is_seen() {
    let (dir, store) = store_with(600);
    let first = uidls(&store);
    settle();
    let second = uidls(&store);
    let third = uidls(&store);
    assert_eq!(first, second);
    assert_eq!(second, third);

    deliver(&store, b"Subject: late\n\nlate\n");
    let after_delivery = uidls(&store);
    assert_eq!(
        after_delivery.len(),
        601,
        "a delivery right after a cached login is seen"
    );
    assert_eq!(&after_delivery[..600], &first[..]);
    settle();
    uidls(&store);

    let mut drop = open(&store);
    assert_eq!(read_all(&mut drop, 0), b"Subject: 0\n\nbody 0\n");
    let update = Update {
        deleted: vec![1],
        retrieved: vec![0],
        policy: DeletePolicy::Expunge,
    };
    quit(drop, update);
    let after_delete = uidls(&store);
    assert_eq!(after_delete.len(), 600);
    assert!(!after_delete.contains(&first[1]));
    assert!(open(&store).messages()[0].seen, "the Seen flag is seen");

    settle();
    uidls(&store);
    // Another client renames a message (sets a flag) behind our back.
    let cur = dir.path().join("u/cur");
    let victim = std::fs::read_dir(&cur)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(":2,"))
        .unwrap();
    std::fs::rename(&victim, format!("{}F", victim.display())).unwrap();
    let mut drop = open(&store);
    let renamed = (0..drop.messages().len()).find(|&i| read_all(&mut drop, i).is_empty());
    assert_eq!(renamed, None, "every message still opens after the rename");
    assert_eq!(uidls(&store), after_delete);
}

#[test]
fn hidden_messages_stay_hidden_for_cached_logins() {
    let (_dir, store) = store_with(520);
    settle();
    uidls(&store);
    let update = Update {
        deleted: vec![0, 5],
        retrieved: Vec::new(),
        policy: DeletePolicy::Hide,
    };
    quit(open(&store), update);
    assert_eq!(uidls(&store).len(), 518);
    settle();
    assert_eq!(uidls(&store).len(), 518);
    assert_eq!(uidls(&store).len(), 518);
}
