//! Bad input against the real server: it answers with -ERR or hangs up, keeps serving others
//! and loses nothing.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::TestServer;

fn assert_mail_intact(server: &TestServer) {
    let mut client = server.plain_client();
    client.login("alice", "wonderland");
    assert_eq!(client.command("STAT"), "+OK 1 12");
    assert_eq!(client.retr(1), b"precious\r\n\r\n");
    assert!(client.command("QUIT").starts_with("+OK"));
}

fn server_with_mail() -> TestServer {
    let server = TestServer::start_with("max_connections_per_ip = 2000");
    server.add_message("alice", b"precious\n\n");
    server
}

#[test]
fn garbage_and_nul_bytes_get_errors() {
    let server = server_with_mail();
    let mut client = server.plain_client();
    for line in [
        &b"\x00\x00\x00"[..],
        b"",
        b":",
        b"USER:alice",
        b"\xff\xfe\xfd",
        b"RETR 1",
        b"LIST -1",
        b"TOP 1 x",
    ] {
        let mut bytes = line.to_vec();
        bytes.extend_from_slice(b"\r\n");
        client.send_raw(&bytes);
        let answer = client.line();
        assert!(answer.starts_with("-ERR"), "{line:?} gave {answer}");
    }
    client.login("alice", "wonderland");
    assert_eq!(
        client.command("RETR 99999999999999999999"),
        "-ERR Invalid message number"
    );
    assert_eq!(client.command("RETR 0"), "-ERR Invalid message number");
    assert!(client.command("QUIT").starts_with("+OK"));
    assert_mail_intact(&server);
}

#[test]
fn a_megabyte_line_without_newline() {
    let server = server_with_mail();
    let mut client = server.plain_client();
    client.send_raw(&vec![b'A'; 1 << 20]);
    assert_eq!(client.line(), "-ERR Line too long.");
    client.send_raw(b"\r\nCAPA\r\n");
    assert!(client.line().starts_with("+OK Capability"));
    assert_mail_intact(&server);
}

#[test]
fn commands_split_into_single_bytes() {
    let server = server_with_mail();
    let mut stream = TcpStream::connect(server.plain).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    for byte in b"USER alice\r\nPASS wonderland\r\nSTAT\r\nQUIT\r\n" {
        stream.write_all(&[*byte]).unwrap();
        stream.flush().unwrap();
    }
    let mut transcript = String::new();
    stream.read_to_string(&mut transcript).unwrap();
    assert!(transcript.contains("+OK 1 12\r\n"), "{transcript}");
    assert!(
        transcript.ends_with("+OK Logging out, messages deleted.\r\n"),
        "{transcript}"
    );
}

#[test]
fn twenty_bad_commands_disconnect() {
    let server = server_with_mail();
    let mut client = server.plain_client();
    client.send_raw(&b"XYZZY\r\n".repeat(25));
    for _ in 0..19 {
        assert_eq!(client.line(), "-ERR Unknown command");
    }
    assert!(client.line().starts_with("-ERR Too many invalid commands"));
    assert!(client.is_closed());
    assert_mail_intact(&server);
}

#[test]
fn five_hundred_connections_at_once() {
    let server = server_with_mail();
    let mut streams: Vec<TcpStream> = (0..500)
        .map(|_| {
            let stream = TcpStream::connect(server.plain).expect("connect");
            stream
                .set_read_timeout(Some(Duration::from_secs(60)))
                .unwrap();
            stream
        })
        .collect();
    // A normal session is served while all of them are open.
    assert_mail_intact(&server);
    for stream in &mut streams {
        stream
            .write_all(b"USER alice\r\nPASS wonderland\r\nSTAT\r\nQUIT\r\n")
            .unwrap();
    }
    for stream in &mut streams {
        let mut transcript = String::new();
        stream.read_to_string(&mut transcript).unwrap();
        assert!(transcript.contains("+OK 1 12\r\n"), "{transcript}");
    }
    assert_mail_intact(&server);
}

#[test]
fn per_address_limit_refuses_with_sys_temp() {
    let server = TestServer::start_with("max_connections_per_ip = 3");
    let held: Vec<_> = (0..3).map(|_| server.plain_client()).collect();
    let mut refused = String::new();
    let mut stream = TcpStream::connect(server.plain).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.read_to_string(&mut refused).unwrap();
    assert_eq!(
        refused,
        "-ERR [SYS/TEMP] Too many connections from your address.\r\n"
    );
    drop(held);
    std::thread::sleep(Duration::from_millis(200));
    let mut client = server.plain_client();
    assert!(
        client.command("NOOP").starts_with("-ERR"),
        "served again once others left"
    );
}
