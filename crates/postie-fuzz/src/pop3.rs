//! POP3 server side: the command parser, the whole session state machine with in-memory
//! services, and the dot-stuffing pair.

use postie_proto::{
    BodyEncoder, Capabilities, Command, Credentials, ErrorKind, Event, LineReader, MessageEntry,
    MultilineDecoder, MultilineItem, ReadLine, ServerOptions, ServerSession,
};
use postie_types::Uidl;

use crate::alphabet::expand;

const TOKENS: &[&[u8]] = &[
    b"\r\n",
    b"USER alice\r\n",
    b"PASS secret\r\n",
    b"STAT\r\n",
    b"LIST",
    b"RETR ",
    b"DELE ",
    b"TOP ",
    b"UIDL",
    b"RSET\r\n",
    b"NOOP\r\n",
    b"QUIT\r\n",
    b"CAPA\r\n",
    b"STLS\r\n",
    b"AUTH PLAIN",
    b"AUTH ",
    b"APOP alice 0123456789abcdef0123456789abcdef\r\n",
    b"UTF8\r\n",
    b" ",
    b"1",
    b"2",
    b"0",
    b"*\r\n",
    b"AGFsaWNlAHNlY3JldA==\r\n",
    b"4294967296",
    b".",
    b"\n",
    b"\r",
    b"\0",
];

pub fn pop3_command(data: &[u8]) {
    let line = expand(data, TOKENS);
    if let Ok(command) = Command::parse(&line) {
        let _ = command.verb();
    }
}

fn options(data: &[u8]) -> ServerOptions {
    let flags = data.first().copied().unwrap_or(0);
    ServerOptions {
        greeting: "ready".into(),
        apop_timestamp: (flags & 1 != 0).then(|| "<1.2@fuzz>".into()),
        capabilities: Capabilities {
            sasl: vec!["PLAIN".into(), "SCRAM-SHA-256".into()],
            plaintext_sasl: vec!["PLAIN".into()],
            implementation: "fuzz".into(),
            login_delay_secs: None,
            expire: None,
        },
        stls_available: flags & 2 != 0,
        secure: flags & 4 != 0,
        plaintext_allowed_insecure: flags & 8 != 0,
        max_auth_failures: 3,
        max_bad_commands: 20,
    }
}

/// A whole session fed in pieces (the second byte sets the piece size), answered by fake
/// services that accept alice/secret. Checks that pipelined answers never exceed the input
/// and that the session terminates.
pub fn pop3_server_session(data: &[u8]) {
    let input = expand(data.get(2..).unwrap_or_default(), TOKENS);
    let piece = usize::from(data.get(1).copied().unwrap_or(7)).max(1);
    let messages: Vec<Vec<u8>> = vec![b"Subject: a\n\n.b\n".to_vec(), b"x".to_vec(), Vec::new()];
    let entries: Vec<MessageEntry> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| MessageEntry {
            size: BodyEncoder::crlf_size(m),
            uidl: Uidl::new(format!("u{i}")).expect("valid"),
        })
        .collect();
    let mut session = ServerSession::new(options(data));
    for chunk in input.chunks(piece) {
        session.feed(chunk);
        // Every event either consumes input or ends the session: bounded by the input length.
        for _ in 0..=input.len() + 4 {
            match session.next() {
                Event::NeedInput => break,
                Event::Close => return,
                Event::Authenticate(Credentials::User { user, password }) => {
                    if user.as_str() == "alice" && password.expose() == b"secret" {
                        session.login_accepted(entries.clone());
                    } else {
                        session.login_rejected(ErrorKind::BadCredentials);
                    }
                }
                Event::Authenticate(Credentials::Apop { .. }) => {
                    session.login_rejected(ErrorKind::BadCredentials)
                }
                Event::SaslStart {
                    initial_response: None,
                    ..
                } => session.sasl_challenge(b""),
                Event::SaslStart {
                    initial_response: Some(r),
                    ..
                }
                | Event::SaslResponse(r) => {
                    if r == b"\0alice\0secret" {
                        session.login_accepted(entries.clone());
                    } else {
                        session.login_rejected(ErrorKind::BadCredentials);
                    }
                }
                Event::StartTls => session.tls_started(),
                Event::Retrieve { index, top_lines } => {
                    session.message_opened();
                    let mut encoder = top_lines.map_or_else(BodyEncoder::whole, BodyEncoder::top);
                    encoder.encode(&messages[index], session.output());
                    encoder.finish(session.output());
                    session.message_sent();
                }
                Event::Update { deleted } => {
                    assert!(
                        deleted.iter().all(|&i| i < messages.len()),
                        "deletion of a message not in the snapshot"
                    );
                    session.updated(Ok(()));
                }
            }
        }
        session.output().clear();
    }
}

/// Encoding then decoding any message gives its CRLF form, whose length is the announced size.
pub fn dotstuff_round_trip(data: &[u8]) {
    let split = usize::from(data.first().copied().unwrap_or(0)).min(data.len());
    let message = data.get(1..).unwrap_or_default();
    let mut wire = Vec::new();
    let mut encoder = BodyEncoder::whole();
    encoder.encode(
        &message[..split.saturating_sub(1).min(message.len())],
        &mut wire,
    );
    encoder.encode(
        &message[split.saturating_sub(1).min(message.len())..],
        &mut wire,
    );
    encoder.finish(&mut wire);
    let mut reader = LineReader::new();
    reader.feed(&wire);
    let mut decoder = MultilineDecoder::new();
    let mut decoded = Vec::new();
    loop {
        match reader.next_line(usize::MAX) {
            Some(ReadLine::Line(line)) => match decoder.decode_line(&line) {
                MultilineItem::Line(bytes) => decoded.extend_from_slice(&bytes),
                MultilineItem::End => break,
            },
            other => panic!("the encoder's output did not end with a terminator: {other:?}"),
        }
    }
    assert_eq!(
        decoded.len() as u64,
        BodyEncoder::crlf_size(message),
        "decoded length is the CRLF size"
    );
    assert!(!reader.has_pending(), "bytes after the terminator");
}
