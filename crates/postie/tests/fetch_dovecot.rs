//! `postie fetch` against a real Dovecot (Debian's dovecot-pop3d) started by the test with a
//! throwaway configuration: STLS and implicit TLS, pinning and a CA file, AUTH PLAIN,
//! SCRAM-SHA-256 and APOP, keep then delete, max_size, and crash safety over a cut
//! connection.

mod common;
mod fetch_support;

use fetch_support::*;

fn account(name: &str, dovecot: &Dovecot, tls: &str, extra: &str) -> String {
    let port = if tls == "implicit" {
        dovecot.tls.port()
    } else {
        dovecot.plain.port()
    };
    format!(
        "[accounts.{name}]\nserver = \"127.0.0.1:{port}\"\ntls = \"{tls}\"\nuser = \"alice\"\n\
         password = \"wonderland\"\n{extra}\n"
    )
}

#[test]
fn dovecot_keep_with_every_mechanism_then_delete() {
    let dovecot = Dovecot::start();
    let messages = sample_messages(5, 4000);
    for m in &messages {
        dovecot.add_message("alice", m);
    }
    let env = FetchEnv::new();
    std::fs::write(env.path("ca.pem"), &dovecot.cert_pem).unwrap();
    let pin = format!("fingerprint = \"{}\"", fingerprint(&dovecot.cert_pem));
    let mut accounts = String::new();
    for auth in ["plain", "scram-sha-256", "apop", "login"] {
        accounts.push_str(&account(
            auth,
            &dovecot,
            "starttls",
            &format!("{pin}\nauth = \"{auth}\"\nkeep = true\ndeliver_to = \"maildir:{auth}\""),
        ));
    }
    accounts.push_str(&account(
        "cleanup",
        &dovecot,
        "implicit",
        "ca_file = \"ca.pem\"\ndeliver_to = \"mbox:all.mbox\"",
    ));
    env.config(&accounts);
    for auth in ["plain", "scram-sha-256", "apop", "login"] {
        let run = env.fetch(&["--reset-state", "--", auth]);
        assert_eq!(run.code, 0, "{auth}: {}", run.stderr);
        assert_eq!(
            maildir_contents(&env.path(auth)),
            sorted(messages.clone()),
            "{auth}"
        );
        let again = env.fetch(&["--", auth]);
        assert_eq!(again.code, 0, "{auth}: {}", again.stderr);
        assert_eq!(
            maildir_contents(&env.path(auth)).len(),
            messages.len(),
            "{auth}: once"
        );
    }
    assert_eq!(dovecot.message_count("alice"), messages.len());
    let run = env.fetch(&["cleanup"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(dovecot.message_count("alice"), 0, "deleted on Dovecot");
    assert_eq!(mbox_messages(&env.path("all.mbox")).len(), messages.len());
}

#[test]
fn dovecot_max_size_wrong_pin_and_a_cut_connection() {
    let dovecot = Dovecot::start();
    let messages = sample_messages(6, 20_000);
    for m in &messages {
        dovecot.add_message("alice", m);
    }
    let env = FetchEnv::new();
    let pin = format!("fingerprint = \"{}\"", fingerprint(&dovecot.cert_pem));
    env.config(&account(
        "bad",
        &dovecot,
        "implicit",
        &format!(
            "fingerprint = \"sha256:{}\"\ndeliver_to = \"maildir:Bad\"",
            "11".repeat(32)
        ),
    ));
    let refused = env.fetch(&[]);
    assert_eq!(refused.code, 69, "{}", refused.stderr);
    assert_eq!(dovecot.message_count("alice"), 6);

    env.config(&account(
        "small",
        &dovecot,
        "implicit",
        &format!("{pin}\nkeep = true\nmax_size = 100\noversize = \"headers\"\ndeliver_to = \"maildir:Headers\""),
    ));
    let headers = env.fetch(&["--reset-state"]);
    assert_eq!(headers.code, 0, "{}", headers.stderr);
    // Each stub is its marker line, then the message's header.
    let delivered = sorted(
        maildir_contents(&env.path("Headers"))
            .into_iter()
            .map(|stub| {
                assert!(stub.starts_with(b"X-Postie-Stub: account=small; uidl="));
                let marker_end = stub.iter().position(|&b| b == b'\n').unwrap() + 1;
                stub[marker_end..].to_vec()
            })
            .collect(),
    );
    assert_eq!(delivered.len(), 6);
    for (header, message) in delivered.iter().zip(sorted(messages.clone())) {
        let end = message.windows(2).position(|w| w == b"\n\n").unwrap() + 2;
        assert_eq!(header, &message[..end]);
    }

    // Delete mode through a proxy that cuts the connection inside the third message.
    let proxy = CutProxy::start(dovecot.tls, Cut::ServerBytes(50_000));
    env.config(&format!(
        "[accounts.cut]\nserver = \"127.0.0.1:{}\"\nuser = \"alice\"\npassword = \"wonderland\"\n\
         {pin}\ndeliver_to = \"maildir:Mail\"\n",
        proxy.addr.port()
    ));
    let first = env.fetch(&[]);
    assert_eq!(first.code, 75, "{}", first.stderr);
    let second = env.fetch(&[]);
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(maildir_contents(&env.path("Mail")), sorted(messages));
    assert_eq!(dovecot.message_count("alice"), 0);
}
