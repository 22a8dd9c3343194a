//! `postie fetch --daemon`: polls once at start, then on its schedule, and at once on SIGUSR1.

mod common;
mod fetch_support;

use std::time::{Duration, Instant};

use common::TestServer;
use fetch_support::*;

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn daemon_polls_at_start_and_on_sigusr1() {
    let server = TestServer::start();
    let messages = sample_messages(3, 500);
    server.add_message("alice", &messages[0]);
    let env = FetchEnv::new();
    server.write_cert(&env.path("ca.pem"));
    env.config(&format!(
        "[accounts.home]\nserver = \"127.0.0.1:{}\"\ntls = \"implicit\"\nuser = \"alice\"\npassword = \"wonderland\"\n\
         ca_file = \"ca.pem\"\ndeliver_to = \"maildir:Mail\"\n",
        server.tls.port()
    ));
    // An hour between polls: anything fetched after the first poll came from the signal.
    let mut daemon = env.spawn(&["--daemon", "--interval", "3600", "--quiet"]);
    wait_for("the first poll", || {
        maildir_contents(&env.path("Mail")).len() == 1
    });
    wait_for("the server to be emptied", || {
        server.message_files("alice").is_empty()
    });

    server.add_message("alice", &messages[1]);
    server.add_message("alice", &messages[2]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        maildir_contents(&env.path("Mail")).len(),
        1,
        "no poll before the signal"
    );
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(daemon.id() as i32, libc::SIGUSR1) }, 0);
    wait_for("the poll SIGUSR1 asked for", || {
        maildir_contents(&env.path("Mail")).len() == 3
    });
    assert_eq!(maildir_contents(&env.path("Mail")), sorted(messages));
    assert!(
        daemon.try_wait().unwrap().is_none(),
        "the daemon keeps running"
    );
    daemon.kill().unwrap();
    daemon.wait().unwrap();
}
