//! What `postie fetch` hands on besides the message: an `lmtp:` destination delivers to the
//! account's `lmtp_recipient` (a user here, not the remote login) from the sender the
//! message's `Return-Path:` names, and an mbox's `From ` lines carry that sender. Real
//! `postie serve`s on both sides: the one fetched from, and the LMTP server delivered to.

mod common;
mod fetch_support;

use common::{lmtp_deliver, ServerBuilder};
use fetch_support::{fingerprint, FetchEnv};

#[test]
fn lmtp_recipient_and_envelope_sender_from_return_path() {
    let remote = ServerBuilder::new().lmtp("").start();
    // postie's LMTP puts `Return-Path: <s@example.org>` (the MAIL FROM) on top.
    let reply = lmtp_deliver(
        remote.lmtp.unwrap(),
        "alice",
        b"Subject: hello\r\n\r\nFrom the start of a line\r\n",
    );
    assert_eq!(reply.code, 250);
    let local = ServerBuilder::new().lmtp("").start();

    let env = FetchEnv::new();
    let server = format!(
        "server = \"127.0.0.1:{}\"\ntls = \"implicit\"\nuser = \"alice\"\npassword = \"wonderland\"\n\
         fingerprint = \"{}\"\nkeep = true\n",
        remote.tls.port(),
        fingerprint(&remote.cert_pem)
    );
    env.config(&format!(
        "[accounts.tolmtp]\n{server}deliver_to = \"lmtp:{}\"\nlmtp_recipient = \"bob\"\n\
         [accounts.tombox]\n{server}deliver_to = \"mbox:inbox\"\n",
        local.lmtp.unwrap()
    ));
    let run = env.fetch(&["--reset-state"]);
    assert_eq!(run.code, 0, "{}", run.stderr);

    // Delivered to bob here (alice is the remote login), from the message's sender.
    assert!(local.messages("alice").is_empty());
    let delivered = local.messages("bob");
    assert_eq!(delivered.len(), 1);
    let text = String::from_utf8_lossy(&delivered[0]);
    assert!(
        text.starts_with("Return-Path: <s@example.org>"),
        "the local server's own Return-Path names the original sender:\n{text}"
    );
    let mbox = std::fs::read_to_string(env.path("inbox")).unwrap();
    assert!(
        mbox.starts_with("From s@example.org "),
        "the From_ line carries the sender:\n{mbox}"
    );
    assert!(mbox.contains("\n>From the start of a line\n"), "{mbox}");
}
