//! The Maildir store seen from outside: what the server and other Maildir readers observe.
//! What every store must do is the contract suite's (tests/maildir_contract.rs); these are the
//! Maildir's own: names, flags, folders, the index and Dovecot's.

use std::ffi::OsStr;
use std::fs;
use std::future::Future;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use postie_store::View;
use postie_store::{
    DeletePolicy, Delivery, MailStore, MaildirDrop, MaildirStore, Maildrop, MessageBody,
    MessageSource, Quota, Recipient, StoreError, Update,
};
use tempfile::TempDir;

/// Runs one store call to its end; the Maildir store sends its file work to the blocking pool.
fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a tokio runtime")
        .block_on(future)
}

struct Fixture {
    _dir: TempDir,
    store: MaildirStore,
    maildir: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("{user}/Maildir");
    let store = MaildirStore::new(template.to_str().unwrap().to_owned());
    let maildir = store.maildir_path("alice").unwrap();
    Fixture {
        _dir: dir,
        store,
        maildir,
    }
}

impl Fixture {
    fn deliver(&self, message: &[u8]) {
        deliver(&self.store, "alice", Arc::new(message.to_vec())).unwrap();
    }

    fn open(&self) -> MaildirDrop {
        block_on(self.store.open("alice", true, View::Normal)).unwrap()
    }

    fn uidls(&self) -> Vec<String> {
        uidls(&block_on(self.store.open("alice", false, View::Normal)).unwrap())
    }

    fn names(&self, sub: &str) -> Vec<String> {
        names(&self.maildir.join(sub))
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

fn deliver(
    store: &MaildirStore,
    user: &str,
    message: Arc<dyn MessageSource>,
) -> Result<(), StoreError> {
    let delivery = Delivery {
        message,
        recipients: vec![Recipient {
            user: user.to_owned(),
            headers: Vec::new(),
            quota: Quota::default(),
        }],
    };
    let mut results = block_on(store.deliver(delivery));
    assert_eq!(results.len(), 1);
    results.remove(0)
}

fn uidls(drop: &MaildirDrop) -> Vec<String> {
    drop.messages()
        .iter()
        .map(|m| m.uidl.as_str().to_owned())
        .collect()
}

fn read_all(drop: &mut MaildirDrop, index: usize) -> Vec<u8> {
    block_on(postie_store::contract::read_all(drop, index))
}

fn open_message(drop: &mut MaildirDrop, index: usize) -> Result<(), StoreError> {
    block_on(drop.open_message(index)).map(|_| ())
}

/// Ends `drop`'s session with QUIT.
fn quit(drop: MaildirDrop, update: Update) {
    block_on(drop.quit(update)).unwrap();
}

fn delete(drop: MaildirDrop, deleted: &[usize], policy: DeletePolicy) {
    let update = Update {
        deleted: deleted.to_vec(),
        retrieved: Vec::new(),
        policy,
    };
    quit(drop, update);
}

fn retrieve(drop: MaildirDrop, retrieved: &[usize]) {
    let update = Update {
        retrieved: retrieved.to_vec(),
        ..Update::default()
    };
    quit(drop, update);
}

/// The size rule of `postie_store::crlf`, written out on a whole message.
fn wire_size(message: &[u8]) -> u64 {
    let mut out = Vec::new();
    for (i, &b) in message.iter().enumerate() {
        if b == b'\n' && (i == 0 || message[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    if !out.is_empty() && !out.ends_with(b"\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.len() as u64
}

fn uid_of(uidl: &str) -> u32 {
    u32::from_str_radix(&uidl[..8], 16).unwrap()
}

#[test]
fn delivered_messages_list_with_their_crlf_sizes() {
    let f = fixture();
    let messages: [&[u8]; 7] = [
        b"Subject: lf\n\nbody\n",
        b"Subject: crlf\r\n\r\nbody\r\n",
        b"Subject: mixed\r\n\nline\nline\r\n",
        b"Subject: no final newline\n\nbody",
        b"",
        b"Subject: 8bit\n\n\xe9t\xe9 \x00\x00 \xff\r\r\n.\n",
        b"\r",
    ];
    for message in messages {
        f.deliver(message);
    }
    assert_eq!(f.names("new").len(), messages.len());
    for name in f.names("new") {
        assert!(name.contains(",S=") && name.contains(",W="), "{name}");
    }

    let mut drop = f.open();
    assert_eq!(drop.messages().len(), messages.len());
    for (index, message) in messages.iter().enumerate() {
        assert_eq!(
            drop.messages()[index].size,
            wire_size(message),
            "{message:?}"
        );
        assert_eq!(read_all(&mut drop, index), *message);
    }
    assert!(f.names("new").is_empty());
    assert!(f.names("cur").iter().all(|n| n.ends_with(":2,")));
    assert!(f.names("tmp").is_empty());
}

#[test]
fn maildir_is_created_private() {
    let f = fixture();
    f.deliver(b"x\n");
    for sub in ["", "tmp", "new", "cur"] {
        let mode = fs::metadata(f.maildir.join(sub))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700, "{sub}");
    }
}

#[test]
fn unsafe_user_names_are_refused() {
    let f = fixture();
    for user in ["", ".", "..", "../bob", "a/b", "a\0b", "x/../../etc"] {
        assert!(
            matches!(
                block_on(f.store.open(user, false, View::Normal)),
                Err(StoreError::Permanent(_))
            ),
            "{user:?}"
        );
        let delivered = deliver(&f.store, user, Arc::new(b"x".to_vec()));
        assert!(
            matches!(delivered, Err(StoreError::Permanent(_))),
            "{user:?}"
        );
        assert!(
            matches!(block_on(f.store.usage(user)), Err(StoreError::Permanent(_))),
            "{user:?}"
        );
    }
}

#[test]
fn uidls_are_stable_across_opens_and_flag_changes() {
    let f = fixture();
    for i in 0..3 {
        f.deliver(format!("Subject: {i}\n\n").as_bytes());
    }
    let first = f.uidls();
    assert_eq!(first.len(), 3);
    let uidvalidity = &first[0][8..];
    for (i, uidl) in first.iter().enumerate() {
        assert_eq!(uidl.len(), 16);
        assert!(uidl
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        assert_eq!(uid_of(uidl), i as u32 + 1);
        assert_eq!(&uidl[8..], uidvalidity);
    }

    retrieve(f.open(), &[1, 1]);
    let seen: Vec<String> = f
        .names("cur")
        .into_iter()
        .filter(|n| n.ends_with(":2,S"))
        .collect();
    assert_eq!(seen.len(), 1);

    // Another client sets flags of its own.
    let other = f
        .names("cur")
        .into_iter()
        .find(|n| n.ends_with(":2,"))
        .unwrap();
    let cur = f.maildir.join("cur");
    fs::rename(cur.join(&other), cur.join(format!("{other}FT"))).unwrap();

    assert_eq!(f.uidls(), first);
    let drop = f.open();
    let seen: Vec<bool> = drop.messages().iter().map(|m| m.seen).collect();
    assert_eq!(seen, [false, true, false]);
    retrieve(drop, &[0, 1, 2]);
    assert!(f.names("cur").iter().any(|n| n.ends_with(":2,FST")));
    assert_eq!(f.uidls(), first);
    assert!(f.open().messages().iter().all(|m| m.seen));
}

/// The contract checks that a UIDL is never given twice; here, that uids go on from the highest
/// ever given, as Dovecot's do, even when that message was deleted.
#[test]
fn uids_are_never_reused() {
    let f = fixture();
    for i in 0..3 {
        f.deliver(format!("{i}\n").as_bytes());
    }
    delete(f.open(), &[2], DeletePolicy::Expunge);
    f.deliver(b"3\n");
    let uids: Vec<u32> = f.uidls().iter().map(|u| uid_of(u)).collect();
    assert_eq!(uids, [1, 2, 4]);

    // Even when the newest message went before any session listed the next one.
    delete(f.open(), &[2], DeletePolicy::Expunge);
    f.deliver(b"4\n");
    let uids: Vec<u32> = f.uidls().iter().map(|u| uid_of(u)).collect();
    assert_eq!(uids, [1, 2, 5]);
}

#[test]
fn new_messages_are_numbered_in_arrival_order() {
    let f = fixture();
    f.deliver(b"first\n");
    let new = f.maildir.join("new");
    // Delivered by other software: an earlier timestamp, and a name of no known shape.
    fs::write(new.join("1000000000.M5P1.elsewhere,S=4,W=5"), b"old\n").unwrap();
    fs::write(new.join("999999999.M7P1.elsewhere"), b"older\n").unwrap();
    fs::write(new.join("notime"), b"odd\n").unwrap();
    let mut drop = f.open();
    let contents: Vec<Vec<u8>> = (0..4).map(|i| read_all(&mut drop, i)).collect();
    assert_eq!(contents, [&b"older\n"[..], b"old\n", b"first\n", b"odd\n"]);
    let uids: Vec<u32> = uidls(&drop).iter().map(|u| uid_of(u)).collect();
    assert_eq!(uids, [1, 2, 3, 4]);
}

/// What Dovecot 2.3.19 left in a Maildir after four deliveries by dovecot-lda, a POP3 session
/// that retrieved message 4 and deleted message 2, a fifth delivery, a message dropped into
/// new/ by another program, `doveadm force-resync` and `doveadm expunge uid 1`.
const DOVECOT_UIDLIST: &str = "3 V1795738008 N7 Ge792e52b98c9086be720000083ecc375
1 :1795738008.M736426P8423.vm,S=20,W=23
3 :1795738008.M760937P8429.vm,S=20,W=23
4 :1795738008.M770636P8431.vm,S=28,W=30
5 :1795738017.M536890P8509.vm,S=18,W=21
6 W21 :1795738100.M1P1.other
";

fn dovecot_maildir(f: &Fixture) {
    for sub in ["tmp", "new", "cur"] {
        fs::create_dir_all(f.maildir.join(sub)).unwrap();
    }
    fs::write(f.maildir.join("dovecot-uidlist"), DOVECOT_UIDLIST).unwrap();
    let cur = f.maildir.join("cur");
    let new = f.maildir.join("new");
    fs::write(
        cur.join("1795738008.M760937P8429.vm,S=20,W=23:2,"),
        b"Subject: m3\n\nbody 3\n",
    )
    .unwrap();
    fs::write(
        cur.join("1795738008.M770636P8431.vm,S=28,W=30:2,S"),
        b"Subject: nofinal\n\nno newline",
    )
    .unwrap();
    fs::write(
        new.join("1795738017.M536890P8509.vm,S=18,W=21"),
        b"Subject: m5\n\nbody\n",
    )
    .unwrap();
    fs::write(new.join("1795738100.M1P1.other"), b"Subject: plain\n\nx\n").unwrap();
}

#[test]
fn a_maildir_dovecot_served_keeps_dovecot_uidls() {
    let f = fixture();
    dovecot_maildir(&f);
    // Dovecot 2.3.19 answered LIST and UIDL on this Maildir with exactly these.
    let dovecot_said = [
        (23, "000000036b08c998"),
        (30, "000000046b08c998"),
        (21, "000000056b08c998"),
        (21, "000000066b08c998"),
    ];
    let listed = |drop: &MaildirDrop| -> Vec<(u64, String)> {
        drop.messages()
            .iter()
            .map(|m| (m.size, m.uidl.as_str().to_owned()))
            .collect()
    };
    let expected: Vec<(u64, String)> = dovecot_said
        .iter()
        .map(|&(s, u)| (s, u.to_owned()))
        .collect();
    let drop = f.open();
    assert_eq!(listed(&drop), expected);
    // The message of uid 4 was retrieved under Dovecot: its name has the Seen flag.
    let seen: Vec<bool> = drop.messages().iter().map(|m| m.seen).collect();
    assert_eq!(seen, [false, true, false, false]);
    quit(drop, Update::default());
    assert!(f.maildir.join("postie-uidlist").exists());
    assert_eq!(listed(&f.open()), expected);

    // Dovecot had used uids up to 6: the next message gets 7.
    f.deliver(b"Subject: after\n\n");
    let uidls = f.uidls();
    assert_eq!(uidls.last().unwrap(), "000000076b08c998");
}

#[test]
fn messages_dovecot_numbered_after_the_switch_keep_dovecot_uids() {
    let f = fixture();
    dovecot_maildir(&f);
    quit(f.open(), Update::default());
    // Dovecot, still serving IMAP, numbers a message before any POP3 session sees it.
    fs::write(f.maildir.join("new/1795739000.M1P9.vm,S=2,W=3"), b"x\n").unwrap();
    let mut uidlist = DOVECOT_UIDLIST.to_owned();
    uidlist.push_str("9 :1795739000.M1P9.vm,S=2,W=3\n");
    fs::write(f.maildir.join("dovecot-uidlist"), uidlist).unwrap();
    assert_eq!(f.uidls().last().unwrap(), "000000096b08c998");
    f.deliver(b"y\n");
    assert_eq!(f.uidls().last().unwrap(), "0000000a6b08c998");
}

#[test]
fn expunge_unlinks() {
    let f = fixture();
    for i in 0..3 {
        f.deliver(format!("{i}\n").as_bytes());
    }
    let before = f.uidls();
    delete(f.open(), &[0, 2, 0], DeletePolicy::Expunge);
    assert_eq!(f.names("cur").len(), 1);
    assert_eq!(f.uidls(), [before[1].clone()]);
    assert!(!f.maildir.join(".Trash").exists());
}

#[test]
fn trash_moves_to_the_trash_folder() {
    let f = fixture();
    f.deliver(b"keep\n");
    f.deliver(b"trash me\n");
    let drop = f.open();
    // Names do not sort in delivery order (their microseconds are not zero-padded).
    let trashed = f
        .names("cur")
        .into_iter()
        .find(|name| fs::read(f.maildir.join("cur").join(name)).unwrap() == b"trash me\n")
        .unwrap();
    delete(drop, &[1], DeletePolicy::Trash);
    let trash = f.maildir.join(".Trash");
    assert!(trash.join("maildirfolder").is_file());
    assert!(trash.join("tmp").is_dir() && trash.join("new").is_dir());
    assert_eq!(names(&trash.join("cur")), std::slice::from_ref(&trashed));
    assert_eq!(
        fs::read(trash.join("cur").join(&trashed)).unwrap(),
        b"trash me\n"
    );
    assert_eq!(f.uidls().len(), 1);

    // Once the folder exists, trashing again works the same.
    delete(f.open(), &[0], DeletePolicy::Trash);
    assert_eq!(names(&trash.join("cur")).len(), 2);
    assert!(f.uidls().is_empty());
}

#[test]
fn hide_keeps_the_file_but_never_lists_it_again() {
    let f = fixture();
    for i in 0..3 {
        f.deliver(format!("{i}\n").as_bytes());
    }
    let before = f.uidls();
    delete(f.open(), &[1], DeletePolicy::Hide);
    assert_eq!(f.names("cur").len(), 3);
    assert_eq!(f.uidls(), [before[0].clone(), before[2].clone()]);
    // The hidden file's flags change; it stays hidden.
    let cur = f.maildir.join("cur");
    for name in f.names("cur") {
        fs::rename(cur.join(&name), cur.join(format!("{name}S"))).unwrap();
    }
    assert_eq!(f.uidls(), [before[0].clone(), before[2].clone()]);
    let index = fs::read_to_string(f.maildir.join("postie-uidlist")).unwrap();
    assert!(index.lines().any(|l| l.starts_with("2 H :")), "{index}");
}

#[test]
fn renamed_messages_are_still_found() {
    let f = fixture();
    f.deliver(b"one\n");
    f.deliver(b"two\n");
    let mut drop = f.open();
    let cur = f.maildir.join("cur");
    for name in f.names("cur") {
        fs::rename(cur.join(&name), cur.join(format!("{name}F"))).unwrap();
    }
    assert_eq!(read_all(&mut drop, 1), b"two\n");
    for name in f.names("cur") {
        fs::rename(cur.join(&name), cur.join(format!("{name}T"))).unwrap();
    }
    let update = Update {
        deleted: vec![1],
        retrieved: vec![0],
        policy: DeletePolicy::Expunge,
    };
    quit(drop, update);
    let kept = f.names("cur");
    assert_eq!(kept.len(), 1);
    assert!(kept[0].ends_with(":2,FST"), "{kept:?}");
    assert_eq!(fs::read(cur.join(&kept[0])).unwrap(), b"one\n");

    let drop = f.open();
    fs::rename(
        cur.join(&kept[0]),
        cur.join(kept[0].replace(":2,FST", ":2,")),
    )
    .unwrap();
    delete(drop, &[0], DeletePolicy::Expunge);
    assert!(f.names("cur").is_empty());
}

#[test]
fn messages_removed_by_another_client_meanwhile() {
    let f = fixture();
    for i in 0..3 {
        f.deliver(format!("{i}\n").as_bytes());
    }
    let mut drop = f.open();
    // Another client expunges messages 1 and 2, straight from the Maildir.
    let cur = f.maildir.join("cur");
    // By content: names do not sort in delivery order (their microseconds are not padded).
    for victim in f.names("cur") {
        if fs::read(cur.join(&victim)).unwrap() != b"2\n" {
            fs::remove_file(cur.join(victim)).unwrap();
        }
    }
    assert!(matches!(
        open_message(&mut drop, 0),
        Err(StoreError::Vanished(1))
    ));
    // Deleting one is no error, and a Seen flag that cannot be set does not keep the others'.
    let update = Update {
        deleted: vec![0],
        retrieved: vec![1, 2],
        policy: DeletePolicy::Expunge,
    };
    quit(drop, update);
    let left = f.names("cur");
    assert_eq!(left.len(), 1);
    assert!(left[0].ends_with(":2,S"), "{left:?}");
}

/// A message that cannot be read past half its length, like one from a dropped SMTP connection.
struct Failing;

const FAILING_LEN: usize = 200_000;

impl MessageSource for Failing {
    fn len(&self) -> u64 {
        FAILING_LEN as u64
    }

    fn reader(&self) -> io::Result<Box<dyn Read + Send + '_>> {
        Ok(Box::new(FailingReader { sent: 0 }))
    }
}

struct FailingReader {
    sent: usize,
}

impl Read for FailingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.sent >= FAILING_LEN / 2 {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "peer went away",
            ));
        }
        let n = buf.len().min(4096);
        buf[..n].fill(b'x');
        self.sent += n;
        Ok(n)
    }
}

#[test]
fn failed_delivery_leaves_nothing_behind() {
    let f = fixture();
    f.deliver(b"before\n");
    let result = deliver(&f.store, "alice", Arc::new(Failing));
    assert!(
        matches!(result, Err(StoreError::Temporary(_))),
        "{result:?}"
    );
    assert!(f.names("tmp").is_empty());
    assert_eq!(f.names("new").len(), 1);
    assert!(f.names("cur").is_empty());
    assert_eq!(f.uidls().len(), 1);
}

fn corrupt_index(f: &Fixture, edit: impl FnOnce(&str) -> String) {
    let path = f.maildir.join("postie-uidlist");
    let text = fs::read_to_string(&path).unwrap();
    fs::write(&path, edit(&text)).unwrap();
}

#[test]
fn damaged_index_is_restored_from_its_backup() {
    let f = fixture();
    for i in 0..4 {
        f.deliver(format!("{i}\n").as_bytes());
    }
    let before = f.uidls();
    corrupt_index(&f, |text| text[..text.len() - 5].to_owned());
    assert_eq!(f.uidls(), before);
    corrupt_index(&f, |text| text.replacen("postie-uidlist", "p\u{0}stie", 1));
    assert_eq!(f.uidls(), before);
    fs::remove_file(f.maildir.join("postie-uidlist")).unwrap();
    assert_eq!(f.uidls(), before);
}

fn drop_backup(f: &Fixture) {
    fs::remove_file(f.maildir.join("postie-uidlist.backup")).unwrap();
}

#[test]
fn truncated_index_without_backup_keeps_surviving_uids() {
    let f = fixture();
    for i in 0..4 {
        f.deliver(format!("{i}\n").as_bytes());
    }
    let before = f.uidls();
    drop_backup(&f);
    corrupt_index(&f, |text| text[..text.len() - 5].to_owned());
    let after = f.uidls();
    assert_eq!(after[..3], before[..3]);
    // The fourth message's record was lost; its old uid is not given to anyone else.
    assert_eq!(uid_of(&after[3]), 5);
    assert_eq!(f.uidls(), after);
}

#[test]
fn index_with_a_garbled_header_and_no_backup_is_rebuilt_above_every_known_uid() {
    let f = fixture();
    for i in 0..3 {
        f.deliver(format!("{i}\n").as_bytes());
    }
    assert_eq!(f.uidls().len(), 3);
    drop_backup(&f);
    corrupt_index(&f, |text| text.replacen("postie-uidlist", "p\u{0}stie", 1));
    f.deliver(b"3\n");
    let after = f.uidls();
    assert_eq!(after.len(), 4);
    let uids: Vec<u32> = after.iter().map(|u| uid_of(u)).collect();
    assert_eq!(uids, [1, 2, 3, 4]);
    // Without the uidvalidity, the UIDLs cannot be the old ones; they are stable from now on.
    assert_eq!(f.uidls(), after);
}

#[test]
fn damaged_index_is_rebuilt_from_dovecot_uidlist() {
    let f = fixture();
    dovecot_maildir(&f);
    let before = f.uidls();
    corrupt_index(&f, |text| {
        text.lines()
            .map(|line| {
                if line.starts_with('4') {
                    "4 ?? :garbage"
                } else {
                    line
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
            + "\n"
    });
    assert_eq!(f.uidls(), before);
    fs::write(f.maildir.join("postie-uidlist"), b"").unwrap();
    assert_eq!(f.uidls(), before);
}

#[test]
fn sizes_come_from_names_and_index_without_reading_bodies() {
    let f = fixture();
    let cur = f.maildir.join("cur");
    fs::create_dir_all(&cur).unwrap();
    // The name says 1000; a reader of the body would say 6.
    fs::write(cur.join("1700000000.M1P1.h,S=5,W=1000:2,"), b"body\n").unwrap();
    // No size in the name: read once, then cached.
    fs::write(cur.join("1700000001.M1P1.h:2,"), b"body\n").unwrap();
    let sizes = |f: &Fixture| -> Vec<u64> {
        block_on(f.store.open("alice", false, View::Normal))
            .unwrap()
            .messages()
            .iter()
            .map(|m| m.size)
            .collect()
    };
    assert_eq!(sizes(&f), [1000, 6]);
    fs::write(cur.join("1700000001.M1P1.h:2,"), b"longer body now\n").unwrap();
    assert_eq!(sizes(&f), [1000, 6]);
}

#[test]
fn concurrent_sessions_agree_on_uids() {
    let f = fixture();
    for i in 0..20 {
        f.deliver(format!("{i}\n").as_bytes());
    }
    let store = f.store.clone();
    let runs: Vec<Vec<String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let store = store.clone();
                scope.spawn(move || {
                    uidls(&block_on(store.open("alice", false, View::Normal)).unwrap())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for run in &runs {
        assert_eq!(run, &runs[0]);
    }
    assert_eq!(runs[0].len(), 20);
}

#[test]
fn odd_file_names_do_no_harm() {
    let f = fixture();
    f.deliver(b"real\n");
    let cur = f.maildir.join("cur");
    fs::create_dir_all(&cur).unwrap();
    for name in [
        &b".hidden"[..],
        b"line\nbreak",
        b":2,S",
        b"\xff\xfe,W=x:2,",
        b"sp ace:2,",
    ] {
        fs::write(cur.join(OsStr::from_bytes(name)), b"x").unwrap();
    }
    fs::create_dir(cur.join("subdir")).unwrap();
    let secret = f.maildir.join("secret");
    fs::write(&secret, b"not mail").unwrap();
    std::os::unix::fs::symlink(&secret, cur.join("1700000000.M1P1.link:2,")).unwrap();
    let mut drop = f.open();
    let sizes: Vec<u64> = drop.messages().iter().map(|m| m.size).collect();
    assert_eq!(sizes, [6, 3, 3]);
    for i in 0..3 {
        read_all(&mut drop, i);
    }
    retrieve(drop, &[0, 1, 2]);
    let drop = f.open();
    assert!(drop.messages().iter().all(|m| m.seen));
    delete(drop, &[0, 1, 2], DeletePolicy::Trash);
    assert_eq!(names(&f.maildir.join(".Trash/cur")).len(), 3);
    assert!(f.uidls().is_empty());
}

#[test]
fn a_message_swapped_for_a_symlink_is_not_served() {
    let f = fixture();
    f.deliver(b"mail\n");
    let mut drop = f.open();
    let secret = f.maildir.join("secret");
    fs::write(&secret, b"not mail").unwrap();
    let message = f.maildir.join("cur").join(&f.names("cur")[0]);
    fs::remove_file(&message).unwrap();
    std::os::unix::fs::symlink(&secret, &message).unwrap();
    assert!(matches!(
        open_message(&mut drop, 0),
        Err(StoreError::Temporary(_))
    ));
}

#[test]
fn large_maildir_opens_from_names_and_index() {
    const COUNT: usize = 100_000;
    let f = fixture();
    let cur = f.maildir.join("cur");
    fs::create_dir_all(&cur).unwrap();
    fs::create_dir_all(f.maildir.join("new")).unwrap();
    // Empty files whose names claim 7 octets: a size of 7 proves the body was not read.
    for i in 0..COUNT {
        let name = format!(
            "{}.M{}P1Q1.h,S=5,W=7:2,",
            1_700_000_000 + i / 1000,
            i % 1000
        );
        fs::File::create(cur.join(name)).unwrap();
    }
    let started = std::time::Instant::now();
    let first = f.uidls();
    let first_open = started.elapsed();
    let index = f.maildir.join("postie-uidlist");
    let inode = |path: &Path| std::os::unix::fs::MetadataExt::ino(&fs::metadata(path).unwrap());
    let written = inode(&index);
    let started = std::time::Instant::now();
    let drop = block_on(f.store.open("alice", false, View::Normal)).unwrap();
    let second_open = started.elapsed();
    // Nothing new: the index is not even rewritten.
    assert_eq!(inode(&index), written);
    assert_eq!(drop.messages().len(), COUNT);
    assert!(drop.messages().iter().all(|m| m.size == 7));
    let second = uidls(&drop);
    assert_eq!(first, second);
    assert_eq!(uid_of(&second[COUNT - 1]), COUNT as u32);
    eprintln!("first open {first_open:?}, second open {second_open:?}");
}

#[test]
fn usage_counts_messages_from_their_names() {
    let f = fixture();
    f.deliver(b"hello\n");
    f.deliver(b"0123456789");
    // A message from another MDA, without ,S= in its name, is measured by stat.
    fs::write(f.maildir.join("cur/1.M1P1.other:2,S"), b"abc").unwrap();
    let usage = block_on(f.store.usage("alice")).unwrap();
    assert_eq!(usage.messages, 3);
    assert_eq!(usage.bytes, 6 + 10 + 3);
    // Opening (new/ to cur/) changes nothing.
    drop(f.open());
    assert_eq!(block_on(f.store.usage("alice")).unwrap(), usage);
}

/// Delivery records in the name whether a message is stored in its wire form but for stuffing
/// (CRLF, with the offsets of its lines starting with `.`), and an open body offers its file
/// and those offsets for sending as stored only then, and only while the file still has the
/// size its name says.
#[test]
fn bodies_in_wire_form_offer_their_file() {
    let f = fixture();
    let messages: [&[u8]; 5] = [
        b"Subject: crlf\r\n\r\nbody\r\n",
        b"Subject: dots\r\n\r\n.body\r\n",
        b"Subject: lf\n\nbody\n",
        b"Subject: no final newline\r\n\r\nbody",
        b"",
    ];
    for message in messages {
        f.deliver(message);
    }
    {
        let mut drop = f.open();
        let offered: Vec<Option<(u64, Vec<u64>)>> = (0..messages.len())
            .map(|index| {
                let body = block_on(drop.open_message(index)).unwrap();
                body.wire_file()
                    .map(|wire| (wire.len, wire.stuffing.to_vec()))
            })
            .collect();
        assert_eq!(
            offered,
            [
                Some((messages[0].len() as u64, vec![])),
                Some((messages[1].len() as u64, vec![17])),
                None,
                None,
                Some((0, vec![]))
            ]
        );
    }
    // A file changed after delivery goes through the encoder, as read.
    let first = ["new", "cur"]
        .iter()
        .flat_map(|sub| {
            let dir = f.maildir.join(sub);
            f.names(sub).into_iter().map(move |name| dir.join(name))
        })
        .find(|path| fs::read(path).unwrap() == messages[0])
        .unwrap();
    fs::write(&first, b"changed\r\n").unwrap();
    let mut drop = f.open();
    let index = (0..messages.len())
        .find(|&i| read_all(&mut drop, i) == b"changed\r\n")
        .unwrap();
    let body = block_on(drop.open_message(index)).unwrap();
    assert!(body.wire_file().is_none());
}

/// A delivery into a Maildir that is missing, or whose new/ was removed, creates what is
/// missing and lands.
#[test]
fn deliveries_rebuild_a_missing_maildir() {
    let f = fixture();
    f.deliver(b"first\r\n");
    fs::remove_dir_all(f.maildir.join("new")).unwrap();
    f.deliver(b"second\r\n");
    fs::remove_dir_all(&f.maildir).unwrap();
    f.deliver(b"third\r\n");
    let mut drop = f.open();
    assert_eq!(drop.messages().len(), 1);
    assert_eq!(read_all(&mut drop, 0), b"third\r\n");
}

/// Deliveries to one maildrop from many threads at once (sharing their syncs of new/) all
/// arrive, each once and whole.
#[test]
fn concurrent_deliveries_all_arrive() {
    let f = fixture();
    let store = Arc::new(f.store.clone());
    let threads: Vec<_> = (0..8)
        .map(|thread| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for n in 0..25 {
                    let message = format!("Subject: {thread}-{n}\r\n\r\nbody\r\n");
                    deliver(&store, "alice", Arc::new(message.into_bytes())).unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let mut drop = f.open();
    let mut subjects: Vec<String> = (0..drop.messages().len())
        .map(|i| String::from_utf8(read_all(&mut drop, i)).unwrap())
        .collect();
    subjects.sort();
    subjects.dedup();
    assert_eq!(subjects.len(), 200);
    assert!(f.names("tmp").is_empty());
}
