//! What a real `postie serve` announces in CAPA about keeping mail (EXPIRE) and logging in
//! (LOGIN-DELAY), as `postie fetch` shows it: in `--list`, and as a warning on every run
//! when an account keeps mail on a server that says it deletes it.

mod common;
mod fetch_support;

use common::TestServer;
use fetch_support::FetchEnv;

fn account(server: &TestServer, extra: &str) -> String {
    format!(
        "[accounts.a]\nserver = \"127.0.0.1:{}\"\ntls = \"none\"\nuser = \"alice\"\n\
         password = \"wonderland\"\ndeliver_to = \"maildir:Mail\"\n{extra}\n",
        server.plain.port()
    )
}

#[test]
fn expire_zero_warns_an_account_that_keeps_mail() {
    let server = TestServer::start_with("expire = 0");
    server.add_message("alice", b"Subject: one\n\nbody\n");
    let env = FetchEnv::new();
    env.config(&account(&server, "keep = true"));
    let list = env.fetch(&["--list"]);
    assert_eq!(list.code, 0, "{}", list.stderr);
    assert!(
        list.stdout.contains("the server announces EXPIRE 0")
            && list
                .stdout
                .contains("warning: the server announces EXPIRE 0"),
        "{}",
        list.stdout
    );
    let run = env.fetch(&["--reset-state"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("warning: the server announces EXPIRE 0"),
        "{}",
        run.stderr
    );
    env.config(&account(&server, ""));
    let delete = env.fetch(&["--list"]);
    assert!(
        delete.stdout.contains("EXPIRE 0") && !delete.stdout.contains("warning: the server"),
        "an account that deletes is not warned: {}",
        delete.stdout
    );
}

#[test]
fn login_delay_is_shown_and_an_interval_below_it_warned() {
    let server = TestServer::start_with("login_delay_secs = 60");
    let env = FetchEnv::new();
    env.config(&account(&server, "interval = 30"));
    let list = env.fetch(&["--list"]);
    assert_eq!(list.code, 0, "{}", list.stderr);
    assert!(
        list.stdout.contains("LOGIN-DELAY 60 s (no login sooner)")
            && list
                .stdout
                .contains("LOGIN-DELAY 60 s, longer than interval = 30 s"),
        "{}",
        list.stdout
    );
    // What polling sooner gets: the server refuses the login for now.
    let sooner = env.fetch(&[]);
    assert_eq!(sooner.code, 75, "{}", sooner.stderr);
    assert!(sooner.stderr.contains("LOGIN-DELAY"), "{}", sooner.stderr);
}
