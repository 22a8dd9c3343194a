//! Helpers for the mail intake tests: their server, fetching by POP3, and telling the trace
//! headers a delivery adds from the message.
#![allow(dead_code)] // each test file uses a different part

use std::path::PathBuf;

use crate::common::{find_program, ServerBuilder, TestServer};

/// Passwords of the harness users.
pub fn password(user: &str) -> &'static str {
    match user {
        "alice" => "wonderland",
        "bob" => "pass word with spaces",
        other => panic!("no password for {other}"),
    }
}

/// The intake tests' server: LMTP on TCP and on a Unix socket (with `lmtp` lines for its
/// section) and SMTP for example.org, STARTTLS with the test certificate.
pub fn intake_server(lmtp: &str) -> TestServer {
    ServerBuilder::new()
        .lmtp(lmtp)
        .lmtp_socket()
        .smtp("")
        .start()
}

/// Every message of a user's maildrop, by POP3 RETR.
pub fn fetch_all(server: &TestServer, user: &str) -> Vec<Vec<u8>> {
    let mut client = server.plain_client();
    client.login(user, password(user));
    let stat = client.command("STAT");
    let count: usize = stat.split_whitespace().nth(1).unwrap().parse().unwrap();
    let messages = (1..=count).map(|n| client.retr(n)).collect();
    assert!(client.command("QUIT").starts_with("+OK"));
    messages
}

/// The trace headers a delivery put on top, and the message below them.
pub fn split_trace(message: &[u8]) -> (String, Vec<u8>) {
    let mut at = 0;
    let mut in_received = false;
    while at < message.len() {
        let end = message[at..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(message.len(), |lf| at + lf + 1);
        let line = &message[at..end];
        let trace = line.starts_with(b"Return-Path: ")
            || line.starts_with(b"Delivered-To: ")
            || line.starts_with(b"Received: ");
        let continuation = in_received && (line.starts_with(b"\t") || line.starts_with(b" "));
        if !trace && !continuation {
            break;
        }
        in_received = line.starts_with(b"Received: ") || continuation;
        at = end;
    }
    (
        String::from_utf8_lossy(&message[..at]).into_owned(),
        message[at..].to_vec(),
    )
}

/// The path of a program the tests run; `scripts/test` installs them.
pub fn require(program: &str) -> PathBuf {
    find_program(program).unwrap_or_else(|| {
        panic!("{program} is not installed: run scripts/test, which installs the test dependencies")
    })
}

/// A message with everything that breaks naive mail code: a dot line, long lines, NUL, 8-bit,
/// UTF-8, bare LF, and no final newline.
pub fn tricky_message() -> Vec<u8> {
    let mut message = b"From: sender@example.net\r\nTo: alice@example.org\r\nSubject: =?UTF-8?B?w6TDtsO8?=\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n".to_vec();
    message.extend_from_slice(b".\r\n..two dots\r\n.leading dot\r\n");
    message.extend_from_slice("grüß dich 📬\r\n".as_bytes());
    message.extend_from_slice(b"NUL \0 and 8-bit \xe9\xff here\r\n");
    message.extend(std::iter::repeat_n(b'L', 20_000));
    message.extend_from_slice(b"\r\nbare LF\nthen CRLF\r\nno final newline");
    message
}
