//! The Maildir store seen from outside: what the server and other Maildir readers observe.

use std::ffi::OsStr;
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use postie_store::{DeletePolicy, MailStore, MaildirStore, Maildrop, StoreError};
use tempfile::TempDir;

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
        self.store.deliver("alice", &mut &message[..]).unwrap();
    }

    fn open(&self) -> postie_store::MaildirDrop {
        self.store.open("alice", true).unwrap()
    }

    fn uidls(&self) -> Vec<String> {
        let drop = self.store.open("alice", false).unwrap();
        drop.messages().iter().map(|m| m.uidl.clone()).collect()
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

fn read_all(drop: &mut impl Maildrop, index: usize) -> Vec<u8> {
    let mut content = Vec::new();
    drop.open_message(index)
        .unwrap()
        .read_to_end(&mut content)
        .unwrap();
    content
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
fn missing_maildrop_opens_empty() {
    let f = fixture();
    let drop = f.store.open("alice", false).unwrap();
    assert!(drop.messages().is_empty());
    drop.commit(&[], DeletePolicy::Expunge).unwrap();
}

#[test]
fn unsafe_user_names_are_refused() {
    let f = fixture();
    for user in ["", ".", "..", "../bob", "a/b", "a\0b", "x/../../etc"] {
        assert!(
            matches!(f.store.open(user, false), Err(StoreError::Permanent(_))),
            "{user:?}"
        );
        let delivered = f.store.deliver(user, &mut &b"x"[..]);
        assert!(
            matches!(delivered, Err(StoreError::Permanent(_))),
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

    let mut drop = f.open();
    drop.mark_seen(1).unwrap();
    drop.mark_seen(1).unwrap();
    drop.commit(&[], DeletePolicy::Expunge).unwrap();
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
    let mut drop = f.open();
    for index in 0..3 {
        drop.mark_seen(index).unwrap();
    }
    assert!(f.names("cur").iter().any(|n| n.ends_with(":2,FST")));
    assert_eq!(f.uidls(), first);
}

#[test]
fn uids_are_never_reused() {
    let f = fixture();
    for i in 0..3 {
        f.deliver(format!("{i}\n").as_bytes());
    }
    let drop = f.open();
    drop.commit(&[2], DeletePolicy::Expunge).unwrap();
    f.deliver(b"3\n");
    let uids: Vec<u32> = f.uidls().iter().map(|u| uid_of(u)).collect();
    assert_eq!(uids, [1, 2, 4]);

    // Even when the newest message went before any session listed the next one.
    let drop = f.open();
    drop.commit(&[2], DeletePolicy::Expunge).unwrap();
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
    let uids: Vec<u32> = drop.messages().iter().map(|m| uid_of(&m.uidl)).collect();
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
    let listed = |drop: &postie_store::MaildirDrop| -> Vec<(u64, String)> {
        drop.messages()
            .iter()
            .map(|m| (m.size, m.uidl.clone()))
            .collect()
    };
    let expected: Vec<(u64, String)> = dovecot_said
        .iter()
        .map(|&(s, u)| (s, u.to_owned()))
        .collect();
    let drop = f.open();
    assert_eq!(listed(&drop), expected);
    drop.commit(&[], DeletePolicy::Expunge).unwrap();
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
    f.open().commit(&[], DeletePolicy::Expunge).unwrap();
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
fn exclusive_sessions_exclude_each_other_but_not_delivery() {
    let f = fixture();
    f.deliver(b"one\n");
    let first = f.open();
    assert!(matches!(
        f.store.open("alice", true),
        Err(StoreError::InUse)
    ));
    // A non-exclusive reader and a delivery go ahead.
    assert_eq!(f.store.open("alice", false).unwrap().messages().len(), 1);
    f.deliver(b"two\n");
    assert_eq!(first.messages().len(), 1);
    first.commit(&[], DeletePolicy::Expunge).unwrap();

    let second = f.open();
    assert_eq!(second.messages().len(), 2);
    drop(second);
    f.open().commit(&[], DeletePolicy::Expunge).unwrap();
}

#[test]
fn commit_expunge_unlinks() {
    let f = fixture();
    for i in 0..3 {
        f.deliver(format!("{i}\n").as_bytes());
    }
    let before = f.uidls();
    f.open().commit(&[0, 2, 0], DeletePolicy::Expunge).unwrap();
    assert_eq!(f.names("cur").len(), 1);
    assert_eq!(f.uidls(), [before[1].clone()]);
    assert!(!f.maildir.join(".Trash").exists());
}

#[test]
fn commit_trash_moves_to_the_trash_folder() {
    let f = fixture();
    f.deliver(b"keep\n");
    f.deliver(b"trash me\n");
    let drop = f.open();
    let trashed = f.names("cur")[1].clone();
    drop.commit(&[1], DeletePolicy::Trash).unwrap();
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
    f.open().commit(&[0], DeletePolicy::Trash).unwrap();
    assert_eq!(names(&trash.join("cur")).len(), 2);
    assert!(f.uidls().is_empty());
}

#[test]
fn commit_hide_keeps_the_file_but_never_lists_it_again() {
    let f = fixture();
    for i in 0..3 {
        f.deliver(format!("{i}\n").as_bytes());
    }
    let before = f.uidls();
    f.open().commit(&[1], DeletePolicy::Hide).unwrap();
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
    drop.mark_seen(0).unwrap();
    assert!(f.names("cur").iter().any(|n| n.ends_with(":2,FS")));
    for name in f.names("cur") {
        fs::rename(cur.join(&name), cur.join(format!("{name}T"))).unwrap();
    }
    drop.commit(&[0, 1], DeletePolicy::Expunge).unwrap();
    assert!(f.names("cur").is_empty());
}

#[test]
fn messages_gone_meanwhile() {
    let f = fixture();
    f.deliver(b"one\n");
    f.deliver(b"two\n");
    let mut drop = f.open();
    // Another client expunges message 1.
    let victim = f.names("cur")[0].clone();
    fs::remove_file(f.maildir.join("cur").join(&victim)).unwrap();
    assert!(matches!(drop.open_message(0), Err(StoreError::Vanished(_))));
    assert!(matches!(drop.mark_seen(0), Err(StoreError::Vanished(_))));
    assert!(matches!(
        drop.open_message(5),
        Err(StoreError::Permanent(_))
    ));
    // Deleting it is no error.
    drop.commit(&[0], DeletePolicy::Expunge).unwrap();
    assert_eq!(f.uidls().len(), 1);
}

#[test]
fn commit_refuses_unknown_message_numbers() {
    let f = fixture();
    f.deliver(b"one\n");
    let drop = f.open();
    assert!(matches!(
        drop.commit(&[0, 1], DeletePolicy::Expunge),
        Err(StoreError::Permanent(_))
    ));
    assert_eq!(f.uidls().len(), 1);
}

/// A message source that fails half-way, like a dropped SMTP connection.
struct Failing {
    sent: usize,
}

impl Read for Failing {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.sent > 100_000 {
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
    let result = f.store.deliver("alice", &mut Failing { sent: 0 });
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
        f.store
            .open("alice", false)
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
                    let drop = store.open("alice", false).unwrap();
                    drop.messages().iter().map(|m| m.uidl.clone()).collect()
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
        drop.mark_seen(i).unwrap();
    }
    drop.commit(&[0, 1, 2], DeletePolicy::Trash).unwrap();
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
        drop.open_message(0),
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
    let drop = f.store.open("alice", false).unwrap();
    let second_open = started.elapsed();
    // Nothing new: the index is not even rewritten.
    assert_eq!(inode(&index), written);
    assert_eq!(drop.messages().len(), COUNT);
    assert!(drop.messages().iter().all(|m| m.size == 7));
    let second: Vec<String> = drop.messages().iter().map(|m| m.uidl.clone()).collect();
    assert_eq!(first, second);
    assert_eq!(uid_of(&second[COUNT - 1]), COUNT as u32);
    eprintln!("first open {first_open:?}, second open {second_open:?}");
}

#[test]
fn usage_counts_messages_from_their_names() {
    let f = fixture();
    assert_eq!(
        f.store.usage("alice").unwrap(),
        postie_store::Usage::default(),
        "a maildrop not created yet is empty"
    );
    f.deliver(b"hello\n");
    f.deliver(b"0123456789");
    // A message from another MDA, without ,S= in its name, is measured by stat.
    fs::write(f.maildir.join("cur/1.M1P1.other:2,S"), b"abc").unwrap();
    let usage = f.store.usage("alice").unwrap();
    assert_eq!(usage.messages, 3);
    assert_eq!(usage.bytes, 6 + 10 + 3);
    // Opening (new/ to cur/) changes nothing.
    drop(f.open());
    assert_eq!(f.store.usage("alice").unwrap(), usage);
}
