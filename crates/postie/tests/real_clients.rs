//! Real POP3 clients against the real `postie serve`: curl, Python's poplib, fetchmail, mpop
//! and getmail6, each over verified TLS (implicit or STLS), each retrieving the seeded messages,
//! which are then compared byte for byte with what was seeded. The only differences allowed are
//! the trace headers a client documents that it adds, and the CRLF-to-LF conversion a client
//! documents that it does when it delivers to a file; each is named where it is undone.
//!
//! Each client runs once against a server on Maildir and once against one on PostgreSQL
//! (seeded by `postie store import-maildir`, so the bytes are the same).
//!
//! A missing client fails the test (never skips): `scripts/test` installs them all.

// The one PostgreSQL test support, shared with postie-store-pg's own tests.
#[path = "../../postie-store-pg/tests/cluster/mod.rs"]
#[allow(dead_code)]
mod cluster;
mod common;
mod pg_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::{crlf_form, ServerBuilder, TestServer, BIN};

const INSTALL_HINT: &str = "run scripts/test (it installs curl fetchmail mpop getmail6)";

/// Every client process is killed, and the test failed, after this long.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// The seeded messages
// ---------------------------------------------------------------------------------------------

/// One seeded message; `subject` is the value of its unique `Subject:` header, used to pair it
/// with what a client delivered into a folder in an order of its own.
struct Seed {
    subject: &'static str,
    bytes: Vec<u8>,
}

fn seeds() -> Vec<Seed> {
    let mut big =
        b"From: Big Sender <big@example.org>\r\nTo: alice@test.example\r\nSubject: big\r\n\
                    Message-ID: <big@example.org>\r\n\r\n"
            .to_vec();
    let mut line_no = 0u32;
    while big.len() < 300 * 1024 {
        line_no += 1;
        if line_no.is_multiple_of(97) {
            // Lines that need dot-stuffing, spread through the message.
            big.extend_from_slice(format!(".{line_no:06} starts with a dot\r\n").as_bytes());
        } else if line_no.is_multiple_of(1000) {
            big.extend_from_slice(format!("{line_no:06} {}\r\n", "x".repeat(990)).as_bytes());
        } else {
            big.extend_from_slice(
                format!("{line_no:06} the quick brown fox jumps over the lazy dog 0123456789\r\n")
                    .as_bytes(),
            );
        }
    }
    big.extend_from_slice(b"the end\r\n");

    vec![
        Seed {
            subject: "plain",
            bytes: b"From: Sender <sender@example.org>\r\nTo: alice@test.example\r\n\
                     Subject: plain\r\nDate: Mon, 01 Jan 2024 10:00:00 +0000\r\n\
                     Message-ID: <plain@example.org>\r\n\r\nHello Alice,\r\n\r\n\
                     this is a plain message.\r\n"
                .to_vec(),
        },
        Seed {
            subject: "dots",
            bytes: b"From: dots@example.org\r\nTo: alice@test.example\r\nSubject: dots\r\n\
                     Message-ID: <dots@example.org>\r\n\r\n.leading dot\r\n..two dots\r\n.\r\n\
                     ..\r\n...three dots\r\na line after the lone dot\r\n.\r\n"
                .to_vec(),
        },
        Seed {
            subject: "eight-bit",
            bytes: "From: eight@example.org\r\nTo: alice@test.example\r\nSubject: eight-bit\r\n\
                    Message-ID: <eight@example.org>\r\nMIME-Version: 1.0\r\n\
                    Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\
                    \r\nGrüße aus Köln, naïve café, ☃ and 📬\r\nΚαλημέρα κόσμε\r\n"
                .as_bytes()
                .to_vec(),
        },
        Seed {
            subject: "bare-lf",
            bytes: b"From: lf@example.org\nTo: alice@test.example\nSubject: bare-lf\n\
                     Message-ID: <lf@example.org>\n\nline one\nline two\n.dot line\n\nlast\n"
                .to_vec(),
        },
        Seed {
            subject: "no-final-newline",
            bytes: b"From: nonl@example.org\r\nTo: alice@test.example\r\n\
                     Subject: no-final-newline\r\nMessage-ID: <nonl@example.org>\r\n\r\n\
                     first line\r\nthe last line has no newline"
                .to_vec(),
        },
        Seed {
            subject: "big",
            bytes: big,
        },
    ]
}

/// Where the server under test keeps its mail.
#[derive(Clone, Copy, Debug)]
enum Store {
    Maildir,
    Postgres,
}

/// A server seeded with [`seeds`], and the database behind it if it has one.
struct Seeded {
    server: TestServer,
    seeds: Vec<Seed>,
    store: Store,
    _db: Option<cluster::TestDb>,
}

impl Seeded {
    /// Gives `user` the `messages`, in order, as an MTA would on Maildir; on PostgreSQL by
    /// importing that Maildir, which keeps the bytes as they are.
    fn seed(&self, user: &str, messages: &[&[u8]]) {
        for message in messages {
            self.server.add_message(user, message);
        }
        if let Store::Postgres = self.store {
            let import = Command::new(BIN)
                .args(["store", "import-maildir", "--config"])
                .arg(self.server.config_path())
                .args(["--user", user])
                .arg(self.server.maildir(user))
                .output()
                .unwrap();
            assert!(
                import.status.success(),
                "postie store import-maildir: {}{}",
                String::from_utf8_lossy(&import.stdout),
                String::from_utf8_lossy(&import.stderr)
            );
        }
        assert_eq!(self.stored(user), messages.len());
    }

    /// How many messages `user` has on the server, however it stores them.
    fn stored(&self, user: &str) -> usize {
        match self.store {
            Store::Maildir => self.server.message_files(user).len(),
            Store::Postgres => {
                let mut client = self.server.plain_client();
                client.login(user, password(user));
                let stat = client.command("STAT");
                assert!(client.command("QUIT").starts_with("+OK"));
                stat.split_whitespace().nth(1).unwrap().parse().unwrap()
            }
        }
    }
}

/// The password of each user the test server has (`common::USERS`).
fn password(user: &str) -> &'static str {
    match user {
        "bob" => "pass word with spaces",
        _ => "wonderland",
    }
}

/// Starts a server on `store` (with `pop3_extra` in its [pop3] section) and seeds alice's
/// maildrop, in order.
fn seeded_server(store: Store, pop3_extra: &str) -> Seeded {
    let builder = ServerBuilder::new().pop3(pop3_extra);
    let (server, db) = match store {
        Store::Maildir => (builder.start(), None),
        Store::Postgres => {
            let db = cluster::TestDb::new();
            let server = builder
                .mail("store = \"postgres\"")
                .sections(&format!(
                    "[postgres]\nurl = \"{}\"\n",
                    pg_support::url(db.config())
                ))
                .start();
            (server, Some(db))
        }
    };
    let seeded = Seeded {
        server,
        seeds: seeds(),
        store,
        _db: db,
    };
    let messages: Vec<&[u8]> = seeded.seeds.iter().map(|s| s.bytes.as_slice()).collect();
    seeded.seed("alice", &messages);
    seeded
}

// ---------------------------------------------------------------------------------------------
// Running clients
// ---------------------------------------------------------------------------------------------

/// The full path of an installed program, or a failure telling how to install it.
fn require(program: &str) -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
        .unwrap_or_else(|| panic!("`{program}` is not installed: {INSTALL_HINT}"))
}

struct Outcome {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: String,
}

impl Outcome {
    fn describe(&self) -> String {
        format!(
            "exit status {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status,
            String::from_utf8_lossy(&self.stdout),
            self.stderr
        )
    }

    fn assert_success(&self, what: &str) {
        assert!(self.status.success(), "{what} failed: {}", self.describe());
    }
}

/// Runs a client with no stdin, collecting its output in files; kills it and fails the test if it
/// has not finished within `CLIENT_TIMEOUT`.
fn run(what: &str, command: &mut Command) -> Outcome {
    let out = tempfile::tempdir().unwrap();
    let stdout_path = out.path().join("stdout");
    let stderr_path = out.path().join("stderr");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}: {INSTALL_HINT}"));
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what} did not finish within {CLIENT_TIMEOUT:?}; killed\n--- stdout ---\n{}\n\
                 --- stderr ---\n{}",
                String::from_utf8_lossy(&std::fs::read(&stdout_path).unwrap_or_default()),
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(25));
    };
    Outcome {
        status,
        stdout: std::fs::read(&stdout_path).unwrap(),
        stderr: String::from_utf8_lossy(&std::fs::read(&stderr_path).unwrap()).into_owned(),
    }
}

/// Writes the server's certificate, and an unrelated one for the same names that a client must
/// reject, into `dir`: (trusted, untrusted).
fn write_certs(server: &TestServer, dir: &Path) -> (PathBuf, PathBuf) {
    let trusted = dir.join("cert.pem");
    server.write_cert(&trusted);
    let untrusted = dir.join("other-cert.pem");
    let other =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    std::fs::write(&untrusted, other.cert.pem()).unwrap();
    (trusted, untrusted)
}

/// Writes a file only its owner may read (fetchmail and mpop refuse others).
fn write_private(path: &Path, content: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Comparing
// ---------------------------------------------------------------------------------------------

/// Fails with the first differing byte and some context, not a dump of 300 KB.
fn assert_same(what: &str, got: &[u8], want: &[u8]) {
    if got == want {
        return;
    }
    let at = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    let window = |bytes: &[u8]| {
        let from = at.saturating_sub(60).min(bytes.len());
        let to = (at + 60).min(bytes.len());
        bytes[from..to].escape_ascii().to_string()
    };
    panic!(
        "{what}: differs at byte {at} (got {} bytes, want {} bytes)\n got: ...{}...\nwant: ...{}...",
        got.len(),
        want.len(),
        window(got),
        window(want)
    );
}

/// The LF form of a CRLF message, for clients that store messages with Unix line endings.
fn lf_form(crlf: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(crlf.len());
    for (i, &byte) in crlf.iter().enumerate() {
        if !(byte == b'\r' && crlf.get(i + 1) == Some(&b'\n')) {
            out.push(byte);
        }
    }
    out
}

/// Removes the header fields named in `names` from the *start* of a message only (where a client
/// prepends its trace fields), with their folded continuation lines. Fails if one of them is not
/// there, so that a check never passes by removing nothing when something was expected.
fn strip_prepended(message: &[u8], names: &[&str]) -> Vec<u8> {
    let mut rest = message;
    let mut removed = Vec::new();
    loop {
        let line_end = |bytes: &[u8]| {
            bytes
                .iter()
                .position(|&b| b == b'\n')
                .map_or(bytes.len(), |p| p + 1)
        };
        let Some(name) = names.iter().find(|name| {
            rest.len() > name.len()
                && rest[..name.len()].eq_ignore_ascii_case(name.as_bytes())
                && rest[name.len()] == b':'
        }) else {
            break;
        };
        removed.push(*name);
        rest = &rest[line_end(rest)..];
        while rest.first().is_some_and(|&b| b == b' ' || b == b'\t') {
            rest = &rest[line_end(rest)..];
        }
    }
    for name in names {
        assert!(
            removed.contains(name),
            "expected a prepended {name}: header at the start of {:?}",
            message[..message.len().min(300)].escape_ascii().to_string()
        );
    }
    rest.to_vec()
}

fn subject_of(message: &[u8]) -> String {
    let start = message
        .windows(10)
        .position(|w| w == b"\nSubject: ")
        .unwrap_or_else(|| {
            panic!(
                "no Subject in {:?}",
                message[..message.len().min(300)].escape_ascii().to_string()
            )
        })
        + 10;
    let end = start
        + message[start..]
            .iter()
            .position(|&b| b == b'\r' || b == b'\n')
            .unwrap();
    String::from_utf8_lossy(&message[start..end]).into_owned()
}

/// Pairs delivered messages with the seeds by subject; each seed must arrive exactly once, equal
/// to `expected(seed)` after `normalise(delivered)`.
fn assert_delivered(
    client: &str,
    delivered: &[(PathBuf, Vec<u8>)],
    seeds: &[Seed],
    normalise: impl Fn(&[u8]) -> Vec<u8>,
    expected: impl Fn(&[u8]) -> Vec<u8>,
) {
    let wanted: BTreeMap<&str, &Seed> = seeds.iter().map(|s| (s.subject, s)).collect();
    let mut seen = BTreeMap::new();
    for (path, bytes) in delivered {
        let normalised = normalise(bytes);
        let subject = subject_of(&normalised);
        let seed = wanted.get(subject.as_str()).unwrap_or_else(|| {
            panic!("{client} delivered an unexpected message {path:?} (Subject: {subject})")
        });
        assert_same(
            &format!("{client}: message {subject:?} in {path:?}"),
            &normalised,
            &expected(&seed.bytes),
        );
        if let Some(previous) = seen.insert(subject.clone(), path.clone()) {
            panic!("{client} delivered {subject:?} twice: {previous:?} and {path:?}");
        }
    }
    let missing: Vec<_> = wanted.keys().filter(|s| !seen.contains_key(**s)).collect();
    assert!(missing.is_empty(), "{client} did not deliver {missing:?}");
}

/// The files directly in `dir`, sorted, with their content.
fn files_in(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{dir:?}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

/// The messages of a Maildir a client delivered into (new/ and cur/).
fn maildir_messages(maildir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut all = files_in(&maildir.join("new"));
    all.extend(files_in(&maildir.join("cur")));
    all
}

fn make_maildir(path: &Path) {
    for sub in ["tmp", "new", "cur"] {
        std::fs::create_dir_all(path.join(sub)).unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// 1. curl
// ---------------------------------------------------------------------------------------------

/// The LIST answer body the server must give for the seeds.
fn expected_listing(seeds: &[Seed]) -> String {
    seeds
        .iter()
        .enumerate()
        .map(|(i, s)| format!("{} {}\r\n", i + 1, crlf_form(&s.bytes).len()))
        .collect()
}

fn curl_session(seeded: &Seeded, base_url: &str, extra: &[&str]) {
    let (server, seeds) = (&seeded.server, &seeded.seeds);
    let curl = require("curl");
    let work = tempfile::tempdir().unwrap();
    let (cert, other_cert) = write_certs(server, work.path());
    let with_ca = |cmd: &mut Command, ca: &Path| {
        cmd.args(["--silent", "--show-error", "--max-time", "50", "--cacert"])
            .arg(ca)
            .args(["--user", "alice:wonderland"])
            .args(extra);
    };
    let common_args = |cmd: &mut Command| with_ca(cmd, &cert);

    // Verification is on: trusting another certificate, curl refuses the server's.
    let mut rejected = Command::new(&curl);
    with_ca(&mut rejected, &other_cert);
    rejected.arg(format!("{base_url}/"));
    let outcome = run("curl with an untrusted certificate", &mut rejected);
    // 60: "Peer certificate cannot be authenticated with known CA certificates".
    assert_eq!(outcome.status.code(), Some(60), "{}", outcome.describe());
    assert!(outcome.stdout.is_empty(), "{}", outcome.describe());

    // A URL without a message number is a LIST; curl prints the answer body as it came.
    let mut list = Command::new(&curl);
    common_args(&mut list);
    list.arg(format!("{base_url}/"));
    let outcome = run("curl LIST", &mut list);
    outcome.assert_success("curl LIST");
    assert_eq!(
        String::from_utf8_lossy(&outcome.stdout),
        expected_listing(seeds),
        "curl LIST over {base_url}"
    );

    // One URL per message: RETR n, each written to its own file; curl removes the dot-stuffing
    // and the terminating ".", and otherwise writes the bytes as received (CRLF kept).
    let mut retr = Command::new(&curl);
    common_args(&mut retr);
    for n in 1..=seeds.len() {
        retr.arg("--output")
            .arg(work.path().join(format!("msg.{n}")))
            .arg(format!("{base_url}/{n}"));
    }
    let outcome = run("curl RETR", &mut retr);
    outcome.assert_success("curl RETR");
    for (i, seed) in seeds.iter().enumerate() {
        let got = std::fs::read(work.path().join(format!("msg.{}", i + 1))).unwrap();
        assert_same(
            &format!("curl RETR {} ({}) over {base_url}", i + 1, seed.subject),
            &got,
            &crlf_form(&seed.bytes),
        );
    }
    // Nothing was deleted.
    assert_eq!(seeded.stored("alice"), seeds.len());
}

#[test]
fn curl_implicit_tls_and_stls() {
    curl_implicit_tls_and_stls_on(Store::Maildir);
}

#[test]
fn curl_implicit_tls_and_stls_on_postgresql() {
    curl_implicit_tls_and_stls_on(Store::Postgres);
}

fn curl_implicit_tls_and_stls_on(store: Store) {
    let seeded = seeded_server(store, "");
    let server = &seeded.server;
    // Implicit TLS; 127.0.0.1 is checked against the certificate's IP address name.
    curl_session(
        &seeded,
        &format!("pop3s://127.0.0.1:{}", server.tls.port()),
        &[],
    );
    curl_session(
        &seeded,
        &format!("pop3s://localhost:{}", server.tls.port()),
        &[],
    );
    // STLS: --ssl-reqd makes curl fail rather than continue in the clear.
    curl_session(
        &seeded,
        &format!("pop3://localhost:{}", server.plain.port()),
        &["--ssl-reqd"],
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Python poplib
// ---------------------------------------------------------------------------------------------

const POPLIB_SCRIPT: &str = r#"
import os, poplib, ssl, sys

host, plain_port, tls_port, cafile, other_cafile, out = sys.argv[1:7]
# Verification stays on: CERT_REQUIRED and host-name checking, trusting only our certificate.
context = ssl.create_default_context(cafile=cafile)
assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname

# Trusting another certificate, both STLS and implicit TLS fail verification.
wrong = ssl.create_default_context(cafile=other_cafile)
pop = poplib.POP3(host, int(plain_port), timeout=30)
try:
    pop.stls(context=wrong)
    raise AssertionError("STLS accepted an untrusted certificate")
except ssl.SSLCertVerificationError:
    pass
try:
    poplib.POP3_SSL(host, int(tls_port), context=wrong, timeout=30)
    raise AssertionError("implicit TLS accepted an untrusted certificate")
except ssl.SSLCertVerificationError:
    pass

def save(name, data):
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)

def fetch_all(pop, tag):
    count, total = pop.stat()
    resp, listing, _ = pop.list()
    save(tag + ".list", b"".join(line + b"\r\n" for line in listing))
    for n in range(1, count + 1):
        resp, lines, octets = pop.retr(n)
        # poplib strips each line's CRLF and the dot-stuffing; put the CRLFs back.
        data = b"".join(line + b"\r\n" for line in lines)
        assert octets == len(data), (n, octets, len(data))
        save("%s.%d" % (tag, n), data)
    resp, uidls, _ = pop.uidl()
    save(tag + ".uidl", b"".join(line + b"\r\n" for line in uidls))
    save(tag + ".stat", b"%d %d" % (count, total))

# Session 1: the plain port, STLS, USER/PASS.
pop = poplib.POP3(host, int(plain_port), timeout=30)
caps = pop.capa()
assert "STLS" in caps, caps
pop.stls(context=context)
assert "STLS" not in pop.capa()
pop.user("alice")
pop.pass_("wonderland")
fetch_all(pop, "stls")
pop.quit()

# Session 2: implicit TLS, APOP (the greeting carries the timestamp).
pop = poplib.POP3_SSL(host, int(tls_port), context=context, timeout=30)
assert b"<" in pop.getwelcome(), pop.getwelcome()
pop.apop("alice", "wonderland")
fetch_all(pop, "apop")
pop.quit()

# Session 3: a password with spaces, over implicit TLS.
pop = poplib.POP3_SSL(host, int(tls_port), context=context, timeout=30)
pop.user("bob")
pop.pass_("pass word with spaces")
fetch_all(pop, "bob")
pop.quit()
"#;

#[test]
fn python_poplib_stls_and_apop() {
    python_poplib_stls_and_apop_on(Store::Maildir);
}

#[test]
fn python_poplib_stls_and_apop_on_postgresql() {
    python_poplib_stls_and_apop_on(Store::Postgres);
}

fn python_poplib_stls_and_apop_on(store: Store) {
    let python = require("python3");
    let seeded = seeded_server(store, "apop = true");
    let (server, seeds) = (&seeded.server, &seeded.seeds);
    let bob_message = b"From: a@example.org\r\nSubject: for bob\r\n\r\nhello bob\r\n";
    seeded.seed("bob", &[bob_message]);
    let work = tempfile::tempdir().unwrap();
    let (cert, other_cert) = write_certs(server, work.path());
    let script = work.path().join("poplib_client.py");
    std::fs::write(&script, POPLIB_SCRIPT).unwrap();
    let out = work.path().join("out");
    std::fs::create_dir(&out).unwrap();

    let outcome = run(
        "python3 poplib",
        Command::new(&python)
            .arg(&script)
            // Python checks IP addresses against the certificate's IP names.
            .arg("127.0.0.1")
            .arg(server.plain.port().to_string())
            .arg(server.tls.port().to_string())
            .arg(&cert)
            .arg(&other_cert)
            .arg(&out),
    );
    outcome.assert_success("python3 poplib");

    let read = |name: &str| std::fs::read(out.join(name)).unwrap();
    let total: usize = seeds.iter().map(|s| crlf_form(&s.bytes).len()).sum();
    for tag in ["stls", "apop"] {
        assert_eq!(
            String::from_utf8(read(&format!("{tag}.stat"))).unwrap(),
            format!("{} {total}", seeds.len())
        );
        assert_eq!(
            String::from_utf8(read(&format!("{tag}.list"))).unwrap(),
            expected_listing(seeds)
        );
        for (i, seed) in seeds.iter().enumerate() {
            assert_same(
                &format!("poplib ({tag}) RETR {} ({})", i + 1, seed.subject),
                &read(&format!("{tag}.{}", i + 1)),
                &crlf_form(&seed.bytes),
            );
        }
    }
    let uidls = String::from_utf8(read("stls.uidl")).unwrap();
    assert_eq!(uidls.lines().count(), seeds.len(), "{uidls}");
    for (i, line) in uidls.lines().enumerate() {
        let (n, uid) = line.split_once(' ').unwrap();
        assert_eq!(n, (i + 1).to_string());
        assert!(
            !uid.is_empty() && uid.bytes().all(|b| (0x21..=0x7e).contains(&b)),
            "{line:?}"
        );
    }
    assert_eq!(
        String::from_utf8(read("apop.uidl")).unwrap(),
        uidls,
        "UIDLs changed between sessions"
    );
    assert_same("poplib bob RETR 1", &read("bob.1"), bob_message);
    // poplib never deletes without DELE.
    assert_eq!(seeded.stored("alice"), seeds.len());
}

// ---------------------------------------------------------------------------------------------
// 3. fetchmail
// ---------------------------------------------------------------------------------------------

#[test]
fn fetchmail_keep_uidl_implicit_tls() {
    fetchmail_keep_uidl_implicit_tls_on(Store::Maildir);
}

#[test]
fn fetchmail_keep_uidl_implicit_tls_on_postgresql() {
    fetchmail_keep_uidl_implicit_tls_on(Store::Postgres);
}

fn fetchmail_keep_uidl_implicit_tls_on(store: Store) {
    let fetchmail = require("fetchmail");
    let seeded = seeded_server(store, "");
    let (server, seeds) = (&seeded.server, &seeded.seeds);
    let work = tempfile::tempdir().unwrap();
    let (cert, other_cert) = write_certs(server, work.path());
    let delivered = work.path().join("delivered");
    std::fs::create_dir(&delivered).unwrap();
    let rcfile = work.path().join("fetchmailrc");
    // fetchmail's rcfile, trusting `cert` only. fetchmail matches only host names, not IP
    // addresses, against the certificate ("hostname mismatch" for 127.0.0.1): use "localhost".
    let write_rc = |cert: &Path| {
        write_private(
            &rcfile,
            &format!(
                "set no bouncemail\n\
                 poll localhost service {port} protocol pop3 uidl timeout 30\n\
                 \tuser \"alice\" with password \"wonderland\"\n\
                 \toptions keep ssl sslcertck sslcertfile \"{cert}\" no rewrite\n\
                 \tmda \"/bin/sh -c 'cat > {dir}/msg.$$'\"\n",
                port = server.tls.port(),
                cert = cert.display(),
                dir = delivered.display(),
            ),
        )
    };
    let fetch = |what: &str| {
        run(
            what,
            Command::new(&fetchmail)
                .args(["--nodetach", "--nosyslog", "--verbose", "--fetchmailrc"])
                .arg(&rcfile)
                .arg("--idfile")
                .arg(work.path().join("fetchids"))
                .arg("--pidfile")
                .arg(work.path().join("fetchmail.pid"))
                .env("HOME", work.path())
                .env("FETCHMAILHOME", work.path())
                .env_remove("FETCHMAILUSER"),
        )
    };

    // Verification is on: trusting another certificate, fetchmail gets nothing.
    write_rc(&other_cert);
    let rejected = fetch("fetchmail with an untrusted certificate");
    // Exit status 2: an error opening the connection (here, the certificate check).
    assert_eq!(rejected.status.code(), Some(2), "{}", rejected.describe());
    assert!(files_in(&delivered).is_empty(), "{}", rejected.describe());

    write_rc(&cert);
    let first = fetch("fetchmail (first run)");
    // Exit status 0: mail was retrieved.
    assert_eq!(first.status.code(), Some(0), "{}", first.describe());
    let files = files_in(&delivered);
    assert_eq!(files.len(), seeds.len(), "{}", first.describe());
    assert_delivered(
        "fetchmail",
        &files,
        seeds,
        // fetchmail prepends its own Received: trace field to every message it delivers.
        |bytes| strip_prepended(bytes, &["Received"]),
        // With an MDA, fetchmail strips CRs ("stripcr" defaults to on when an MDA is declared).
        |seed| lf_form(&crlf_form(seed)),
    );
    assert_eq!(seeded.stored("alice"), seeds.len(), "keep");

    let second = fetch("fetchmail (second run)");
    // Exit status 1: no new mail; the UIDL list says everything has been seen.
    assert_eq!(second.status.code(), Some(1), "{}", second.describe());
    assert_eq!(
        files_in(&delivered).len(),
        seeds.len(),
        "{}",
        second.describe()
    );
    assert_eq!(seeded.stored("alice"), seeds.len(), "keep");
}

// ---------------------------------------------------------------------------------------------
// 4. mpop
// ---------------------------------------------------------------------------------------------

#[test]
fn mpop_maildir_keep_implicit_tls() {
    mpop_maildir_keep_implicit_tls_on(Store::Maildir);
}

#[test]
fn mpop_maildir_keep_implicit_tls_on_postgresql() {
    mpop_maildir_keep_implicit_tls_on(Store::Postgres);
}

fn mpop_maildir_keep_implicit_tls_on(store: Store) {
    let mpop = require("mpop");
    let seeded = seeded_server(store, "");
    let (server, seeds) = (&seeded.server, &seeded.seeds);
    let work = tempfile::tempdir().unwrap();
    let home = work.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let (cert, other_cert) = write_certs(server, work.path());
    let maildir = work.path().join("Maildir");
    make_maildir(&maildir);
    let config = work.path().join("mpoprc");
    // mpop's configuration, trusting `cert` only.
    let write_config = |cert: &Path| {
        write_private(
            &config,
            &format!(
                "defaults\n\
                 timeout 30\n\
                 account alice\n\
                 host localhost\n\
                 port {port}\n\
                 tls on\n\
                 tls_starttls off\n\
                 tls_trust_file {cert}\n\
                 auth user\n\
                 user alice\n\
                 passwordeval echo wonderland\n\
                 keep on\n\
                 delivery maildir {maildir}\n\
                 uidls_file {uidls}\n",
                port = server.tls.port(),
                cert = cert.display(),
                maildir = maildir.display(),
                uidls = work.path().join("uidls").display(),
            ),
        )
    };
    let fetch = |what: &str| {
        run(
            what,
            Command::new(&mpop)
                .arg("-C")
                .arg(&config)
                .args(["--debug", "alice"])
                .env("HOME", &home),
        )
    };

    // Verification is on: trusting another certificate, mpop gets nothing.
    write_config(&other_cert);
    let rejected = fetch("mpop with an untrusted certificate");
    assert!(!rejected.status.success(), "{}", rejected.describe());
    assert!(
        maildir_messages(&maildir).is_empty(),
        "{}",
        rejected.describe()
    );

    write_config(&cert);
    let first = fetch("mpop (first run)");
    first.assert_success("mpop (first run)");
    let messages = maildir_messages(&maildir);
    assert_eq!(messages.len(), seeds.len(), "{}", first.describe());
    assert_delivered(
        "mpop",
        &messages,
        seeds,
        // mpop prepends a Received: trace field ("received_header", on by default).
        |bytes| strip_prepended(bytes, &["Received"]),
        // mpop's maildir delivery stores messages with LF line ends (it converts CRLF to LF).
        |seed| lf_form(&crlf_form(seed)),
    );
    assert_eq!(seeded.stored("alice"), seeds.len(), "keep");

    let second = fetch("mpop (second run)");
    second.assert_success("mpop (second run)");
    assert_eq!(
        maildir_messages(&maildir).len(),
        seeds.len(),
        "{}",
        second.describe()
    );
    assert_eq!(seeded.stored("alice"), seeds.len(), "keep");
}

// ---------------------------------------------------------------------------------------------
// 5. getmail6
// ---------------------------------------------------------------------------------------------

#[test]
fn getmail_maildir_then_delete() {
    getmail_maildir_then_delete_on(Store::Maildir);
}

#[test]
fn getmail_maildir_then_delete_on_postgresql() {
    getmail_maildir_then_delete_on(Store::Postgres);
}

fn getmail_maildir_then_delete_on(store: Store) {
    let getmail = require("getmail");
    let seeded = seeded_server(store, "");
    let (server, seeds) = (&seeded.server, &seeded.seeds);
    let work = tempfile::tempdir().unwrap();
    let getmaildir = work.path().join("getmail");
    std::fs::create_dir(&getmaildir).unwrap();
    let (cert, other_cert) = write_certs(server, work.path());
    let maildir = work.path().join("Maildir");
    make_maildir(&maildir);
    let rc = |cert: &Path, delete: bool| {
        format!(
            "[retriever]\n\
             type = SimplePOP3SSLRetriever\n\
             server = localhost\n\
             port = {port}\n\
             username = alice\n\
             password = wonderland\n\
             ca_certs = {cert}\n\
             timeout = 30\n\
             [destination]\n\
             type = Maildir\n\
             path = {maildir}/\n\
             [options]\n\
             read_all = false\n\
             delete = {delete}\n\
             verbose = 2\n",
            port = server.tls.port(),
            cert = cert.display(),
            maildir = maildir.display(),
        )
    };
    write_private(&getmaildir.join("untrusted.rc"), &rc(&other_cert, false));
    write_private(&getmaildir.join("keep.rc"), &rc(&cert, false));
    write_private(&getmaildir.join("delete.rc"), &rc(&cert, true));
    let user = getmail_user(work.path());
    let try_fetch = |what: &str, rcfile: &str| {
        let mut command = Command::new(&getmail);
        command
            .arg("--getmaildir")
            .arg(&getmaildir)
            .args(["--rcfile", rcfile])
            .env("HOME", work.path());
        if let Some((uid, gid)) = user {
            use std::os::unix::process::CommandExt;
            command.uid(uid).gid(gid);
        }
        run(what, &mut command)
    };
    let fetch = |what: &str, rcfile: &str| {
        let outcome = try_fetch(what, rcfile);
        outcome.assert_success(what);
        outcome
    };

    // Verification is on: trusting another certificate, getmail gets nothing.
    let rejected = try_fetch("getmail with an untrusted certificate", "untrusted.rc");
    assert!(!rejected.status.success(), "{}", rejected.describe());
    assert!(
        maildir_messages(&maildir).is_empty(),
        "{}",
        rejected.describe()
    );

    // getmail 6 can miss the exit of the child it forks for each delivery (a SIGCHLD before
    // it starts waiting: "waiting child pid ... timed out"), a race of its own seen on loaded
    // machines. Only a run that delivers forks, so the first run is retried from scratch.
    let mut first = try_fetch("getmail (first run)", "keep.rc");
    for _ in 0..2 {
        if first.status.success() || !first.stderr.contains("waiting child pid") {
            break;
        }
        for sub in ["tmp", "new", "cur"] {
            for entry in std::fs::read_dir(maildir.join(sub)).unwrap() {
                std::fs::remove_file(entry.unwrap().path()).unwrap();
            }
        }
        for entry in std::fs::read_dir(&getmaildir).unwrap() {
            let path = entry.unwrap().path();
            if path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("oldmail")
            {
                std::fs::remove_file(path).unwrap();
            }
        }
        first = try_fetch("getmail (first run, again)", "keep.rc");
    }
    first.assert_success("getmail (first run)");
    let messages = maildir_messages(&maildir);
    assert_eq!(messages.len(), seeds.len(), "{}", first.describe());
    assert_delivered(
        "getmail",
        &messages,
        seeds,
        // getmail prepends Return-Path:, Delivered-To: and Received: ("delivered_to" and
        // "received" default to true; Return-Path is always written).
        |bytes| strip_prepended(bytes, &["Return-Path", "Delivered-To", "Received"]),
        // getmail writes messages "with native EOL convention": LF on Unix.
        |seed| lf_form(&crlf_form(seed)),
    );
    assert_eq!(seeded.stored("alice"), seeds.len(), "delete = false");

    // read_all = false: the second run retrieves nothing (getmail remembers the UIDLs).
    let second = fetch("getmail (second run)", "keep.rc");
    assert_eq!(
        maildir_messages(&maildir).len(),
        seeds.len(),
        "{}",
        second.describe()
    );
    assert_eq!(seeded.stored("alice"), seeds.len(), "delete = false");

    // delete = true: the messages already retrieved are deleted from the server.
    let third = fetch("getmail (delete run)", "delete.rc");
    assert_eq!(
        maildir_messages(&maildir).len(),
        seeds.len(),
        "{}",
        third.describe()
    );
    assert_eq!(seeded.stored("alice"), 0, "{}", third.describe());
}

/// The user getmail runs as when the tests run as root (as in CI containers): getmail
/// refuses to deliver into a Maildir as root. `nobody` then owns everything under `work`.
/// None when not root.
fn getmail_user(work: &Path) -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions; getpwnam gets a NUL-terminated name and its result
    // is read at once, before any other call could reuse its static buffer.
    let (uid, gid) = unsafe {
        if libc::geteuid() != 0 {
            return None;
        }
        let entry = libc::getpwnam(c"nobody".as_ptr());
        assert!(!entry.is_null(), "no user `nobody` to run getmail as");
        ((*entry).pw_uid, (*entry).pw_gid)
    };
    chown_tree(work, uid, gid);
    Some((uid, gid))
}

fn chown_tree(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            chown_tree(&entry.unwrap().path(), uid, gid);
        }
    }
}
