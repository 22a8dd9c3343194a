//! POP3 client side: a fetcher's session fed a hostile server's bytes, with pipelined
//! commands, multi-line bodies, STLS and every SASL mechanism.

use postie_proto::client::{ClientEvent, ClientSession, SaslClient};
use postie_types::{MsgNum, Secret, UserName};

use crate::alphabet::expand;

/// What a server says, in the pieces that reach the client's deep states. "biwscj1jbGllbnQ="
/// is SCRAM's server-first for the nonce "client" with 1 iteration, so the fuzzer gets past
/// it to the signature check without paying for a real iteration count.
const TOKENS: &[&[u8]] = &[
    b"\r\n",
    b"+OK",
    b"-ERR",
    b"+OK ready <1.2@host>\r\n",
    b" [SYS/TEMP]",
    b" [AUTH]",
    b" [IN-USE]",
    b"+OK\r\n",
    b"-ERR\r\n",
    b".\r\n",
    b"..",
    b"1 120\r\n",
    b"2 ab-cd\r\n",
    b"+OK 2 320\r\n",
    b"+ \r\n",
    b"+\r\n",
    b"+ cj1jbGllbnRzZXJ2ZXIscz1jMkZzZEE9PSxpPTE=\r\n",
    b"+ dj1BQUFB\r\n",
    b"+ VXNlcm5hbWU6\r\n",
    b"+ eyJzdGF0dXMiOiI0MDEifQ==\r\n",
    b"SASL PLAIN SCRAM-SHA-256\r\n",
    b"STLS\r\nUIDL\r\nPIPELINING\r\n",
    b"Subject: x\r\n\r\nbody\r\n",
    b"\n",
    b"\r",
    b" ",
    b"0",
    b"4294967296",
    b"18446744073709551616",
];

/// The first byte picks up to eight commands (three bits each, from the next bytes), the
/// next the piece size; the rest is what the server sends. Decoding must never panic, events
/// must come in protocol order, and nothing the client holds back after STLS may leave
/// before the handshake, whatever the server injects in plaintext.
pub fn pop3_client(data: &[u8]) {
    let [count, a, b, c, piece, rest @ ..] = data else {
        return;
    };
    let script = u32::from_le_bytes([*a, *b, *c, 0]);
    let mut session = ClientSession::new();
    let mut sent = 0usize;
    for i in 0..usize::from(*count % 9) {
        issue(&mut session, (script >> (3 * i)) & 7, *count >> 4);
        sent += 1;
    }
    session.output().clear();
    let input = expand(rest, TOKENS);
    let mut events = Order::default();
    for chunk in input.chunks(usize::from(*piece).max(1)) {
        if session.wants_tls() {
            // Plaintext the server sent after its +OK to STLS: an injection attempt.
            session.feed(chunk);
            assert_eq!(
                session.next(),
                Ok(ClientEvent::NeedInput),
                "acted on plaintext after STLS"
            );
            assert!(
                session.output().is_empty(),
                "sent a command before the TLS handshake"
            );
            session.tls_started();
            // Commands held behind STLS go out now, encrypted.
            session.output().clear();
            continue;
        }
        session.feed(chunk);
        // Each event consumes input or ends a body: bounded by the input length.
        for _ in 0..=input.len() * 2 + 4 {
            match session.next() {
                Ok(ClientEvent::NeedInput) => break,
                Ok(event) => events.check(&event, sent),
                Err(error) => {
                    assert_eq!(session.next(), Err(error), "a broken session stays broken");
                    return;
                }
            }
            if session.wants_tls() {
                assert!(
                    session.output().is_empty(),
                    "sent a command before the TLS handshake"
                );
            }
            session.output().clear();
        }
    }
}

fn issue(session: &mut ClientSession, choice: u32, variant: u8) {
    let one = MsgNum::parse(b"1").expect("valid");
    let user = UserName::parse(b"alice").expect("valid");
    let password = Secret::new(b"secret".to_vec());
    match choice {
        0 => session.capa(),
        1 => session.stls(),
        2 => {
            session.user(&user);
            session.pass(&password).expect("sendable");
        }
        3 => {
            let client = match variant % 5 {
                0 => SaslClient::plain("alice", &password),
                1 => SaslClient::login("alice", &password),
                2 => SaslClient::scram_sha256("alice", &password, "client"),
                3 => SaslClient::xoauth2("alice", &password),
                _ => SaslClient::oauthbearer("alice", &password, "host", 995),
            };
            session.auth(client, variant & 8 != 0);
        }
        4 => {
            session.list();
            session.uidl();
        }
        5 => session.retr(one),
        6 => session.top(one, u64::from(variant)),
        _ => {
            session.stat();
            session.dele(one);
            let _ = session.apop(&user, &password);
        }
    }
}

/// Checks the order of events: one greeting first, message data only inside a message, and
/// no more answers than commands.
#[derive(Default)]
struct Order {
    answers: usize,
    in_message: Option<MsgNum>,
    greeted: bool,
}

impl Order {
    fn check(&mut self, event: &ClientEvent, sent: usize) {
        match event {
            ClientEvent::Greeting(_) => {
                assert!(!self.greeted, "two greetings");
                self.greeted = true;
                return;
            }
            ClientEvent::MessageData(data) => {
                assert!(self.in_message.is_some(), "message data outside a message");
                assert!(!data.is_empty(), "an empty data event");
                return;
            }
            ClientEvent::MessageEnd { msg } => {
                assert_eq!(
                    self.in_message.take(),
                    Some(*msg),
                    "the end of a message not started"
                );
                return;
            }
            ClientEvent::MessageStart { msg, status, .. } => {
                assert!(self.in_message.is_none(), "a message inside a message");
                if status.ok {
                    self.in_message = Some(*msg);
                }
            }
            _ => {}
        }
        assert!(self.greeted, "an answer before the greeting");
        assert!(
            self.in_message.is_none() || matches!(event, ClientEvent::MessageStart { .. }),
            "an answer inside a body"
        );
        self.answers += 1;
        // The eighth command choice sends three commands at most (STAT, DELE, APOP).
        assert!(
            self.answers <= sent * 3,
            "{} answers to {sent} command choices",
            self.answers
        );
    }
}
