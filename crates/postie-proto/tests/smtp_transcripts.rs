//! SMTP and LMTP sessions driven through the public API with in-memory services: the RFC 2033
//! example, pipelining, per-recipient replies, BDAT, size limits, STARTTLS injection, and
//! property tests (any split of the input gives the same transcript; no input panics).

use postie_proto::smtp::{DeliveryError, Envelope, Event, Role, SmtpOptions, SmtpSession};
use proptest::prelude::*;

fn options(role: Role) -> SmtpOptions {
    SmtpOptions {
        role,
        hostname: "mx.example.org".into(),
        max_message_size: 1000,
        starttls_available: role == Role::Smtp,
        secure: false,
        max_recipients: 100,
        max_bad_commands: 10,
    }
}

/// In-memory services: users alice and bob; "full" is over quota; every message is kept.
struct Harness {
    session: SmtpSession,
    wire: Vec<u8>,
    body: Vec<u8>,
    delivered: Vec<(Envelope, Vec<u8>)>,
    discarded: usize,
    tls_started: bool,
    closed: bool,
}

impl Harness {
    fn new(role: Role) -> Self {
        let mut harness = Harness {
            session: SmtpSession::new(options(role)),
            wire: Vec::new(),
            body: Vec::new(),
            delivered: Vec::new(),
            discarded: 0,
            tls_started: false,
            closed: false,
        };
        harness.flush();
        harness
    }

    fn flush(&mut self) {
        let output = self.session.output();
        self.wire.extend_from_slice(output);
        output.clear();
    }

    fn send(&mut self, input: &[u8]) {
        self.session.feed(input);
        self.run();
    }

    fn run(&mut self) {
        loop {
            match self.session.next() {
                Event::NeedInput => break,
                Event::Close => {
                    self.closed = true;
                    break;
                }
                Event::StartTls => {
                    self.flush();
                    self.tls_started = true;
                    self.session.tls_started();
                }
                Event::CheckRecipient { address, .. } => {
                    let local = address.split(|&b| b == b'@').next().unwrap_or(&[]);
                    match local {
                        b"alice" | b"bob" | b"full" => self
                            .session
                            .recipient_accepted(String::from_utf8_lossy(local).into_owned()),
                        _ => self.session.recipient_rejected(DeliveryError::UnknownUser),
                    }
                }
                Event::MessageStart => self.body.clear(),
                Event::MessageData(piece) => self.body.extend_from_slice(&piece),
                Event::MessageDiscarded => {
                    self.discarded += 1;
                    self.body.clear();
                }
                Event::Deliver(envelope) => {
                    let results = envelope
                        .recipients
                        .iter()
                        .map(|r| {
                            if r.user == "full" {
                                Err(DeliveryError::OverQuota { temporary: false })
                            } else {
                                Ok(())
                            }
                        })
                        .collect();
                    self.delivered
                        .push((envelope, std::mem::take(&mut self.body)));
                    self.session.delivered(results);
                }
            }
        }
        self.flush();
    }

    fn transcript(&self) -> String {
        String::from_utf8_lossy(&self.wire).into_owned()
    }

    fn replies(&self) -> Vec<String> {
        self.transcript().lines().map(str::to_owned).collect()
    }
}

fn session(role: Role, input: &[u8]) -> Harness {
    let mut harness = Harness::new(role);
    harness.send(input);
    harness
}

#[test]
fn rfc2033_example_with_per_recipient_replies() {
    let h = session(
        Role::Lmtp,
        b"LHLO foo.edu\r\nMAIL FROM:<chris@bar.com>\r\nRCPT TO:<alice@foo.edu>\r\n\
          RCPT TO:<green@foo.edu>\r\nRCPT TO:<full@foo.edu>\r\nRCPT TO:<bob@foo.edu>\r\nDATA\r\n\
          Blah blah blah...\r\n..etc. etc. etc.\r\n.\r\nQUIT\r\n",
    );
    let replies = h.replies();
    assert_eq!(replies[0], "220 mx.example.org LMTP postie ready");
    assert_eq!(replies[1], "250-mx.example.org");
    assert!(
        replies.contains(&"250-PIPELINING".to_string()),
        "{replies:?}"
    );
    assert!(replies.contains(&"250 CHUNKING".to_string()), "{replies:?}");
    assert!(!h.transcript().contains("STARTTLS"));
    let tail: Vec<&str> = replies
        .iter()
        .rev()
        .take(10)
        .rev()
        .map(String::as_str)
        .collect();
    assert_eq!(
        tail,
        [
            "250 2.1.0 Ok",
            "250 2.1.5 Ok",
            "550 5.1.1 No such user here",
            "250 2.1.5 Ok",
            "250 2.1.5 Ok",
            "354 End data with <CR><LF>.<CR><LF>",
            "250 2.0.0 <alice@foo.edu> Saved",
            "552 5.2.2 <full@foo.edu> Mailbox full: the message would exceed the quota",
            "250 2.0.0 <bob@foo.edu> Saved",
            "221 2.0.0 Bye",
        ]
    );
    assert!(h.closed);
    let (envelope, body) = &h.delivered[0];
    assert_eq!(body, b"Blah blah blah...\r\n.etc. etc. etc.\r\n");
    assert_eq!(envelope.from, b"chris@bar.com");
    assert_eq!(envelope.helo, "foo.edu");
    assert_eq!(envelope.size, body.len() as u64);
    let users: Vec<&str> = envelope
        .recipients
        .iter()
        .map(|r| r.user.as_str())
        .collect();
    assert_eq!(users, ["alice", "full", "bob"]);
}

#[test]
fn smtp_has_one_reply_after_data() {
    let h = session(
        Role::Smtp,
        b"EHLO client\r\nMAIL FROM:<>\r\nRCPT TO:<alice@x>\r\nRCPT TO:<bob@x>\r\nDATA\r\nhi\r\n.\r\n",
    );
    let replies = h.replies();
    assert!(
        replies.contains(&"250-STARTTLS".to_string())
            || replies.contains(&"250 STARTTLS".to_string())
    );
    assert_eq!(replies.last().unwrap(), "250 2.0.0 Ok: message delivered");
    assert_eq!(h.delivered[0].0.from, b"");

    let h = session(
        Role::Smtp,
        b"EHLO client\r\nMAIL FROM:<a@b>\r\nRCPT TO:<alice@x>\r\nRCPT TO:<full@x>\r\nDATA\r\nhi\r\n.\r\n",
    );
    assert!(
        h.replies().last().unwrap().starts_with("552 5.2.2"),
        "{:?}",
        h.replies()
    );
}

#[test]
fn bdat_chunks_are_raw_and_counted() {
    let h = session(
        Role::Lmtp,
        b"LHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<alice@x>\r\nBDAT 5\r\n.\r\n\0\nBDAT 4 LAST\r\nend.QUIT\r\n",
    );
    let replies = h.replies();
    assert!(
        replies.contains(&"250 2.0.0 5 octets received".to_string()),
        "{replies:?}"
    );
    assert!(
        replies.contains(&"250 2.0.0 <alice@x> Saved".to_string()),
        "{replies:?}"
    );
    assert_eq!(replies.last().unwrap(), "221 2.0.0 Bye");
    assert_eq!(h.delivered[0].1, b".\r\n\0\nend.");
    assert!(h.delivered[0].0.chunked);
}

#[test]
fn refused_bdat_octets_are_never_commands() {
    let h = session(
        Role::Lmtp,
        b"LHLO x\r\nBDAT 12 LAST\r\nQUIT\r\nQUIT\r\nNOOP\r\n",
    );
    let replies = h.replies();
    assert!(
        replies.iter().any(|r| r == "503 5.5.1 Send MAIL first"),
        "{replies:?}"
    );
    assert_eq!(replies.last().unwrap(), "250 2.0.0 Ok");
    assert!(!h.closed);
}

#[test]
fn too_big_is_refused_after_reading_it_all() {
    let mut big = b"LHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<alice@x>\r\nDATA\r\n".to_vec();
    big.extend(std::iter::repeat_n(b'x', 2000));
    big.extend_from_slice(b"\r\n.\r\nNOOP\r\nMAIL FROM:<a@b> SIZE=5000\r\n");
    let h = session(Role::Lmtp, &big);
    let replies = h.replies();
    let n = replies.len();
    assert!(replies[n - 3].starts_with("552 5.3.4"), "{replies:?}");
    assert_eq!(replies[n - 2], "250 2.0.0 Ok");
    assert!(replies[n - 1].starts_with("552 5.3.4"), "{replies:?}");
    assert_eq!(h.discarded, 1);
    assert!(h.delivered.is_empty());
}

#[test]
fn starttls_discards_pipelined_commands() {
    let h = session(
        Role::Smtp,
        b"EHLO x\r\nSTARTTLS\r\nMAIL FROM:<evil@x>\r\nRCPT TO:<alice@x>\r\n",
    );
    assert!(h.tls_started);
    assert_eq!(h.replies().last().unwrap(), "220 2.0.0 Ready to start TLS");
    let mut h = h;
    h.send(b"MAIL FROM:<a@b>\r\n");
    assert_eq!(
        h.replies().last().unwrap(),
        "503 5.5.1 Send EHLO, HELO or LHLO first"
    );
    h.send(b"EHLO x\r\n");
    assert!(!h
        .transcript()
        .rsplit("220 2.0.0")
        .next()
        .unwrap()
        .contains("STARTTLS"));
}

#[test]
fn sequence_errors_and_role_checks() {
    let h = session(
        Role::Lmtp,
        b"EHLO x\r\nMAIL FROM:<a@b>\r\nLHLO x\r\nRCPT TO:<alice@x>\r\nDATA\r\nMAIL FROM:<a@b>\r\nDATA\r\nMAIL FROM:<a@b>\r\nSTARTTLS\r\nFOO\r\n",
    );
    let replies = h.replies();
    assert!(replies[1].starts_with("500 5.5.1"), "{replies:?}");
    assert!(replies[2].starts_with("503 5.5.1"), "{replies:?}");
    assert!(h.transcript().contains("503 5.5.1 Send MAIL first"));
    assert!(h.transcript().contains("554 5.5.1 No valid recipients"));
    assert!(h.transcript().contains("503 5.5.1 Nested MAIL command"));
    assert!(h
        .transcript()
        .contains("502 5.5.1 STARTTLS is not available here"));
    assert!(h.transcript().contains("500 5.5.2 Command unrecognized"));
}

#[test]
fn utf8_addresses_need_smtputf8() {
    let h = session(
        Role::Lmtp,
        "LHLO x\r\nMAIL FROM:<jörg@x>\r\nMAIL FROM:<jörg@x> SMTPUTF8\r\nRCPT TO:<alice@ü.example>\r\n".as_bytes(),
    );
    let replies = h.replies();
    let n = replies.len();
    assert!(replies[n - 3].starts_with("553 5.6.7"), "{replies:?}");
    assert_eq!(replies[n - 2], "250 2.1.0 Ok");
    assert_eq!(replies[n - 1], "250 2.1.5 Ok");
}

#[test]
fn message_without_final_newline_by_bdat() {
    let h = session(
        Role::Lmtp,
        b"LHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<alice@x>\r\nBDAT 7 LAST\r\nno\0 end",
    );
    assert_eq!(h.delivered[0].1, b"no\0 end");
}

const PIPELINED: &[u8] = b"LHLO x\r\nMAIL FROM:<a@b> SIZE=50\r\nRCPT TO:<alice@x>\r\nRCPT TO:<nobody@x>\r\nRCPT TO:<full@x>\r\nDATA\r\nSubject: s\r\n\r\n..dot\r\nbare\nLF\r\n.\r\nRSET\r\nMAIL FROM:<a@b>\r\nRCPT TO:<bob@x>\r\nBDAT 3\r\nab\nBDAT 0 LAST\r\nNOOP\r\nQUIT\r\n";

proptest! {
    #[test]
    fn any_split_of_the_input_gives_the_same_transcript(cuts in proptest::collection::vec(0usize..400, 0..30), role in prop_oneof![Just(Role::Lmtp)]) {
        let expected = session(role, PIPELINED);
        let mut harness = Harness::new(role);
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(PIPELINED.len())).collect();
        cuts.sort_unstable();
        let mut last = 0;
        for cut in cuts.into_iter().chain([PIPELINED.len()]) {
            harness.send(&PIPELINED[last..cut]);
            last = cut;
        }
        prop_assert_eq!(harness.transcript(), expected.transcript());
        prop_assert_eq!(harness.delivered.len(), 2);
        prop_assert_eq!(&harness.delivered, &expected.delivered);
        prop_assert_eq!(&harness.delivered[0].1, &b"Subject: s\r\n\r\n.dot\r\nbare\nLF\r\n".to_vec());
        prop_assert_eq!(&harness.delivered[1].1, &b"ab\n".to_vec());
    }

    #[test]
    fn random_input_never_panics(
        input in proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), Just(b' '), Just(b'.'), Just(b'<'), Just(b'>'), any::<u8>()], 0..400),
        prefix in prop_oneof![Just(&b""[..]), Just(&b"LHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<alice@x>\r\n"[..]), Just(&b"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<bob@x>\r\nDATA\r\n"[..])],
        role in prop_oneof![Just(Role::Lmtp), Just(Role::Smtp)],
    ) {
        let mut harness = Harness::new(role);
        harness.send(prefix);
        harness.send(&input);
    }
}
