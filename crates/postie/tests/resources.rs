//! Memory limits of the real server: RETR of a large message in bounded memory. (Timeouts are
//! tested in process: postie-server/tests/pop3_in_process.rs.)

mod common;

use std::io::Read;
use std::time::Duration;

use common::TestServer;

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn a_100_mb_message_streams_in_bounded_memory() {
    let server = TestServer::start();
    let line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.,;:!?-_+=()[]{}<>/\\|@#$%^&*~\n";
    let mut message = b"Subject: big\n\n".to_vec();
    while message.len() < 100 * 1024 * 1024 {
        message.extend_from_slice(line);
    }
    server.add_message("alice", &message);
    let expected_size = common::crlf_form(&message).len();
    drop(message);
    let before = peak_rss_kib(server.pid());
    let mut client = server.plain_client();
    client.login("alice", "wonderland");
    assert_eq!(
        client.command("RETR 1"),
        format!("+OK {expected_size} octets")
    );
    let mut received = 0usize;
    loop {
        let line = client.raw_line();
        assert!(!line.is_empty(), "connection closed early");
        if line == b".\r\n" {
            break;
        }
        received += line.len();
    }
    assert_eq!(received, expected_size);
    let after = peak_rss_kib(server.pid());
    assert!(
        after < before + 32 * 1024,
        "peak RSS grew from {before} KiB to {after} KiB for a 100 MB RETR"
    );
}

#[test]
fn a_client_that_stops_reading_does_not_grow_the_server() {
    let server = TestServer::start();
    let mut message = b"Subject: big\n\n".to_vec();
    message.resize(60 * 1024 * 1024, b'x');
    server.add_message("alice", &message);
    drop(message);
    let before = peak_rss_kib(server.pid());
    let mut stream = std::net::TcpStream::connect(server.plain).unwrap();
    use std::io::Write;
    stream
        .write_all(b"USER alice\r\nPASS wonderland\r\nRETR 1\r\n")
        .unwrap();
    let mut some = [0u8; 1024];
    stream.read_exact(&mut some).unwrap();
    // Never read the rest: the server must block on the socket, not buffer the message.
    std::thread::sleep(Duration::from_secs(2));
    let after = peak_rss_kib(server.pid());
    assert!(
        after < before + 32 * 1024,
        "peak RSS grew from {before} KiB to {after} KiB"
    );
    let mut other = server.plain_client();
    other.login("bob", "pass word with spaces");
    assert_eq!(other.command("STAT"), "+OK 0 0", "others are still served");
}
