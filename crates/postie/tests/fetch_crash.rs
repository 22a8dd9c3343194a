//! Crash safety of `postie fetch` in delete mode: runs killed at random moments, and a server
//! connection cut in the middle of a RETR, right after a DELE and right after QUIT. After
//! running again, every message has arrived exactly once and nothing is left on the server.

mod common;
mod fetch_support;

use std::time::Duration;

use common::{Random, TestServer};
use fetch_support::*;

fn plain_account(port: u16) -> String {
    format!(
        "[accounts.a]\nserver = \"127.0.0.1:{port}\"\ntls = \"none\"\nuser = \"alice\"\n\
         password = \"wonderland\"\ndeliver_to = \"maildir:Mail\"\n"
    )
}

fn assert_exactly_once(env: &FetchEnv, server: &TestServer, messages: &[Vec<u8>]) {
    assert_eq!(
        maildir_contents(&env.path("Mail")),
        sorted(messages.to_vec()),
        "every message exactly once"
    );
    assert!(
        server.message_files("alice").is_empty(),
        "nothing left on the server"
    );
}

#[test]
fn runs_killed_at_random_points_resume_without_loss_or_duplicates() {
    let server = TestServer::start();
    // Mail keeps arriving between runs, so every run has work to be killed in the middle of
    // (a run that fetched everything would make later kills meaningless).
    let messages = sample_messages(12 * 25, 40_000);
    let mut batches = messages.chunks(25);
    let env = FetchEnv::new();
    env.config(&format!(
        "[accounts.a]\nserver = \"127.0.0.1:{}\"\nuser = \"alice\"\npassword = \"wonderland\"\n\
         fingerprint = \"{}\"\ndeliver_to = \"maildir:Mail\"\n",
        server.tls.port(),
        fingerprint(&server.cert_pem)
    ));
    let mut random = Random::new();
    let mut killed_while_running = 0;
    for _ in 0..12 {
        for m in batches.next().unwrap_or_default() {
            server.add_message("alice", m);
        }
        let mut child = env.spawn(&[]);
        std::thread::sleep(Duration::from_millis(2 + random.below(60)));
        if child.try_wait().unwrap().is_none() {
            killed_while_running += 1;
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    eprintln!("{killed_while_running} of 12 runs killed while running");
    assert!(
        killed_while_running > 0,
        "no run was interrupted; the test proves nothing"
    );
    let last = env.fetch(&[]);
    assert_eq!(last.code, 0, "{}", last.stderr);
    assert_exactly_once(&env, &server, &messages);
}

fn cut_then_resume(cut: Cut, expect_cut_code: i32) {
    let server = TestServer::start();
    let messages = sample_messages(6, 20_000);
    for m in &messages {
        server.add_message("alice", m);
    }
    let proxy = CutProxy::start(server.plain, cut);
    let env = FetchEnv::new();
    env.config(&plain_account(proxy.addr.port()));
    let first = env.fetch(&[]);
    assert_eq!(
        proxy.cuts.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the proxy cut"
    );
    assert_eq!(first.code, expect_cut_code, "{}", first.stderr);
    assert!(
        first.stderr.contains("warning: tls = \"none\""),
        "{}",
        first.stderr
    );
    let second = env.fetch(&[]);
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_exactly_once(&env, &server, &messages);
}

#[test]
fn connection_cut_mid_retr() {
    let mut random = Random::new();
    // Somewhere inside the bodies: past the greeting, CAPA, login and listings.
    cut_then_resume(Cut::ServerBytes(2_000 + random.below(100_000) as usize), 75);
}

#[test]
fn connection_cut_after_dele() {
    cut_then_resume(Cut::ClientCommand("DELE"), 75);
}

#[test]
fn connection_cut_after_quit() {
    // The server may or may not have applied the deletions; the next run sorts it out.
    cut_then_resume(Cut::ClientCommand("QUIT"), 75);
}
