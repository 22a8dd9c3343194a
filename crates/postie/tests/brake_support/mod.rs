//! Support for the brute-force brake's tests: a server whose clients all come through a
//! trusted PROXY on IPv6 loopback, so that a test can present any client address, and the
//! delays the server logs for each answer.
#![allow(dead_code)] // each test file uses a different part

use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use postie_proto::proxy::ProxyHeader;

use crate::common::{Client, ServerBuilder, TestServer};

/// `builder` listening on `::1` behind a trusted PROXY, with plaintext logins allowed (the
/// presented clients are not on loopback) and room for many connections per address.
pub fn behind_proxy(builder: ServerBuilder) -> ServerBuilder {
    let loopback: SocketAddr = "[::1]:0".parse().unwrap();
    builder.pop3_listen(loopback, loopback).pop3(
        "allow_plaintext_auth = true\nproxy_from = [\"::1\"]\nmax_connections_per_ip = 1000\n",
    )
}

/// A connection that presents itself as coming from `source` (an IPv4 or IPv6 address).
pub fn client_as(server: &TestServer, source: &str) -> Client {
    let source: IpAddr = source.parse().expect("an address");
    // PROXY v1 wants both addresses of one family; the destination is only logged.
    let destination: IpAddr = match source {
        IpAddr::V4(_) => "192.0.2.1".parse().unwrap(),
        IpAddr::V6(_) => "2001:db8:ffff::1".parse().unwrap(),
    };
    let header = ProxyHeader::Proxied {
        source: SocketAddr::new(source, 40000),
        destination: SocketAddr::new(destination, 110),
    };
    let mut tcp = TcpStream::connect(server.plain).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    tcp.write_all(&header.to_v1()).unwrap();
    Client::over_tcp(tcp)
}

/// One USER/PASS attempt as `source`: the answer and how long PASS took.
pub fn attempt(
    server: &TestServer,
    source: &str,
    user: &str,
    password: &str,
) -> (String, Duration) {
    let mut client = client_as(server, source);
    let answer = client.command(&format!("USER {user}"));
    assert!(answer.starts_with("+OK"), "{answer}");
    let started = Instant::now();
    let answer = client.command(&format!("PASS {password}"));
    let took = started.elapsed();
    client.command("QUIT");
    (answer, took)
}

/// A failed attempt as `source`.
pub fn fail(server: &TestServer, source: &str, user: &str) {
    let (answer, _) = attempt(server, source, user, "guess");
    assert!(answer.starts_with("-ERR [AUTH]"), "{answer}");
}

/// A correct login as `source` (alice and bob are the test users); how long PASS took.
pub fn log_in(server: &TestServer, source: &str, user: &str) -> Duration {
    let password = match user {
        "alice" => "wonderland",
        "bob" => "pass word with spaces",
        other => panic!("no password for {other}"),
    };
    let (answer, took) = attempt(server, source, user, password);
    assert!(answer.starts_with("+OK"), "{user} from {source}: {answer}");
    took
}

/// An answer the server logged: "authentication failed" or "logged in".
#[derive(Debug, Clone)]
pub struct Logged {
    pub peer: IpAddr,
    pub user: String,
    pub delay_ms: u64,
}

/// The answers logged with `message`, in order, once there are at least `count`.
pub fn logged(server: &TestServer, message: &str, count: usize) -> Vec<Logged> {
    let log = server.wait_for_log(message, count);
    log.lines()
        .filter(|line| line.contains(message))
        .map(|line| {
            let field = |name: &str| {
                line.split_whitespace()
                    .find_map(|token| token.strip_prefix(&format!("{name}=")))
                    .unwrap_or_else(|| panic!("no {name} in {line}"))
                    .trim_matches('"')
                    .to_owned()
            };
            let peer: SocketAddr = field("peer").parse().expect("peer address");
            Logged {
                peer: peer.ip(),
                user: field("user"),
                delay_ms: field("delay_ms").parse().expect("delay"),
            }
        })
        .collect()
}

/// The delay logged for the last answer `message` to `user` from `peer`.
pub fn last_delay(server: &TestServer, message: &str, peer: &str, user: &str) -> u64 {
    let peer: IpAddr = peer.parse().unwrap();
    logged(server, message, 1)
        .into_iter()
        .rev()
        .find(|entry| entry.peer == peer && entry.user == user)
        .unwrap_or_else(|| panic!("no {message:?} for {user} from {peer}:\n{}", server.log()))
        .delay_ms
}
