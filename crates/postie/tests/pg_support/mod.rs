//! Helpers for the tests of postie on PostgreSQL (store_postgres*.rs): the `[postgres] url`
//! of a test database, front ends configured for it, messages that name themselves, and a
//! POP3 view that waits out a dead front end's lease.
#![allow(dead_code)] // each test file uses a different part of the harness

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use postie_store_pg::Config;
use tokio_postgres::config::Host;

use crate::common::{Client, ServerBuilder, TestServer};

/// `host:port` of each host `config` names, comma-separated, as a URL holds them.
fn hosts(config: &Config) -> String {
    config
        .get_hosts()
        .iter()
        .zip(config.get_ports())
        .map(|(host, port)| match host {
            Host::Tcp(host) => format!("{host}:{port}"),
            other => panic!("the test clusters listen on TCP, not {other:?}"),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The URL `[postgres] url` takes for the database `config` names (every host of it, and
/// `target_session_attrs=read-write` when there are several).
pub fn url(config: &Config) -> String {
    let attrs = if config.get_hosts().len() > 1 {
        "?target_session_attrs=read-write"
    } else {
        ""
    };
    format!(
        "postgresql://{}@{}/{}{attrs}",
        config.get_user().expect("a user"),
        hosts(config),
        config.get_dbname().expect("a database")
    )
}

/// A front end with POP3 (`lock_session`), LMTP and, with `http`, an HTTP listener, on the
/// database `config` names; `postgres` holds more lines for the [postgres] section.
pub fn front_end(config: &Config, postgres: &str, http: bool) -> TestServer {
    let top = if http {
        "[http]\nlisten = [\"127.0.0.1:0\"]\n"
    } else {
        ""
    };
    ServerBuilder::new()
        .pop3("lock_session = true")
        .mail("store = \"postgres\"")
        .lmtp("")
        .sections(&format!(
            "{top}[postgres]\nurl = \"{}\"\n{postgres}\n",
            url(config)
        ))
        .start()
}

/// A message that names itself: its marker appears once, its body is long enough that a torn
/// write would show.
pub fn message(marker: &str) -> Vec<u8> {
    let mut m = format!("Subject: {marker}\r\nMessage-Id: <{marker}@test>\r\n\r\n").into_bytes();
    for line in 0..60 {
        m.extend_from_slice(
            format!("{marker} line {line} of a message that must arrive whole\r\n").as_bytes(),
        );
    }
    m.extend_from_slice(format!("end of {marker}\r\n").as_bytes());
    m
}

/// The marker of a retrieved message, checking byte for byte that it arrived whole: the
/// message as delivered, below trace headers that are postie's own.
pub fn marker_of(content: &[u8]) -> String {
    let text = String::from_utf8_lossy(content);
    let marker = text
        .lines()
        .find_map(|l| l.strip_prefix("Subject: "))
        .unwrap_or_else(|| panic!("a message without its Subject: {text:?}"))
        .to_owned();
    let original = message(&marker);
    let start = content
        .len()
        .checked_sub(original.len())
        .unwrap_or_else(|| panic!("message {marker} is short: {text:?}"));
    assert_eq!(
        &content[start..],
        &original[..],
        "partial or altered message {marker}"
    );
    assert!(
        content.starts_with(b"Return-Path: ") && !text[..start].contains("Subject: "),
        "message {marker} has more than its trace headers above it: {text:?}"
    );
    marker
}

/// The UID a `%08x%08x` UIDL holds.
pub fn uid_of(uidl: &str) -> u32 {
    u32::from_str_radix(&uidl[..8], 16).unwrap_or_else(|_| panic!("a UIDL of postie's: {uidl}"))
}

/// Logs `user` in on the POP3 server at `addr`, waiting while another session holds the
/// maildrop (up to a minute: a front end killed mid-session leaves its lease to expire).
pub fn login_when_free(addr: SocketAddr, user: &str, password: &str) -> Client {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut client = Client::plain(addr);
        let answer = client.command(&format!("USER {user}"));
        assert!(answer.starts_with("+OK"), "{answer}");
        let answer = client.command(&format!("PASS {password}"));
        if answer.starts_with("+OK") {
            return client;
        }
        assert!(
            answer.starts_with("-ERR [IN-USE]") && Instant::now() < deadline,
            "logging in as {user}: {answer}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every message of alice's maildrop through the POP3 server at `addr`, in UID order: UIDL
/// and marker, each message checked whole and listed once. Ends with QUIT, deleting nothing.
pub fn view(addr: SocketAddr) -> BTreeMap<u32, (String, String)> {
    let mut client = login_when_free(addr, "alice", "wonderland");
    let answer = client.command("UIDL");
    assert!(answer.starts_with("+OK"), "{answer}");
    let listing = String::from_utf8(client.body()).unwrap();
    let mut view = BTreeMap::new();
    let mut markers = std::collections::BTreeSet::new();
    let mut last_uid = 0;
    for line in listing.lines() {
        let (number, uidl) = line.split_once(' ').unwrap();
        let uid = uid_of(uidl);
        assert!(
            uid > last_uid,
            "UIDs out of order in the listing: {listing}"
        );
        last_uid = uid;
        let marker = marker_of(&client.retr(number.parse().unwrap()));
        assert!(
            markers.insert(marker.clone()),
            "message {marker} is there twice"
        );
        view.insert(uid, (uidl.to_owned(), marker));
    }
    assert!(client.command("QUIT").starts_with("+OK"));
    view
}
