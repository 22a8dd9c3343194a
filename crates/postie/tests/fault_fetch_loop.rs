//! The guarantee of `postie fetch` in a loop: run after run, the fetcher is killed at a random
//! moment or its server connection cut at a random point (mid-RETR, after RETR, after DELE,
//! after QUIT) while new mail keeps arriving. After every run no message is lost (each is on
//! the server or in the Maildir) and none is in the Maildir twice; at the end one clean run
//! leaves every message in the Maildir exactly once and the server empty.
//! `POSTIE_FETCH_ROUNDS` sets the number of runs (scripts/crash-loop runs 200).

mod common;
mod fetch_support;
mod harden_support;

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{Random, TestServer};
use fetch_support::{maildir_contents, sample_messages, Cut, CutProxy, FetchEnv};
use harden_support::rounds;

fn account(port: u16) -> String {
    format!(
        "[accounts.a]\nserver = \"127.0.0.1:{port}\"\ntls = \"none\"\nuser = \"alice\"\n\
         password = \"wonderland\"\ndeliver_to = \"maildir:Mail\"\n"
    )
}

fn on_server(server: &TestServer) -> Vec<Vec<u8>> {
    server
        .message_files("alice")
        .iter()
        .filter_map(|path| std::fs::read(path).ok())
        .collect()
}

#[test]
fn fetch_killed_or_cut_at_random_points_run_after_run_loses_and_duplicates_nothing() {
    let rounds = rounds("POSTIE_FETCH_ROUNDS", 20) as usize;
    let server = TestServer::start();
    let messages = sample_messages(20 + 3 * rounds, 6_000);
    let mut added = 0;
    let add = |count: usize, added: &mut usize| {
        for message in &messages[*added..*added + count] {
            server.add_message("alice", message);
        }
        *added += count;
    };
    add(20, &mut added);
    let env = FetchEnv::new();
    let mut random = Random::new();
    let (mut killed, mut cut, mut completed) = (0, 0, 0);
    for round in 0..rounds {
        add(3, &mut added);
        match random.below(5) {
            0 => {
                env.config(&account(server.plain.port()));
                let mut child = env.spawn(&[]);
                std::thread::sleep(Duration::from_millis(random.below(40)));
                if child.try_wait().unwrap().is_none() {
                    killed += 1;
                }
                let _ = child.kill();
                let _ = child.wait();
            }
            choice => {
                let point = match choice {
                    1 => Cut::ServerBytes(1_000 + random.below(60_000) as usize),
                    2 => Cut::ClientCommand("RETR"),
                    3 => Cut::ClientCommand("DELE"),
                    _ => Cut::ClientCommand("QUIT"),
                };
                let proxy = CutProxy::start(server.plain, point);
                env.config(&account(proxy.addr.port()));
                let run = env.fetch(&[]);
                assert!(
                    run.code == 0 || run.code == 75,
                    "round {round}: exit {}: {}",
                    run.code,
                    run.stderr
                );
                if proxy.cuts.load(Ordering::SeqCst) > 0 {
                    cut += 1;
                } else {
                    completed += 1;
                }
            }
        }
        // Nothing lost: every message added is on the server or in the Maildir; nothing twice.
        let fetched = maildir_contents(&env.path("Mail"));
        let unique: BTreeSet<&Vec<u8>> = fetched.iter().collect();
        assert_eq!(
            unique.len(),
            fetched.len(),
            "round {round}: a message was delivered twice"
        );
        let remaining = on_server(&server);
        for message in &messages[..added] {
            assert!(
                unique.contains(message) || remaining.contains(message),
                "round {round}: a message was lost"
            );
        }
    }
    env.config(&account(server.plain.port()));
    let last = env.fetch(&[]);
    assert_eq!(last.code, 0, "{}", last.stderr);
    let mut expected = messages[..added].to_vec();
    expected.sort();
    assert_eq!(
        maildir_contents(&env.path("Mail")),
        expected,
        "every message exactly once"
    );
    assert!(
        server.message_files("alice").is_empty(),
        "nothing left on the server"
    );
    eprintln!(
        "{rounds} runs: {killed} killed while running, {cut} cut, {completed} not cut; \
         {added} messages fetched, 0 lost, 0 duplicated"
    );
    assert!(
        killed + cut > 0,
        "no run was interrupted: the test proved nothing"
    );
}
