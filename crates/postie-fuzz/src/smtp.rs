//! Mail intake: the SMTP/LMTP server session in both roles (commands, DATA, BDAT, STARTTLS)
//! and the DATA dot-stuffing pair.

use postie_proto::smtp::{
    dot_stuff, DeliveryError, DotDecoder, Event, Role, SmtpOptions, SmtpSession,
};

use crate::alphabet::expand;

const TOKENS: &[&[u8]] = &[
    b"\r\n",
    b"EHLO client\r\n",
    b"HELO client\r\n",
    b"LHLO client\r\n",
    b"MAIL FROM:<a@b>",
    b" SIZE=100",
    b" BODY=8BITMIME",
    b" SMTPUTF8",
    b"RCPT TO:<alice@example.org>\r\n",
    b"RCPT TO:<nobody@example.org>\r\n",
    b"RCPT TO:<temp@example.org>\r\n",
    b"DATA\r\n",
    b"BDAT ",
    b" LAST",
    b"\r\n.\r\n",
    b"\r\n..",
    b"RSET\r\n",
    b"NOOP\r\n",
    b"QUIT\r\n",
    b"STARTTLS\r\n",
    b"VRFY x\r\n",
    b"Subject: x\r\n\r\nbody",
    b"<>",
    b"5",
    b"0",
    b"18446744073709551616",
    b".",
    b"\n",
    b"\r",
    b"\0",
];

/// The first byte picks the role and options, the second the piece size; the rest is what
/// the client sends. Fake services accept alice, refuse nobody, and fail temp temporarily.
/// Checked: the session terminates, a delivered message's size is the sum of its data
/// pieces, no delivery lacks a recipient, and nothing pipelined after STARTTLS is executed.
pub fn smtp_session(data: &[u8]) {
    let [flags, piece, rest @ ..] = data else {
        return;
    };
    let options = SmtpOptions {
        role: if flags & 1 == 0 {
            Role::Smtp
        } else {
            Role::Lmtp
        },
        hostname: "fuzz".into(),
        max_message_size: if flags & 2 == 0 { 1 << 20 } else { 40 },
        starttls_available: flags & 4 != 0,
        secure: false,
        max_recipients: 3,
        max_bad_commands: 10,
    };
    let input = expand(rest, TOKENS);
    let mut session = SmtpSession::new(options);
    session.output().clear();
    let mut received: u64 = 0;
    let mut in_message = false;
    for chunk in input.chunks(usize::from(*piece).max(1)) {
        session.feed(chunk);
        // Each event consumes input or ends the session: bounded by the input length.
        for _ in 0..=input.len() * 2 + 4 {
            match session.next() {
                Event::NeedInput => break,
                Event::Close => return,
                Event::StartTls => {
                    let output = session.output();
                    let last = output[..output.len().saturating_sub(2)]
                        .rsplit(|&b| b == b'\n')
                        .next();
                    assert!(
                        last.is_some_and(|line| line.starts_with(b"220 ")),
                        "STARTTLS without its 220"
                    );
                    session.output().clear();
                    session.tls_started();
                    // Whatever came pipelined with STARTTLS was sent in the clear: never run.
                    assert_eq!(
                        session.next(),
                        Event::NeedInput,
                        "acted on input pipelined with STARTTLS"
                    );
                    assert!(
                        session.output().is_empty(),
                        "answered input pipelined with STARTTLS"
                    );
                    in_message = false;
                }
                Event::CheckRecipient { address, .. } => match address.as_slice() {
                    b"alice@example.org" => session.recipient_accepted("alice".into()),
                    b"temp@example.org" => session.recipient_rejected(DeliveryError::Temporary),
                    _ => session.recipient_rejected(DeliveryError::UnknownUser),
                },
                Event::MessageStart => {
                    received = 0;
                    in_message = true;
                }
                Event::MessageData(piece) => {
                    assert!(in_message, "message data outside a message");
                    received += piece.len() as u64;
                }
                Event::MessageDiscarded => in_message = false,
                Event::Deliver(envelope) => {
                    assert!(in_message, "a delivery without a message");
                    assert!(!envelope.recipients.is_empty(), "a delivery to nobody");
                    assert!(
                        envelope.recipients.len() <= 3,
                        "more recipients than allowed"
                    );
                    assert_eq!(
                        envelope.size, received,
                        "the size is not what was handed out"
                    );
                    in_message = false;
                    let results = envelope.recipients.iter().map(|_| Ok(())).collect();
                    session.delivered(results);
                }
            }
        }
        session.output().clear();
    }
}

/// Any message, stuffed and then decoded in pieces of any size, comes back as itself (with the
/// final CRLF the wire form adds), and nothing after the terminator is consumed.
pub fn smtp_data_round_trip(data: &[u8]) {
    let [piece, message @ ..] = data else { return };
    let mut wire = dot_stuff(message);
    wire.extend_from_slice(b"NEXT\r\n");
    let mut decoder = DotDecoder::new();
    let mut decoded = Vec::new();
    let mut at = 0;
    for chunk in wire.chunks(usize::from(*piece).max(1)) {
        let result = decoder.decode(chunk, &mut decoded);
        at += result.consumed;
        if result.ended {
            break;
        }
        assert_eq!(
            result.consumed,
            chunk.len(),
            "stopped early without the terminator"
        );
    }
    assert_eq!(
        &wire[at..],
        b"NEXT\r\n",
        "consumed bytes after the terminator, or too few"
    );
    let mut expected = message.to_vec();
    if !message.is_empty() && !message.ends_with(b"\r\n") {
        expected.extend_from_slice(b"\r\n");
    }
    assert_eq!(decoded, expected, "the round trip changed the message");
}
