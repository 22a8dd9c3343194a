//! RETR of messages stored in their wire form but for dot-stuffing (CRLF, as LMTP and SMTP
//! deliver mail, with the lines that start with `.` recorded in the name), which postie sends
//! to a plain TCP socket with sendfile(2), writing the stuffing dots between: the same bytes as
//! the encoder path (TLS) and as the RFC 1939 form computed here. Messages with more dot lines
//! than a name records and LF-stored ones still go through the encoder; the metrics say which
//! path each body took. A file truncated under a RETR ends the connection without the
//! terminating `.`.

mod common;
mod ops_support;

use common::{crlf_form, lmtp_deliver, Client, ServerBuilder, TestServer};
use ops_support::metric;

/// What RETR must send after its status line: the CRLF form, dot-stuffed, then `.`.
fn wire_form(stored: &[u8]) -> Vec<u8> {
    let mut wire = Vec::new();
    for line in crlf_form(stored).split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b".") {
            wire.push(b'.');
        }
        wire.extend_from_slice(line);
    }
    wire.extend_from_slice(b".\r\n");
    wire
}

/// The status line and the raw bytes of a multi-line answer up to its terminator, included.
fn raw_retr(client: &mut Client, n: usize) -> (String, Vec<u8>) {
    let status = client.command(&format!("RETR {n}"));
    let mut raw = Vec::new();
    loop {
        let line = client.raw_line();
        assert!(!line.is_empty(), "connection closed inside RETR {n}");
        raw.extend_from_slice(&line);
        if line == b".\r\n" {
            return (status, raw);
        }
    }
}

/// The stored content of each message, in the order POP3 numbers them (delivery order).
fn stored_in_order(server: &TestServer, user: &str) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = server
        .message_files(user)
        .into_iter()
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name.clone(), std::fs::read(&path).unwrap())
        })
        .collect();
    files.sort_by_key(|(name, _)| {
        let (secs, rest) = name.split_once(".M").unwrap();
        let usecs: u64 = rest
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap();
        (secs.parse::<u64>().unwrap(), usecs)
    });
    files
}

#[test]
fn crlf_messages_go_out_as_stored_byte_for_byte_as_the_encoder_sends_them() {
    let server = ServerBuilder::new()
        .lmtp("")
        .sections("[http]\nlisten = [\"127.0.0.1:0\"]\n")
        .start();
    let lmtp = server.lmtp.unwrap();
    let mut big = b"Subject: big\r\n\r\n".to_vec();
    while big.len() < 3 << 20 {
        big.extend_from_slice(b"a line of a message of a few MiB, in CRLF as LMTP gives it\r\n");
    }
    // More lines starting with a dot than a name records.
    let many_dots = [
        &b"Subject: many dots\r\n\r\n"[..],
        &b".\r\n..\r\n.x\r\n".repeat(3),
    ]
    .concat();
    let delivered: [&[u8]; 5] = [
        b"Subject: plain\r\n\r\nno line starts with a dot\r\nnot even. this one\r\n",
        b"Subject: dots\r\n\r\n.leading dot\r\n..two\r\n.\r\nend\r\n",
        &big,
        b"Subject: empty body\r\n\r\n",
        &many_dots,
    ];
    for message in delivered {
        assert_eq!(lmtp_deliver(lmtp, "alice@example.org", message).code, 250);
    }
    // A dot line at the very start and at the very end, named as delivery names them (LMTP
    // always puts its trace header first).
    let edges = b".first\r\nmiddle\r\n.\r\n";
    let size = edges.len();
    server.add_message_named(
        "alice",
        &format!("3900000000.M0P1.host,S={size},W={size},X=cd.0.10"),
        edges,
    );
    // Dot lines on both sides of the 64 KiB pieces a copy into TLS reads: lines of 64 octets,
    // so one starts at each piece's first octet.
    let mut pieces = Vec::new();
    let mut offsets = Vec::new();
    for n in 0..3000u64 {
        let dotted = [1023, 1024, 2047, 2999].contains(&n);
        if dotted {
            offsets.push(format!(".{:x}", n * 64));
        }
        let first = if dotted { b'.' } else { b'a' };
        pieces.push(first);
        pieces.extend_from_slice(&[b'b'; 61]);
        pieces.extend_from_slice(b"\r\n");
    }
    let size = pieces.len();
    server.add_message_named(
        "alice",
        &format!(
            "3950000000.M0P1.host,S={size},W={size},X=cd{}",
            offsets.concat()
        ),
        &pieces,
    );
    // LF-stored, as another MTA may leave it, with leading dots and no final newline.
    // Named to arrive last.
    server.add_message_named(
        "alice",
        "4000000000.M0P1.host",
        b"Subject: lf\n\n.dot\nlast line without newline",
    );

    let stored = stored_in_order(&server, "alice");
    assert_eq!(stored.len(), 8);
    // What delivery recorded: CRLF, and where lines start with a dot (offsets in hex).
    let dots_at: Vec<String> = (0..stored[1].1.len())
        .filter(|&i| stored[1].1[i] == b'.' && stored[1].1[i - 1] == b'\n')
        .map(|i| format!(".{i:x}"))
        .collect();
    assert_eq!(dots_at.len(), 3);
    let dots_form = format!(",X=cd{}", dots_at.concat());
    for (i, form) in [",X=c", &dots_form, ",X=c", ",X=c", ",X=cd"]
        .iter()
        .enumerate()
    {
        assert!(stored[i].0.ends_with(form), "{} lacks {form}", stored[i].0);
    }
    assert!(!stored[7].0.contains(",X="), "{}", stored[7].0);

    let mut plain = Client::plain(server.plain);
    plain.login("alice", "wonderland");
    let mut tls = Client::implicit_tls(server.tls, &server.cert_pem);
    tls.login("alice", "wonderland");
    for (n, (name, content)) in stored.iter().enumerate() {
        let (status, over_plain) = raw_retr(&mut plain, n + 1);
        let size = crlf_form(content).len();
        assert_eq!(status, format!("+OK {size} octets"), "{name}");
        let (tls_status, over_tls) = raw_retr(&mut tls, n + 1);
        assert_eq!(tls_status, status, "{name}");
        assert!(
            over_plain == wire_form(content),
            "plain RETR of {name} differs"
        );
        assert!(
            over_plain == over_tls,
            "plain and TLS RETR of {name} differ"
        );
    }
    // RETR of every CRLF message with its dot lines recorded went as stored: by sendfile on
    // plain TCP, copied into TLS; the others, and TOP, by the encoder.
    let path = |path: &str| {
        metric(
            &server,
            &format!("postie_pop3_bodies_sent_total{{path=\"{path}\"}}"),
        )
    };
    assert_eq!(path("sendfile"), 6.0);
    assert_eq!(path("copy"), 6.0);
    // TOP of a message stored in wire form goes through the encoder.
    assert!(plain.command("TOP 1 0").starts_with("+OK"));
    let header_end = stored[0]
        .1
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap()
        + 4;
    assert_eq!(plain.body(), stored[0].1[..header_end]);
    assert_eq!(path("encoder"), 2.0 + 2.0 + 1.0);
    assert!(plain.command("QUIT").starts_with("+OK"));
    assert!(tls.command("QUIT").starts_with("+OK"));
}

/// A message truncated while RETR sends it, by sendfile (plain TCP), copied as stored (TLS)
/// or through the encoder (a name without the form): the client gets part of it and then the
/// end of the connection, never a terminating `.` after a partial body.
#[test]
fn a_file_truncated_under_retr_ends_the_connection_without_a_terminator() {
    truncated_under_retr(false, ",X=c");
}

#[test]
fn a_file_truncated_under_a_retr_over_tls_ends_the_connection_without_a_terminator() {
    truncated_under_retr(true, ",X=c");
}

#[test]
fn a_file_truncated_under_an_encoded_retr_ends_the_connection_without_a_terminator() {
    truncated_under_retr(false, "");
}

fn truncated_under_retr(tls: bool, form: &str) {
    let server = TestServer::start();
    let mut content = b"Subject: truncated\r\n\r\n".to_vec();
    while content.len() < 64 << 20 {
        content
            .extend_from_slice(b"a line of a large message that will be cut short meanwhile\r\n");
    }
    let size = content.len();
    // As postie's delivery names a CRLF message without leading dots, or without the form.
    let name = format!("1700000000.M1P1Q1.host,S={size},W={size}{form}");
    server.add_message_named("alice", &name, &content);

    let mut client = if tls {
        Client::implicit_tls(server.tls, &server.cert_pem)
    } else {
        Client::plain(server.plain)
    };
    client.login("alice", "wonderland");
    // Where the login left it (new/ to cur/).
    let path = server.message_files("alice").pop().unwrap();
    assert_eq!(client.command("RETR 1"), format!("+OK {size} octets"));
    let mut received = vec![0u8; 1 << 20];
    client.read_exact_raw(&mut received);
    // The server has sent at most what the socket buffers hold; cut the file under it.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(4096)
        .unwrap();
    // A TLS peer that ends without close_notify reads as an unexpected end: an end too.
    match client.read_to_end_raw(&mut received) {
        Err(error) if !(tls && error.kind() == std::io::ErrorKind::UnexpectedEof) => panic!(
            "the connection did not end after {} octets: {error}\n{}",
            received.len(),
            server.log()
        ),
        _ => {}
    }
    assert!(
        received.len() < size,
        "{} of {size} octets arrived: the truncation came too late to test anything",
        received.len()
    );
    assert!(
        !received.ends_with(b"\r\n.\r\n"),
        "a partial body ({} of {size} octets) ended with the terminator",
        received.len()
    );
    // Only what arrived before the cut is the file's: sendfile queues page-cache pages, and
    // those still in the socket buffers when the file is truncated may go out changed (the
    // connection's end tells the client the message is incomplete).
    assert!(
        content.starts_with(&received[..1 << 20]),
        "the octets before the cut are not the file's"
    );
}
