//! `postie fetch` against postie's own server: keep, delete, delete_after_days with a clock
//! the test sets, max_size, every destination (read back with Python's mailbox module where
//! it applies), STLS and implicit TLS, CA file and pinning, a wrong pin refused, and every
//! login mechanism.

mod common;
mod fetch_support;

use common::{crlf_form, TestServer, BIN};
use fetch_support::*;

const DAY: u64 = 86_400;
const T0: u64 = 1_800_000_000;

/// An [accounts.NAME] table for alice on `server`.
fn account(name: &str, server: &TestServer, tls: &str, extra: &str) -> String {
    let port = if tls == "implicit" {
        server.tls.port()
    } else {
        server.plain.port()
    };
    format!(
        "[accounts.{name}]\nserver = \"127.0.0.1:{port}\"\ntls = \"{tls}\"\nuser = \"alice\"\n\
         password = \"wonderland\"\n{extra}\n"
    )
}

fn pin(server: &TestServer) -> String {
    format!("fingerprint = \"{}\"", fingerprint(&server.cert_pem))
}

/// mboxrd quoting, the way the expected mbox content is written.
fn mboxrd(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in message.split_inclusive(|&b| b == b'\n') {
        let quotes = line.iter().take_while(|&&b| b == b'>').count();
        if line[quotes..].starts_with(b"From ") {
            out.push(b'>');
        }
        out.extend_from_slice(line);
    }
    out
}

#[test]
fn keep_asks_for_reset_state_then_fetches_each_message_once() {
    let server = TestServer::start();
    let messages = sample_messages(3, 3000);
    for m in &messages {
        server.add_message("alice", m);
    }
    let env = FetchEnv::new();
    server.write_cert(&env.path("ca.pem"));
    env.config(&account(
        "home",
        &server,
        "implicit",
        "ca_file = \"ca.pem\"\nkeep = true\ndeliver_to = \"maildir:Mail\"",
    ));

    let listed = env.fetch(&["--list"]);
    assert_eq!(listed.code, 0, "{}{}", listed.stdout, listed.stderr);
    assert!(listed.stdout.contains("MISSING"), "{}", listed.stdout);
    assert!(listed.stdout.contains("3 to fetch"), "{}", listed.stdout);
    assert!(!env.path("Mail").exists(), "--list changes nothing");

    let refused = env.fetch(&[]);
    assert_eq!(refused.code, 66, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("--reset-state"),
        "{}",
        refused.stderr
    );
    assert!(maildir_contents(&env.path("Mail")).is_empty());

    let first = env.fetch(&["--reset-state"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(
        maildir_contents(&env.path("Mail")),
        sorted(messages.clone())
    );
    assert_eq!(
        python_maildir_messages(&env.path("Mail")),
        sorted(messages.clone())
    );

    let again = env.fetch(&[]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.stderr.contains("0 fetched"), "{}", again.stderr);
    let extra = b"Subject: late\n\nbody\n".to_vec();
    server.add_message("alice", &extra);
    assert_eq!(env.fetch(&[]).code, 0);
    let mut expected = messages.clone();
    expected.push(extra);
    assert_eq!(maildir_contents(&env.path("Mail")), sorted(expected));
    assert_eq!(
        server.message_files("alice").len(),
        4,
        "keep leaves mail on the server"
    );
}

#[test]
fn delete_over_stls_with_a_pinned_certificate_into_mbox() {
    let server = TestServer::start();
    let messages = sample_messages(4, 2000);
    for m in &messages {
        server.add_message("alice", m);
    }
    let env = FetchEnv::new();
    env.config(&account(
        "work",
        &server,
        "starttls",
        &format!("{}\ndeliver_to = \"mbox:inbox.mbox\"", pin(&server)),
    ));
    let run = env.fetch(&["work"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("4 fetched") && run.stderr.contains("4 deleted"),
        "{}",
        run.stderr
    );
    assert!(
        server.message_files("alice").is_empty(),
        "deleted on the server"
    );
    let expected: Vec<Vec<u8>> = messages.iter().map(|m| mboxrd(m)).collect();
    assert_eq!(mbox_messages(&env.path("inbox.mbox")), sorted(expected));
    assert!(!env.path("inbox.mbox.lock").exists());
    let empty = env.fetch(&["work"]);
    assert_eq!(empty.code, 0, "{}", empty.stderr);
    assert_eq!(mbox_messages(&env.path("inbox.mbox")).len(), 4);
}

#[test]
fn a_wrong_fingerprint_is_refused() {
    let server = TestServer::start();
    server.add_message("alice", b"Subject: x\n\ny\n");
    let env = FetchEnv::new();
    let wrong = format!("fingerprint = \"sha256:{}\"", "00".repeat(32));
    env.config(&account(
        "a",
        &server,
        "implicit",
        &format!("{wrong}\ndeliver_to = \"maildir:Mail\""),
    ));
    let run = env.fetch(&[]);
    assert_eq!(run.code, 69, "{}", run.stderr);
    assert!(run.stderr.contains("fingerprint"), "{}", run.stderr);
    assert!(maildir_contents(&env.path("Mail")).is_empty());
    assert_eq!(server.message_files("alice").len(), 1);
    // No trust settings at all: the self-signed certificate is refused against the system roots.
    env.config(&account(
        "a",
        &server,
        "implicit",
        "deliver_to = \"maildir:Mail\"",
    ));
    let run = env.fetch(&[]);
    assert_eq!(run.code, 69, "{}", run.stderr);
    assert!(
        run.stderr.contains("not signed by a trusted CA"),
        "{}",
        run.stderr
    );
}

#[test]
fn delete_after_days_follows_the_clock() {
    let server = TestServer::start();
    let messages = sample_messages(2, 500);
    for m in &messages {
        server.add_message("alice", m);
    }
    let env = FetchEnv::new();
    env.config(&account(
        "a",
        &server,
        "implicit",
        &format!(
            "{}\ndelete_after_days = 3\ndeliver_to = \"maildir:Mail\"",
            pin(&server)
        ),
    ));
    let now = |t: u64| t.to_string();
    assert_eq!(env.fetch(&["--reset-state", "--now", &now(T0)]).code, 0);
    assert_eq!(server.message_files("alice").len(), 2);
    let later = env.fetch(&["--now", &now(T0 + 2 * DAY)]);
    assert_eq!(later.code, 0, "{}", later.stderr);
    assert_eq!(server.message_files("alice").len(), 2, "kept for 3 days");
    let expired = env.fetch(&["--now", &now(T0 + 3 * DAY + 1)]);
    assert_eq!(expired.code, 0, "{}", expired.stderr);
    assert!(expired.stderr.contains("2 deleted"), "{}", expired.stderr);
    assert!(server.message_files("alice").is_empty());
    assert_eq!(
        maildir_contents(&env.path("Mail")),
        sorted(messages),
        "fetched once"
    );
}

#[test]
fn max_size_delivers_headers_only_or_skips() {
    let server = TestServer::start();
    let small = b"Subject: small\n\nsmall body\n".to_vec();
    let mut big = b"Subject: big\nFrom: a@b\n\n".to_vec();
    big.extend(std::iter::repeat_n(b"0123456789abcdef\n".as_slice(), 2000).flatten());
    server.add_message("alice", &small);
    server.add_message("alice", &big);
    let env = FetchEnv::new();
    let accounts = format!(
        "{}{}",
        account("headers", &server, "implicit", &format!("{}\nmax_size = 10000\ndeliver_to = \"maildir:Headers\"", pin(&server))),
        account("skipper", &server, "implicit", &format!("{}\nkeep = true\nmax_size = 10000\noversize = \"skip\"\ndeliver_to = \"maildir:Skipped\"", pin(&server))),
    );
    env.config(&accounts);
    let run = env.fetch(&["headers"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("1 headers only"), "{}", run.stderr);
    // The stub: a marker line (account, UIDL, size as LIST gives it), then the header.
    let delivered = maildir_contents(&env.path("Headers"));
    assert_eq!(delivered.len(), 2);
    assert!(delivered.contains(&small));
    let stub = delivered.iter().find(|m| **m != small).unwrap();
    let stub = String::from_utf8_lossy(stub);
    assert!(
        stub.starts_with("X-Postie-Stub: account=headers; uidl=")
            && stub.ends_with("; size=36027\nSubject: big\nFrom: a@b\n\n"),
        "{stub}"
    );
    assert_eq!(
        server.message_files("alice").len(),
        1,
        "the big one stays on the server"
    );
    assert_eq!(env.fetch(&["headers"]).code, 0);
    assert_eq!(
        maildir_contents(&env.path("Headers")).len(),
        2,
        "headers fetched once"
    );

    let skip = env.fetch(&["skipper", "--reset-state"]);
    assert_eq!(skip.code, 0, "{}", skip.stderr);
    assert!(skip.stderr.contains("1 skipped"), "{}", skip.stderr);
    assert!(maildir_contents(&env.path("Skipped")).is_empty());
}

#[test]
fn mda_and_lmtp_destinations() {
    let server = TestServer::start();
    let messages = sample_messages(3, 1000);
    for m in &messages {
        server.add_message("alice", m);
    }
    let env = FetchEnv::new();
    std::fs::create_dir(env.path("mda")).unwrap();
    let sink = LmtpSink::start();
    let accounts = format!(
        "{}{}",
        account(
            "viamda",
            &server,
            "implicit",
            &format!(
                "{}\nkeep = true\ndeliver_to = 'mda:cat > \"$HOME/mda/$$.msg\"'",
                pin(&server)
            )
        ),
        account(
            "vialmtp",
            &server,
            "implicit",
            &format!(
                "{}\nkeep = true\ndeliver_to = \"lmtp:{}\"",
                pin(&server),
                sink.addr
            )
        ),
    );
    env.config(&accounts);
    let run = env.fetch(&["viamda", "vialmtp", "--reset-state"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mut from_mda: Vec<Vec<u8>> = std::fs::read_dir(env.path("mda"))
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    from_mda.sort();
    assert_eq!(from_mda, sorted(messages.clone()));
    let from_lmtp = sorted(sink.messages.lock().unwrap().clone());
    assert_eq!(
        from_lmtp,
        sorted(messages.iter().map(|m| crlf_form(m)).collect())
    );

    // An MDA that fails makes the run fail, and the message is not recorded as fetched.
    env.config(&account(
        "broken",
        &server,
        "implicit",
        &format!(
            "{}\nkeep = true\ndeliver_to = \"mda:exit 75\"",
            pin(&server)
        ),
    ));
    let failed = env.fetch(&["broken", "--reset-state"]);
    assert_eq!(failed.code, 75, "{}", failed.stderr);
    let failed = env.fetch(&["broken"]);
    assert_eq!(failed.code, 75, "tried again: {}", failed.stderr);
}

#[test]
fn every_login_mechanism() {
    let server = TestServer::start_with("apop = true");
    server.add_message("alice", b"Subject: x\n\ny\n");
    let env = FetchEnv::new();
    let mut accounts = String::new();
    for auth in ["plain", "login", "scram-sha-256", "user", "apop"] {
        accounts.push_str(&account(
            auth,
            &server,
            "starttls",
            &format!(
                "{}\nauth = \"{auth}\"\nkeep = true\ndeliver_to = \"maildir:{auth}\"",
                pin(&server)
            ),
        ));
    }
    accounts.push_str(
        &account(
            "wrong",
            &server,
            "implicit",
            &format!(
                "{}\nkeep = true\ndeliver_to = \"maildir:wrong\"",
                pin(&server)
            ),
        )
        .replace("wonderland", "looking-glass"),
    );
    env.config(&accounts);
    for auth in ["plain", "login", "scram-sha-256", "user", "apop"] {
        // `--`: the account named "login" is also `postie fetch login`'s name.
        let run = env.fetch(&["--reset-state", "--", auth]);
        assert_eq!(run.code, 0, "{auth}: {}", run.stderr);
        assert_eq!(maildir_contents(&env.path(auth)).len(), 1, "{auth}");
    }
    let run = env.fetch(&["wrong", "--reset-state"]);
    assert_eq!(run.code, 77, "{}", run.stderr);
    assert!(run.stderr.contains("refused the login"), "{}", run.stderr);
}

#[test]
fn ad_hoc_url_form() {
    let server = TestServer::start();
    server.add_message("alice", b"Subject: ad hoc\n\nbody\n");
    let env = FetchEnv::new();
    let url = format!("pop3s://alice@127.0.0.1:{}", server.tls.port());
    let to = format!("maildir:{}", env.path("Mail").display());
    let fp = fingerprint(&server.cert_pem);
    let state = env.path("state").display().to_string();
    let output = std::process::Command::new(BIN)
        .args([
            "fetch",
            &url,
            "--to",
            &to,
            "--password-env",
            "PW",
            "--fingerprint",
            &fp,
            "--state-dir",
            &state,
        ])
        .env("PW", "wonderland")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        maildir_contents(&env.path("Mail")),
        vec![b"Subject: ad hoc\n\nbody\n".to_vec()]
    );
    assert!(server.message_files("alice").is_empty());
}
