//! `postie store check`, `import-maildir` and `export`: the real binary on a real PostgreSQL
//! 15 (the test cluster of postie-store-pg), judged by what POP3 front ends on the database
//! and on Maildirs answer.

// The one PostgreSQL test support, shared with postie-store-pg's own tests.
#[path = "../../postie-store-pg/tests/cluster/mod.rs"]
#[allow(dead_code)]
mod cluster;
mod common;
mod pg_support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{lmtp_deliver, ServerBuilder, TestServer, BIN};
use pg_support::url;

fn on_postgres(db: &cluster::TestDb, pop3: &str) -> TestServer {
    ServerBuilder::new()
        .pop3(pop3)
        .mail("store = \"postgres\"")
        .lmtp("")
        .sections(&format!(
            "[postgres]\nurl = \"{}\"\npool_size = 4\n",
            url(db.config())
        ))
        .start()
}

/// `postie store ARGS --config` of `server`'s configuration.
fn store(server: &TestServer, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("store")
        .args(args)
        .arg("--config")
        .arg(server.config_path())
        .output()
        .expect("running postie store")
}

fn said(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn succeeds(output: Output) -> String {
    let text = said(&output);
    assert!(output.status.success(), "{text}");
    text
}

/// What a POP3 client that leaves mail on the server sees: every message's UIDL and its
/// bytes as RETR gives them. The session ends without QUIT, so no message is marked seen.
fn listing(server: &TestServer) -> Vec<(String, Vec<u8>)> {
    let mut client = server.plain_client();
    client.login("alice", "wonderland");
    assert!(client.command("UIDL").starts_with("+OK"));
    let uidls = String::from_utf8(client.body()).unwrap();
    let listed: Vec<(String, Vec<u8>)> = uidls
        .lines()
        .enumerate()
        .map(|(i, line)| {
            let (n, uidl) = line.split_once(' ').unwrap();
            assert_eq!(n, (i + 1).to_string());
            (uidl.to_owned(), client.retr(i + 1))
        })
        .collect();
    drop(client);
    listed
}

/// What Dovecot 2.3.19 left in a Maildir (the fixture of postie-store's tests/maildir.rs):
/// dovecot-uidlist and four messages, one of them retrieved (Seen), two still in new/.
fn dovecot_maildir(maildir: &Path) {
    for sub in ["tmp", "new", "cur"] {
        fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    fs::write(
        maildir.join("dovecot-uidlist"),
        "3 V1795738008 N7 Ge792e52b98c9086be720000083ecc375\n\
         1 :1795738008.M736426P8423.vm,S=20,W=23\n\
         3 :1795738008.M760937P8429.vm,S=20,W=23\n\
         4 :1795738008.M770636P8431.vm,S=28,W=30\n\
         5 :1795738017.M536890P8509.vm,S=18,W=21\n\
         6 W21 :1795738100.M1P1.other\n",
    )
    .unwrap();
    let (cur, new) = (maildir.join("cur"), maildir.join("new"));
    let files: [(PathBuf, &[u8]); 4] = [
        (
            cur.join("1795738008.M760937P8429.vm,S=20,W=23:2,"),
            b"Subject: m3\n\nbody 3\n",
        ),
        (
            cur.join("1795738008.M770636P8431.vm,S=28,W=30:2,S"),
            b"Subject: nofinal\n\nno newline",
        ),
        (
            new.join("1795738017.M536890P8509.vm,S=18,W=21"),
            b"Subject: m5\n\nbody\n",
        ),
        (new.join("1795738100.M1P1.other"), b"Subject: plain\n\nx\n"),
    ];
    for (path, content) in files {
        fs::write(path, content).unwrap();
    }
}

#[test]
fn import_of_a_dovecot_maildir_keeps_every_uidl() {
    let db = cluster::TestDb::new();
    let database = on_postgres(&db, "");
    // `--all` finds alice's Maildir through [mail] maildir; bob has none and is skipped.
    dovecot_maildir(&database.maildir("alice"));
    // The same Maildir served by postie's Maildir store.
    let maildir = ServerBuilder::new().start();
    dovecot_maildir(&maildir.maildir("alice"));

    let first = succeeds(store(&database, &["import-maildir", "--all"]));
    assert!(first.contains("alice: imported 4 message(s)"), "{first}");
    assert!(first.contains("bob: no Maildir"), "{first}");

    let on_database = listing(&database);
    // Dovecot 2.3.19 answered UIDL on this Maildir with exactly these.
    let dovecot_said = [
        "000000036b08c998",
        "000000046b08c998",
        "000000056b08c998",
        "000000066b08c998",
    ];
    let uidls: Vec<&str> = on_database.iter().map(|(u, _)| u.as_str()).collect();
    assert_eq!(uidls, dovecot_said);
    assert_eq!(on_database, listing(&maildir), "the same UIDLs and bytes");

    // Again, for one user or all: nothing is duplicated.
    let again = succeeds(store(&database, &["import-maildir", "--all"]));
    assert!(again.contains("alice: already imported"), "{again}");
    let path = database.maildir("alice");
    let again = store(
        &database,
        &["import-maildir", "--user", "alice", path.to_str().unwrap()],
    );
    assert!(again.status.success(), "{}", said(&again));
    assert!(
        said(&again).contains("already imported"),
        "{}",
        said(&again)
    );
    assert_eq!(listing(&database), on_database);

    // New mail continues the Maildir's numbering, as Dovecot would have.
    let reply = lmtp_deliver(
        database.lmtp.unwrap(),
        "alice@example.org",
        b"Subject: new\r\n\r\nx\r\n",
    );
    assert_eq!(reply.code, 250, "{}", reply.text());
    let after = listing(&database);
    assert_eq!(after.last().unwrap().0, "000000076b08c998");

    // A maildrop that numbered mail of its own first is refused, not renumbered.
    let reply = lmtp_deliver(
        database.lmtp.unwrap(),
        "bob@example.org",
        b"Subject: b\r\n\r\nx\r\n",
    );
    assert_eq!(reply.code, 250, "{}", reply.text());
    let other = database.dir.path().join("other");
    dovecot_maildir(&other);
    let refused = store(
        &database,
        &["import-maildir", "--user", "bob", other.to_str().unwrap()],
    );
    assert!(!refused.status.success());
    assert!(
        said(&refused).contains("has given uids already"),
        "{}",
        said(&refused)
    );
}

fn message(n: usize) -> Vec<u8> {
    format!("Subject: message {n}\r\n\r\n.line starting with a dot\r\nbody {n}\r\n").into_bytes()
}

/// Every file under `root` (relative path without the flags, content), and the
/// postie-uidlist records (uid, hidden) in order.
fn maildir_files(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for sub in ["cur", ".Trash/cur"] {
        for entry in fs::read_dir(root.join(sub)).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let flags = name.split_once(':').map(|(_, f)| f.to_owned()).unwrap();
            files.push((format!("{sub} {flags}"), fs::read(&path).unwrap()));
        }
    }
    files.sort();
    files
}

fn index_records(root: &Path) -> Vec<String> {
    let index = fs::read_to_string(root.join("postie-uidlist")).unwrap();
    let mut lines = index.lines();
    let header = lines.next().unwrap();
    let mut records = vec![header.to_owned()];
    records.extend(lines.map(|line| line.split(" :").next().unwrap().to_owned()));
    records
}

#[test]
fn export_then_import_round_trips_byte_for_byte() {
    let db = cluster::TestDb::new();
    let source = on_postgres(&db, "deleted = \"trash\"");
    for n in 0..4 {
        let reply = lmtp_deliver(source.lmtp.unwrap(), "alice@example.org", &message(n));
        assert_eq!(reply.code, 250, "{}", reply.text());
    }
    // Message 1 retrieved (seen), message 3 deleted into the trash.
    let mut client = source.plain_client();
    client.login("alice", "wonderland");
    client.retr(1);
    assert!(client.command("DELE 3").starts_with("+OK"));
    assert!(client.command("QUIT").starts_with("+OK"));
    // And message 4 hidden, as the hide policy leaves it.
    sql(&db, "UPDATE messages SET state = 'hidden' WHERE uid = 4");
    let before = listing(&source);
    assert_eq!(before.len(), 2);

    let exported = source.dir.path().join("exported");
    let text = succeeds(store(
        &source,
        &["export", "--user", "alice", exported.to_str().unwrap()],
    ));
    assert!(text.contains("exported 4 message(s)"), "{text}");
    // Byte-exact: each file is what RETR gives (the trace headers of its delivery included),
    // in its original line endings.
    let files = maildir_files(&exported);
    let kinds: Vec<&str> = files.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds, [".Trash/cur 2,", "cur 2,", "cur 2,", "cur 2,S"]);
    let stored: Vec<&[u8]> = files.iter().map(|(_, c)| c.as_slice()).collect();
    for (_, retrieved) in &before {
        assert!(
            stored.contains(&retrieved.as_slice()),
            "RETR's bytes are a file's"
        );
    }
    assert_eq!(index_records(&exported)[1..], ["1", "2", "4 H"]);

    // Postie's Maildir store serves the export under the same UIDLs and bytes.
    let maildir = ServerBuilder::new().start();
    copy_dir(&exported, &maildir.maildir("alice"));
    assert_eq!(listing(&maildir), before);

    // Imported into another database: the same again, and exported once more, the same files.
    let other_db = cluster::TestDb::new();
    let target = on_postgres(&other_db, "deleted = \"trash\"");
    let text = succeeds(store(
        &target,
        &[
            "import-maildir",
            "--user",
            "alice",
            exported.to_str().unwrap(),
        ],
    ));
    assert!(text.contains("imported 4 message(s)"), "{text}");
    assert_eq!(listing(&target), before);
    let again = target.dir.path().join("again");
    succeeds(store(
        &target,
        &["export", "--user", "alice", again.to_str().unwrap()],
    ));
    assert_eq!(maildir_files(&again), maildir_files(&exported));
    // The listed messages keep their uids and the uidvalidity; the trashed one has no uid in
    // a Maildir, so the import gave it the next one, and the next uid moved past it.
    let (first, second) = (index_records(&exported), index_records(&again));
    assert_eq!(first[1..], second[1..]);
    let uidvalidity = |header: &str| header.split(' ').nth(2).unwrap().to_owned();
    assert_eq!(uidvalidity(&first[0]), uidvalidity(&second[0]));

    // An export never writes over a Maildir.
    let refused = store(
        &target,
        &["export", "--user", "alice", again.to_str().unwrap()],
    );
    assert!(!refused.status.success());
    assert!(
        said(&refused).contains("already holds messages"),
        "{}",
        said(&refused)
    );
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn sql(db: &cluster::TestDb, statements: &str) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            db.client()
                .await
                .batch_execute(statements)
                .await
                .expect("the test's SQL");
        });
}

#[test]
fn check_repairs_counters_and_reports_damage() {
    let db = cluster::TestDb::new();
    let server = on_postgres(&db, "");
    for n in 0..3 {
        let reply = lmtp_deliver(server.lmtp.unwrap(), "alice@example.org", &message(n));
        assert_eq!(reply.code, 250, "{}", reply.text());
    }
    let clean = succeeds(store(&server, &["check"]));
    assert!(clean.contains("0 finding(s)"), "{clean}");

    sql(
        &db,
        "UPDATE maildrops SET bytes = bytes + 1000, messages = 7, next_uid = 2;
         UPDATE bodies SET refs = 5 WHERE id = (SELECT min(id) FROM bodies)",
    );
    let dry = store(&server, &["check", "--dry-run"]);
    assert!(
        !dry.status.success(),
        "a dry run leaves findings: {}",
        said(&dry)
    );
    assert!(
        said(&dry).contains("not repaired (--dry-run)"),
        "{}",
        said(&dry)
    );

    let repaired = succeeds(store(&server, &["check"]));
    assert!(
        repaired.contains("maildrop alice: usage recorded as"),
        "{repaired}"
    );
    assert!(
        repaired.contains("next uid 2 is not above its highest uid 3"),
        "{repaired}"
    );
    assert!(
        repaired.contains("5 references recorded, 1 messages refer to it"),
        "{repaired}"
    );
    assert!(repaired.contains("3 finding(s), 3 repaired"), "{repaired}");
    let clean = succeeds(store(&server, &["check"]));
    assert!(clean.contains("0 finding(s)"), "{clean}");
    // Repaired as they were: the next delivery takes uid 4, and the counters add up.
    let reply = lmtp_deliver(server.lmtp.unwrap(), "alice@example.org", &message(3));
    assert_eq!(reply.code, 250, "{}", reply.text());
    let uidls: Vec<String> = listing(&server).into_iter().map(|(u, _)| u).collect();
    assert!(uidls[3].starts_with("00000004"), "{uidls:?}");
    let clean = succeeds(store(&server, &["check"]));
    assert!(clean.contains("0 finding(s)"), "{clean}");

    // A lost chunk cannot be repaired: said, and the exit status says so.
    sql(
        &db,
        "DELETE FROM body_chunks WHERE body_id = (SELECT min(id) FROM bodies)",
    );
    let damaged = store(&server, &["check"]);
    assert!(!damaged.status.success());
    assert!(
        said(&damaged).contains("NOT repairable"),
        "{}",
        said(&damaged)
    );
}
