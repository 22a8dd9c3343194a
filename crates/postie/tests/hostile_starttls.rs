//! STARTTLS injection, modelled on the EAST checks of "Why TLS is better without STARTTLS"
//! (Poddebniak et al., USENIX Security 2021): commands pipelined behind STLS/STARTTLS in one
//! segment or in separate ones, plaintext sent after the server's go-ahead and before the
//! handshake, state from before the handshake carried over, a second STARTTLS. Nothing sent
//! in the clear is ever executed inside TLS. (The simple one-segment cases are in
//! pop3_server.rs and intake_smtp.rs; the client side is the pop3_client fuzz target.)

mod common;
mod harden_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{ServerBuilder, SmtpClient, TestServer};
use harden_support::{pop3_view, read_for};

fn server() -> TestServer {
    let server = ServerBuilder::new().lmtp("").smtp("").start();
    server.add_message_named("alice", "1.M1P1.host", b"Subject: keep\r\n\r\nprecious\r\n");
    server
}

/// Reads one CRLF line from a TLS stream.
fn tls_line(reader: &mut impl BufRead) -> String {
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    line
}

#[test]
fn pop3_commands_split_from_stls_or_sent_before_the_handshake_never_run() {
    let server = server();
    let before = pop3_view(server.plain, "alice", "wonderland");

    // STLS and the injected commands in separate segments, all before the server answers.
    // Whatever arrives after the server read STLS is either dropped with the buffer or read
    // as TLS, which fails the handshake: never run as commands.
    let mut tcp = TcpStream::connect(server.plain).unwrap();
    tcp.set_nodelay(true).unwrap();
    read_for(&mut tcp, Duration::from_millis(300));
    for segment in [
        &b"STLS\r\n"[..],
        b"USER alice\r\n",
        b"PASS wonderland\r\nDELE 1\r\nQUIT\r\n",
    ] {
        // The server may already have hung up on a failed handshake.
        let _ = tcp.write_all(segment);
    }
    let answer = read_for(&mut tcp, Duration::from_millis(500));
    assert!(answer.starts_with(b"+OK"), "{answer:?}");
    assert_eq!(
        answer.iter().filter(|&&b| b == b'\n').count(),
        1,
        "answered injected commands in the clear: {answer:?}"
    );
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut tls = BufReader::new(common::tls_stream(tcp, &server.cert_pem));
    if tls.get_mut().write_all(b"STAT\r\n").is_ok() {
        let mut stat = String::new();
        if tls.read_line(&mut stat).is_ok() && !stat.is_empty() {
            assert_eq!(stat, "-ERR Not logged in: authenticate first.\r\n");
        }
    }

    // A USER given in the clear does not carry over into TLS.
    let mut tcp = TcpStream::connect(server.plain).unwrap();
    read_for(&mut tcp, Duration::from_millis(300));
    tcp.write_all(b"USER alice\r\n").unwrap();
    let user = read_for(&mut tcp, Duration::from_millis(500));
    tcp.write_all(b"STLS\r\n").unwrap();
    let stls = read_for(&mut tcp, Duration::from_millis(500));
    if stls.starts_with(b"+OK") {
        tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut tls = BufReader::new(common::tls_stream(tcp, &server.cert_pem));
        tls.get_mut().write_all(b"PASS wonderland\r\n").unwrap();
        let pass = tls_line(&mut tls);
        assert!(
            pass.starts_with("-ERR"),
            "USER from before STLS was kept: {user:?} then {pass}"
        );
    }

    // Plaintext after the go-ahead but before the ClientHello breaks the handshake; it is
    // never answered.
    let mut tcp = TcpStream::connect(server.plain).unwrap();
    read_for(&mut tcp, Duration::from_millis(300));
    tcp.write_all(b"STLS\r\n").unwrap();
    let ok = read_for(&mut tcp, Duration::from_millis(500));
    assert!(ok.starts_with(b"+OK"), "{ok:?}");
    tcp.write_all(b"USER alice\r\nPASS wonderland\r\nDELE 1\r\nQUIT\r\n")
        .unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut rest = Vec::new();
    let _ = tcp.read_to_end(&mut rest);
    assert!(
        !rest.windows(3).any(|w| w == b"+OK"),
        "plaintext was executed: {rest:?}"
    );

    // Inside TLS, STLS is refused and not offered.
    let mut client = common::Client::implicit_tls(server.tls, &server.cert_pem);
    assert!(client.command("STLS").starts_with("-ERR"));
    assert_eq!(
        pop3_view(server.plain, "alice", "wonderland"),
        before,
        "nothing was deleted"
    );
}

#[test]
fn smtp_commands_split_from_starttls_or_sent_before_the_handshake_never_run() {
    let server = server();
    let smtp = server.smtp.unwrap();

    // STARTTLS and the injected transaction in separate segments: dropped with the buffer,
    // or read as TLS and failing the handshake.
    let mut client = SmtpClient::tcp(smtp);
    client.send(b"EHLO attacker\r\n");
    assert!(client.reply().text().contains("STARTTLS"));
    client.send(b"STARTTLS\r\n");
    client.send(b"MAIL FROM:<evil@example.net>\r\n");
    client.send(b"RCPT TO:<alice@example.org>\r\nDATA\r\nSubject: injected\r\n\r\nx\r\n.\r\n");
    assert_eq!(client.reply().code, 220);
    // The injected bytes reach the server as its TLS handshake, which it may refuse with an
    // alert (a TLS record, 0x15) before this client starts; never with an SMTP reply.
    let (tcp, unread) = client.into_parts();
    if unread.is_empty() {
        let mut tls = BufReader::new(common::tls_stream(tcp, &server.cert_pem));
        if tls
            .get_mut()
            .write_all(b"RCPT TO:<alice@example.org>\r\n")
            .is_ok()
        {
            let mut rcpt = String::new();
            if tls.read_line(&mut rcpt).is_ok() && !rcpt.is_empty() {
                // Had anything injected run, RCPT would be accepted; the session was reset.
                assert!(rcpt.starts_with("503"), "{rcpt}");
            }
        }
    } else {
        assert_eq!(unread[0], 0x15, "after 220, a plaintext reply: {unread:?}");
    }

    // An honest STARTTLS: the session starts over, and STARTTLS is neither offered again
    // nor accepted.
    let mut client = SmtpClient::tcp(smtp);
    client.send(b"EHLO client\r\n");
    client.reply();
    client.send(b"STARTTLS\r\n");
    assert_eq!(client.reply().code, 220);
    let mut tls = BufReader::new(common::tls_stream(client.into_tcp(), &server.cert_pem));
    tls.get_mut().write_all(b"EHLO client\r\n").unwrap();
    let mut ehlo = Vec::new();
    loop {
        let line = tls_line(&mut tls);
        let last = line.as_bytes().get(3) != Some(&b'-');
        ehlo.push(line);
        if last {
            break;
        }
    }
    assert!(
        !ehlo.iter().any(|l| l.contains("STARTTLS")),
        "STARTTLS offered inside TLS: {ehlo:?}"
    );
    tls.get_mut().write_all(b"STARTTLS\r\n").unwrap();
    assert!(tls_line(&mut tls).starts_with("503"), "a second STARTTLS");

    // Plaintext after the 220 and before the ClientHello: never answered.
    let mut client = SmtpClient::tcp(smtp);
    client.send(b"EHLO attacker\r\n");
    client.reply();
    client.send(b"STARTTLS\r\n");
    assert_eq!(client.reply().code, 220);
    client
        .send(b"MAIL FROM:<evil@example.net>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\nx\r\n.\r\n");
    let mut tcp = client.into_tcp();
    let mut rest = Vec::new();
    let _ = tcp.read_to_end(&mut rest);
    assert!(
        !rest.windows(3).any(|w| w == b"250" || w == b"354"),
        "plaintext was executed: {rest:?}"
    );

    // No message from any of this reached alice.
    let view = pop3_view(server.plain, "alice", "wonderland");
    assert_eq!(view.len(), 1, "an injected message was delivered");
}

#[test]
fn lmtp_refuses_starttls_and_stays_one_plaintext_session() {
    let server = server();
    let mut client = SmtpClient::tcp(server.lmtp.unwrap());
    client.send(b"LHLO mta\r\n");
    assert!(
        !client.reply().text().contains("STARTTLS"),
        "LMTP offers no STARTTLS"
    );
    // A STARTTLS with commands behind it: refused, so nothing switches and the pipelined
    // commands are just the next plaintext commands of the same session.
    client.send(b"STARTTLS\r\nNOOP\r\n");
    assert_eq!(client.reply().code, 502);
    assert_eq!(client.reply().code, 250);
    client.send(b"QUIT\r\n");
    assert_eq!(client.reply().code, 221);
}
