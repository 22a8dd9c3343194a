//! POP3 server side: the command parser, the whole session state machine with in-memory
//! services, and the dot-stuffing pair.

use postie_proto::{
    BodyEncoder, Capabilities, Command, Credentials, ErrorKind, Event, LineReader, MessageEntry,
    MultilineDecoder, MultilineItem, ReadLine, ServerOptions, ServerSession, Verb,
};
use postie_types::Uidl;

use crate::alphabet::expand;

/// The alphabet of the POP3 targets. Every [`Verb`] has a token (a test checks it); new ones
/// go at the end, so that the checked-in corpus keeps its meaning.
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

/// Any line: a command that parses is of the verb its keyword names.
pub fn pop3_command(data: &[u8]) {
    let line = expand(data, TOKENS);
    if let Ok(command) = Command::parse(&line) {
        assert_eq!(Verb::parse(keyword(&line)), Some(command.verb()));
    }
}

fn keyword(line: &[u8]) -> &[u8] {
    line.split(|&b| b == b' ').next().unwrap_or_default()
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

/// Every completion the harness makes answers the event just returned.
const ANSWER: &str = "a completion answering its event was refused";

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
                        session.login_accepted(entries.clone()).expect(ANSWER);
                    } else {
                        session
                            .login_rejected(ErrorKind::BadCredentials)
                            .expect(ANSWER);
                    }
                }
                Event::Authenticate(Credentials::Apop { .. }) => session
                    .login_rejected(ErrorKind::BadCredentials)
                    .expect(ANSWER),
                Event::SaslStart {
                    initial_response: None,
                    ..
                } => session.sasl_challenge(b"").expect(ANSWER),
                Event::SaslStart {
                    initial_response: Some(r),
                    ..
                }
                | Event::SaslResponse(r) => {
                    if r == b"\0alice\0secret" {
                        session.login_accepted(entries.clone()).expect(ANSWER);
                    } else {
                        session
                            .login_rejected(ErrorKind::BadCredentials)
                            .expect(ANSWER);
                    }
                }
                Event::StartTls => session.tls_started().expect(ANSWER),
                Event::Retrieve { index, .. } => {
                    session.message_opened().expect(ANSWER);
                    let body_start = session.output().len() as u64;
                    for chunk in messages[index].chunks(piece) {
                        if !session.message_chunk(chunk).expect(ANSWER) {
                            break;
                        }
                    }
                    let sent = session.message_end().expect(ANSWER);
                    assert_eq!(
                        body_start + sent,
                        session.output().len() as u64,
                        "message_end counts the body"
                    );
                }
                Event::Update { deleted } => {
                    assert!(
                        deleted.iter().all(|&i| i < messages.len()),
                        "deletion of a message not in the snapshot"
                    );
                    session.updated(Ok(())).expect(ANSWER);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_verb_has_a_token() {
        let verbs: Vec<Verb> = TOKENS
            .iter()
            .filter_map(|token| {
                let word = keyword(token);
                Verb::parse(word.strip_suffix(b"\r\n").unwrap_or(word))
            })
            .collect();
        for verb in Verb::ALL {
            assert!(verbs.contains(verb), "no token for {verb}");
        }
    }
}
