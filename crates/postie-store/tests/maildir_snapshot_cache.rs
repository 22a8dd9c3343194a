//! Large maildrops reuse the previous login's snapshot while nothing changed; every change
//! (delivery, flag rename, deletion, another client's rename) is seen by the next login.

use std::io::Read;
use std::time::Duration;

use postie_store::{DeletePolicy, MailStore, MaildirStore, Maildrop};

fn store_with(count: usize) -> (tempfile::TempDir, MaildirStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = MaildirStore::new(dir.path().join("{user}").to_string_lossy().into_owned());
    for i in 0..count {
        store
            .deliver("u", &mut format!("Subject: {i}\n\nbody {i}\n").as_bytes())
            .unwrap();
    }
    (dir, store)
}

fn uidls(store: &MaildirStore) -> Vec<String> {
    let drop = store.open("u", false).unwrap();
    drop.messages().iter().map(|m| m.uidl.clone()).collect()
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

    store
        .deliver("u", &mut &b"Subject: late\n\nlate\n"[..])
        .unwrap();
    let after_delivery = uidls(&store);
    assert_eq!(
        after_delivery.len(),
        601,
        "a delivery right after a cached login is seen"
    );
    assert_eq!(&after_delivery[..600], &first[..]);
    settle();
    uidls(&store);

    let mut drop = store.open("u", false).unwrap();
    drop.mark_seen(0).unwrap();
    let mut body = Vec::new();
    drop.open_message(0)
        .unwrap()
        .read_to_end(&mut body)
        .unwrap();
    assert_eq!(body, b"Subject: 0\n\nbody 0\n");
    drop.commit(&[1], DeletePolicy::Expunge).unwrap();
    let after_delete = uidls(&store);
    assert_eq!(after_delete.len(), 600);
    assert!(!after_delete.contains(&first[1]));

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
    let mut drop = store.open("u", false).unwrap();
    let renamed = (0..drop.messages().len()).find(|&i| {
        let mut text = Vec::new();
        drop.open_message(i)
            .unwrap()
            .read_to_end(&mut text)
            .unwrap();
        text.is_empty()
    });
    assert_eq!(renamed, None, "every message still opens after the rename");
    assert_eq!(uidls(&store), after_delete);
}

#[test]
fn hidden_messages_stay_hidden_for_cached_logins() {
    let (_dir, store) = store_with(520);
    settle();
    uidls(&store);
    let drop = store.open("u", false).unwrap();
    drop.commit(&[0, 5], DeletePolicy::Hide).unwrap();
    assert_eq!(uidls(&store).len(), 518);
    settle();
    assert_eq!(uidls(&store).len(), 518);
    assert_eq!(uidls(&store).len(), 518);
}
