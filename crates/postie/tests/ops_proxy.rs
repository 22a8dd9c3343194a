//! PROXY protocol v1 and v2: from a trusted address the header names the client that logs,
//! limits and deliveries see; a trusted connection without one is refused; a header from
//! any other address is refused too, and its claimed address is never believed.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::{ServerBuilder, SmtpClient};
use postie_proto::proxy::ProxyHeader;

fn proxied(source: &str, destination: SocketAddr) -> ProxyHeader {
    ProxyHeader::Proxied {
        source: source.parse().unwrap(),
        destination,
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
}

fn line(reader: &mut impl BufRead) -> String {
    let mut line = String::new();
    let _ = reader.read_line(&mut line);
    line
}

#[test]
fn trusted_proxies_name_the_client() {
    let server = ServerBuilder::new()
        .pop3("proxy_from = [\"127.0.0.0/8\"]")
        .lmtp("proxy_from = [\"127.0.0.1\"]")
        .start();
    // v1 on the plain port, with a pipelined command right behind the header.
    let mut stream = connect(server.plain);
    let header = proxied("203.0.113.7:40000", server.plain).to_v1();
    stream
        .write_all(&[header.as_slice(), b"CAPA\r\n"].concat())
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    assert!(line(&mut reader).starts_with("+OK"), "greeting");
    assert!(line(&mut reader).starts_with("+OK"), "CAPA");
    while line(&mut reader) != ".\r\n" {}
    // The password policy sees the real client, which is not on loopback.
    stream
        .write_all(b"USER alice\r\nPASS wonderland\r\nQUIT\r\n")
        .unwrap();
    let mut rest = String::new();
    reader.read_to_string(&mut rest).unwrap();
    assert!(
        rest.contains("-ERR [AUTH] Plaintext authentication disallowed"),
        "{rest}"
    );

    // v2 on the implicit-TLS port: the ClientHello follows the header.
    let mut stream = connect(server.tls);
    stream
        .write_all(&proxied("[2001:db8::77]:5555", server.tls).to_v2())
        .unwrap();
    let mut tls = common::tls_stream(stream, &server.cert_pem);
    let mut greeting = [0u8; 3];
    tls.read_exact(&mut greeting).unwrap();
    assert_eq!(&greeting, b"+OK");
    tls.write_all(b"QUIT\r\n").unwrap();
    let mut rest = Vec::new();
    let _ = tls.read_to_end(&mut rest);

    // LMTP behind the proxy: the trace header names the real client.
    let mut stream = connect(server.lmtp.unwrap());
    stream
        .write_all(&proxied("198.51.100.4:2525", server.plain).to_v2())
        .unwrap();
    let mut lmtp = SmtpClient::over_tcp(stream);
    assert_eq!(lmtp.command("LHLO test").code, 250);
    let reply = lmtp.deliver("bob@test.example", b"Subject: via proxy\r\n\r\nbody");
    assert_eq!(reply.code, 250, "{reply:?}");
    lmtp.quit();

    let log = server.wait_for_log("session ended", 3);
    assert!(
        log.contains("session ended peer=203.0.113.7:40000"),
        "{log}"
    );
    assert!(
        log.contains("session ended peer=[2001:db8::77]:5555"),
        "{log}"
    );
    assert!(log.contains("peer=198.51.100.4"), "{log}");
    let message = String::from_utf8(server.messages("bob").remove(0)).unwrap();
    assert!(message.contains("198.51.100.4"), "{message}");

    // From a trusted address, a connection without a header is not served.
    let mut stream = connect(server.plain);
    stream
        .write_all(b"USER alice\r\nPASS wonderland\r\n")
        .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert_eq!(answer, "", "served without a PROXY header");
    server.wait_for_log("must start with a valid PROXY header", 1);
}

#[test]
fn headers_from_other_addresses_are_refused() {
    let server = ServerBuilder::new()
        .pop3("proxy_from = [\"10.0.0.0/8\"]")
        .lmtp("proxy_from = [\"10.0.0.0/8\"]")
        .start();
    let mut stream = connect(server.plain);
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    assert!(line(&mut reader).starts_with("+OK"));
    stream
        .write_all(&proxied("203.0.113.9:4000", server.plain).to_v1())
        .unwrap();
    assert!(line(&mut reader).starts_with("-ERR [SYS/PERM]"));
    assert_eq!(line(&mut reader), "", "the connection stays open");

    // On the TLS port the header breaks the handshake.
    let mut stream = connect(server.tls);
    stream
        .write_all(&proxied("203.0.113.9:4001", server.tls).to_v2())
        .unwrap();
    let mut tls = common::tls_stream(stream, &server.cert_pem);
    assert!(tls.read(&mut [0u8; 16]).is_err());

    let mut stream = connect(server.lmtp.unwrap());
    stream
        .write_all(&proxied("203.0.113.9:4002", server.plain).to_v1())
        .unwrap();
    let mut reader = BufReader::new(stream);
    assert!(line(&mut reader).starts_with("220"));
    assert!(
        line(&mut reader).starts_with("5"),
        "LMTP refuses the header line"
    );
    drop(reader);

    let log = server.wait_for_log("session ended", 2);
    assert!(
        !log.contains("203.0.113.9"),
        "a claimed address reached the log:\n{log}"
    );
    assert!(log.contains("peer=127.0.0.1"), "{log}");
}
