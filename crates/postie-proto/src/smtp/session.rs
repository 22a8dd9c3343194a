//! The server side of an SMTP or LMTP session as a state machine (RFC 5321, RFC 2033).
//!
//! As with the POP3 [`crate::ServerSession`]: the shell feeds input, calls
//! [`SmtpSession::next`] until it returns [`Event::NeedInput`], and answers each event that
//! needs a service with exactly one completion call (`recipient_accepted`/`_rejected`,
//! `delivered`, `tls_started`). Until then no further input is processed, so pipelined
//! commands are answered in order. Message bodies stream out as [`Event::MessageData`]
//! pieces, never held whole.

use super::command::{Command, CommandError, Hello, MailParams};
use super::data::DotDecoder;
use super::reply::{DeliveryError, Reply, Status};
use crate::line::{LineReader, ReadLine};
use postie_types::limits::MAX_SMTP_LINE;

/// Which protocol the session speaks. They differ in the greeting command (LHLO), STARTTLS
/// (SMTP only) and the replies after the data (LMTP: one per recipient).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Lmtp,
    Smtp,
}

/// Settings fixed for one connection.
#[derive(Debug, Clone)]
pub struct SmtpOptions {
    pub role: Role,
    /// Named in the greeting and the EHLO/LHLO reply.
    pub hostname: String,
    /// The biggest message accepted, in octets as received.
    pub max_message_size: u64,
    /// STARTTLS can be offered (SMTP with a certificate).
    pub starttls_available: bool,
    /// The connection is already encrypted.
    pub secure: bool,
    /// Recipients per message; RFC 5321 asks for at least 100.
    pub max_recipients: usize,
    /// Bad commands after which the connection is closed.
    pub max_bad_commands: u32,
}

/// A recipient the shell has accepted, with the local user it maps to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// The address as the client gave it (without angle brackets).
    pub address: Vec<u8>,
    pub user: String,
}

/// Everything known about a message whose data is complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The name the client gave in HELO/EHLO/LHLO.
    pub helo: String,
    /// The reverse path; empty for the null sender `<>`.
    pub from: Vec<u8>,
    pub params: MailParams,
    pub recipients: Vec<Recipient>,
    /// Octets of the message as received (after dot-unstuffing).
    pub size: u64,
    /// The data came with BDAT.
    pub chunked: bool,
    /// The client said EHLO or LHLO (not HELO).
    pub extended: bool,
    /// The connection is encrypted.
    pub secure: bool,
}

/// What the session needs from the shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Write the output, then feed more input.
    NeedInput,
    /// Write the output, run the TLS handshake, then call `tls_started`.
    StartTls,
    /// May this address receive mail? Answer with `recipient_accepted` (naming the local user)
    /// or `recipient_rejected`. `declared_size` is MAIL's SIZE, for an early quota check.
    CheckRecipient {
        address: Vec<u8>,
        declared_size: Option<u64>,
    },
    /// A message body begins: open a fresh spool (any earlier unfinished one is abandoned).
    MessageStart,
    /// The next piece of the body, unstuffed; append it to the spool.
    MessageData(Vec<u8>),
    /// The body ended but the message is refused (too big); the reply is written. Drop the
    /// spool.
    MessageDiscarded,
    /// The body is complete: deliver it to every recipient, then call `delivered` with one
    /// result per recipient, in order.
    Deliver(Envelope),
    /// Write the output and close the connection.
    Close,
}

/// A service call the session waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Waiting {
    Tls,
    Recipient(Vec<u8>),
    Deliver(Vec<Vec<u8>>),
}

#[derive(Debug)]
struct Transaction {
    from: Vec<u8>,
    params: MailParams,
    recipients: Vec<Recipient>,
    /// Octets of the body received so far.
    received: u64,
    too_big: bool,
    /// BDAT chunks have started the body.
    chunked: bool,
}

/// How the bytes after the current command are read.
#[derive(Debug)]
enum Incoming {
    Commands,
    /// After DATA's 354: the body, dot-stuffed, up to the terminator.
    Data(DotDecoder),
    /// Inside a BDAT chunk. `refused` holds the reply for a chunk whose command was refused:
    /// its octets are still read (they are not commands) and thrown away.
    Chunk {
        remaining: u64,
        last: bool,
        refused: Option<Reply>,
    },
    /// The body is complete and its last piece handed out; the message ends on the next step.
    Ended,
}

/// One SMTP or LMTP session, server side.
#[derive(Debug)]
pub struct SmtpSession {
    options: SmtpOptions,
    input: LineReader,
    output: Vec<u8>,
    /// The HELO/EHLO/LHLO name and whether it was extended; `None` until the client greets.
    helo: Option<(String, bool)>,
    transaction: Option<Transaction>,
    incoming: Incoming,
    waiting: Option<Waiting>,
    bad_commands: u32,
    closed: bool,
}

impl SmtpSession {
    /// A new session; the 220 greeting is already in the output.
    pub fn new(options: SmtpOptions) -> Self {
        let mut output = Vec::new();
        let kind = match options.role {
            Role::Lmtp => "LMTP",
            Role::Smtp => "ESMTP",
        };
        Reply::new(
            220,
            None,
            format!("{} {kind} postie ready", options.hostname),
        )
        .encode(&mut output);
        SmtpSession {
            options,
            input: LineReader::new(),
            output,
            helo: None,
            transaction: None,
            incoming: Incoming::Commands,
            waiting: None,
            bad_commands: 0,
            closed: false,
        }
    }

    /// Adds bytes read from the client.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.input.feed(bytes);
    }

    /// Bytes to send to the client. The shell writes and clears them.
    pub fn output(&mut self) -> &mut Vec<u8> {
        &mut self.output
    }

    /// Whether the connection is encrypted.
    pub fn is_secure(&self) -> bool {
        self.options.secure
    }

    /// Whether a message body is being received (the shell allows a longer timeout then).
    pub fn in_data(&self) -> bool {
        !matches!(self.incoming, Incoming::Commands)
    }

    /// Processes buffered input until an event needs the shell.
    // Not an Iterator: every call needs the previous event answered first.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Event {
        loop {
            if self.closed {
                return Event::Close;
            }
            if self.waiting.is_some() {
                // A completion call is missing; processing more input now would break ordering.
                return Event::NeedInput;
            }
            let step = match self.incoming {
                Incoming::Commands => self.command_line(),
                Incoming::Data(_) => self.data(),
                Incoming::Chunk { .. } => self.chunk(),
                Incoming::Ended => {
                    self.incoming = Incoming::Commands;
                    self.end_of_message()
                }
            };
            match step {
                Step::Continue => {}
                Step::NeedInput => return Event::NeedInput,
                Step::Event(event) => return event,
            }
        }
    }

    fn command_line(&mut self) -> Step {
        let line = match self.input.next_line(MAX_SMTP_LINE) {
            None => return Step::NeedInput,
            Some(ReadLine::TooLong) => {
                self.bad_command(Reply::new(500, Some(Status(5, 5, 2)), "Line too long"));
                return Step::Continue;
            }
            Some(ReadLine::Line(line)) => line,
        };
        match Command::parse(&line) {
            Ok(command) => self.command(command),
            Err(CommandError::BadChunkSize) => {
                // The chunk's length is unknown, so its octets cannot be told from commands.
                self.reply(
                    501,
                    Status(5, 5, 4),
                    "BDAT needs a size; closing the connection",
                );
                self.closed = true;
                Step::Continue
            }
            Err(error) => {
                let reply = match &error {
                    CommandError::Unknown => {
                        Reply::new(500, Some(Status(5, 5, 2)), "Command unrecognized")
                    }
                    CommandError::Parameter(_) => {
                        Reply::new(555, Some(Status(5, 5, 4)), error.to_string())
                    }
                    _ => Reply::new(501, Some(Status(5, 5, 4)), error.to_string()),
                };
                self.bad_command(reply);
                Step::Continue
            }
        }
    }

    fn command(&mut self, command: Command) -> Step {
        match command {
            Command::Hello { kind, domain } => self.hello(kind, domain),
            Command::Mail { from, params } => self.mail(from, params),
            Command::Rcpt { to } => return self.rcpt(to),
            Command::Data => return self.data_command(),
            Command::Bdat { size, last } => return self.bdat(size, last),
            Command::Rset => {
                self.transaction = None;
                self.ok(250, Status(2, 0, 0), "Ok");
            }
            Command::Noop => self.ok(250, Status(2, 0, 0), "Ok"),
            Command::Vrfy => self.ok(
                252,
                Status(2, 5, 0),
                "Cannot VRFY user, but will accept message and attempt delivery",
            ),
            Command::Help => self.ok(214, Status(2, 0, 0), "See RFC 5321 and RFC 2033"),
            Command::Quit => {
                self.reply(221, Status(2, 0, 0), "Bye");
                self.closed = true;
                return Step::Event(Event::Close);
            }
            Command::StartTls => return self.starttls(),
        }
        Step::Continue
    }

    fn hello(&mut self, kind: Hello, domain: String) {
        let allowed = match self.options.role {
            Role::Lmtp => kind == Hello::Lhlo,
            Role::Smtp => kind != Hello::Lhlo,
        };
        if !allowed {
            let text = match self.options.role {
                Role::Lmtp => "This is LMTP: greet with LHLO",
                Role::Smtp => "This is SMTP: greet with EHLO or HELO",
            };
            self.bad_command(Reply::new(500, Some(Status(5, 5, 1)), text));
            return;
        }
        self.transaction = None;
        self.bad_commands = 0;
        let extended = kind != Hello::Helo;
        self.helo = Some((domain, extended));
        if !extended {
            Reply::new(250, None, self.options.hostname.clone()).encode(&mut self.output);
            return;
        }
        let mut lines = vec![
            self.options.hostname.clone(),
            "PIPELINING".into(),
            format!("SIZE {}", self.options.max_message_size),
            "ENHANCEDSTATUSCODES".into(),
            "8BITMIME".into(),
            "SMTPUTF8".into(),
            "CHUNKING".into(),
        ];
        if self.starttls_offered() {
            lines.push("STARTTLS".into());
        }
        Reply {
            code: 250,
            status: None,
            lines,
        }
        .encode(&mut self.output);
    }

    fn starttls_offered(&self) -> bool {
        self.options.role == Role::Smtp && self.options.starttls_available && !self.options.secure
    }

    fn mail(&mut self, from: Vec<u8>, params: MailParams) {
        if self.helo.is_none() {
            return self.refuse(503, Status(5, 5, 1), "Send EHLO, HELO or LHLO first");
        }
        if self.transaction.is_some() {
            return self.refuse(503, Status(5, 5, 1), "Nested MAIL command: send RSET first");
        }
        if !params.smtputf8 && !from.is_ascii() {
            return self.refuse(553, Status(5, 6, 7), "Non-ASCII address needs SMTPUTF8");
        }
        if params
            .size
            .is_some_and(|size| size > self.options.max_message_size)
        {
            return self.bad_command(DeliveryError::TooBig.reply());
        }
        self.transaction = Some(Transaction {
            from,
            params,
            recipients: Vec::new(),
            received: 0,
            too_big: false,
            chunked: false,
        });
        self.ok(250, Status(2, 1, 0), "Ok");
    }

    fn rcpt(&mut self, to: Vec<u8>) -> Step {
        let Some(transaction) = &self.transaction else {
            self.refuse(503, Status(5, 5, 1), "Send MAIL first");
            return Step::Continue;
        };
        if transaction.chunked {
            self.refuse(503, Status(5, 5, 1), "RCPT after BDAT: send RSET first");
            return Step::Continue;
        }
        if !transaction.params.smtputf8 && !to.is_ascii() {
            self.refuse(553, Status(5, 6, 7), "Non-ASCII address needs SMTPUTF8");
            return Step::Continue;
        }
        if transaction.recipients.len() >= self.options.max_recipients {
            // Temporary, so the client sends the rest in another transaction (RFC 5321 4.5.3.1.8).
            self.reply(452, Status(4, 5, 3), "Too many recipients");
            return Step::Continue;
        }
        let declared_size = transaction.params.size;
        self.waiting = Some(Waiting::Recipient(to.clone()));
        Step::Event(Event::CheckRecipient {
            address: to,
            declared_size,
        })
    }

    fn data_command(&mut self) -> Step {
        match &self.transaction {
            None => self.refuse(503, Status(5, 5, 1), "Send MAIL first"),
            Some(t) if t.chunked => {
                self.refuse(503, Status(5, 5, 1), "DATA after BDAT: send RSET first")
            }
            Some(t) if t.recipients.is_empty() => {
                self.refuse(554, Status(5, 5, 1), "No valid recipients")
            }
            Some(_) => {
                Reply::new(354, None, "End data with <CR><LF>.<CR><LF>").encode(&mut self.output);
                self.incoming = Incoming::Data(DotDecoder::new());
                return Step::Event(Event::MessageStart);
            }
        }
        Step::Continue
    }

    fn bdat(&mut self, size: u64, last: bool) -> Step {
        let refused = match &self.transaction {
            None => Some(Reply::new(503, Some(Status(5, 5, 1)), "Send MAIL first")),
            Some(t) if t.recipients.is_empty() => Some(Reply::new(
                554,
                Some(Status(5, 5, 1)),
                "No valid recipients",
            )),
            Some(_) => None,
        };
        let starts = refused.is_none();
        self.incoming = Incoming::Chunk {
            remaining: size,
            last,
            refused,
        };
        match &mut self.transaction {
            Some(t) if starts && !t.chunked => {
                t.chunked = true;
                Step::Event(Event::MessageStart)
            }
            _ => Step::Continue,
        }
    }

    fn starttls(&mut self) -> Step {
        if self.options.secure {
            self.refuse(503, Status(5, 5, 1), "TLS is already active");
        } else if !self.starttls_offered() {
            self.refuse(502, Status(5, 5, 1), "STARTTLS is not available here");
        } else if self.transaction.is_some() {
            self.refuse(503, Status(5, 5, 1), "STARTTLS inside a mail transaction");
        } else {
            self.reply(220, Status(2, 0, 0), "Ready to start TLS");
            self.waiting = Some(Waiting::Tls);
            return Step::Event(Event::StartTls);
        }
        Step::Continue
    }

    /// Reads body octets after DATA.
    fn data(&mut self) -> Step {
        let Incoming::Data(decoder) = &mut self.incoming else {
            return Step::Continue;
        };
        let unread = self.input.unread();
        if unread.is_empty() {
            return Step::NeedInput;
        }
        let mut piece = Vec::with_capacity(unread.len());
        let decoded = decoder.decode(unread, &mut piece);
        self.input.advance(decoded.consumed);
        let keep = self.account(piece.len() as u64);
        if decoded.ended {
            // The last piece goes out first; the message ends on the next step.
            self.incoming = Incoming::Ended;
        }
        if keep && !piece.is_empty() {
            return Step::Event(Event::MessageData(piece));
        }
        Step::Continue
    }

    /// Reads the octets of a BDAT chunk.
    fn chunk(&mut self) -> Step {
        let Incoming::Chunk {
            remaining,
            last,
            refused,
        } = &mut self.incoming
        else {
            return Step::Continue;
        };
        if *remaining == 0 {
            let (last, refused) = (*last, refused.take());
            self.incoming = Incoming::Commands;
            return self.end_of_chunk(last, refused);
        }
        let unread = self.input.unread();
        if unread.is_empty() {
            return Step::NeedInput;
        }
        let take = unread
            .len()
            .min(usize::try_from(*remaining).unwrap_or(usize::MAX));
        *remaining -= take as u64;
        let piece = (refused.is_none()).then(|| unread[..take].to_vec());
        self.input.advance(take);
        match piece {
            Some(piece) if self.account(take as u64) => Step::Event(Event::MessageData(piece)),
            _ => Step::Continue,
        }
    }

    fn end_of_chunk(&mut self, last: bool, refused: Option<Reply>) -> Step {
        if let Some(reply) = refused {
            self.bad_command(reply);
            return Step::Continue;
        }
        let too_big = self.transaction.as_ref().is_some_and(|t| t.too_big);
        if last || too_big {
            return self.end_of_message();
        }
        let received = self.transaction.as_ref().map_or(0, |t| t.received);
        self.ok(250, Status(2, 0, 0), &format!("{received} octets received"));
        Step::Continue
    }

    /// Counts body octets; false once the message is too big (its octets are then dropped).
    fn account(&mut self, octets: u64) -> bool {
        let max = self.options.max_message_size;
        match &mut self.transaction {
            Some(t) => {
                t.received = t.received.saturating_add(octets);
                t.too_big |= t.received > max;
                !t.too_big
            }
            None => false,
        }
    }

    fn end_of_message(&mut self) -> Step {
        let Some(transaction) = self.transaction.take() else {
            return Step::Continue;
        };
        if transaction.too_big {
            self.bad_command(DeliveryError::TooBig.reply());
            return Step::Event(Event::MessageDiscarded);
        }
        let (helo, extended) = self.helo.clone().unwrap_or_default();
        let addresses = transaction
            .recipients
            .iter()
            .map(|r| r.address.clone())
            .collect();
        self.waiting = Some(Waiting::Deliver(addresses));
        Step::Event(Event::Deliver(Envelope {
            helo,
            from: transaction.from,
            params: transaction.params,
            recipients: transaction.recipients,
            size: transaction.received,
            chunked: transaction.chunked,
            extended,
            secure: self.options.secure,
        }))
    }

    fn ok(&mut self, code: u16, status: Status, text: &str) {
        self.bad_commands = 0;
        self.reply(code, status, text);
    }

    fn reply(&mut self, code: u16, status: Status, text: &str) {
        Reply::new(code, Some(status), text).encode(&mut self.output);
    }

    /// A refused command in sequence: counts towards closing the connection.
    fn refuse(&mut self, code: u16, status: Status, text: &str) {
        self.bad_command(Reply::new(code, Some(status), text));
    }

    fn bad_command(&mut self, reply: Reply) {
        reply.encode(&mut self.output);
        self.bad_commands += 1;
        if self.bad_commands >= self.options.max_bad_commands {
            self.reply(
                421,
                Status(4, 7, 0),
                "Too many errors, closing the connection",
            );
            self.closed = true;
        }
    }

    /// The recipient of the pending `CheckRecipient` may receive mail, as local `user`.
    pub fn recipient_accepted(&mut self, user: String) {
        let Some(Waiting::Recipient(address)) = self.waiting.take() else {
            return;
        };
        if let Some(transaction) = &mut self.transaction {
            transaction.recipients.push(Recipient { address, user });
            self.ok(250, Status(2, 1, 5), "Ok");
        }
    }

    /// The recipient of the pending `CheckRecipient` is refused.
    pub fn recipient_rejected(&mut self, error: DeliveryError) {
        if !matches!(self.waiting.take(), Some(Waiting::Recipient(_))) {
            return;
        }
        let reply = error.reply();
        if matches!(
            error,
            DeliveryError::UnknownUser | DeliveryError::RelayDenied
        ) {
            // A wrong address is a client mistake only once in a while; counting it would let a
            // list with many stale addresses close the connection.
            reply.encode(&mut self.output);
        } else {
            self.bad_command(reply);
        }
    }

    /// The delivery of the pending `Deliver` is done: one result per recipient, in order.
    /// LMTP answers each recipient; SMTP has one answer for all, so any failure fails the
    /// message, a temporary one first (a retry then may duplicate the message for the
    /// recipients that got it, which is better than losing it for the others).
    pub fn delivered(&mut self, results: Vec<Result<(), DeliveryError>>) {
        let Some(Waiting::Deliver(addresses)) = self.waiting.take() else {
            return;
        };
        let result_for = |i: usize| {
            results
                .get(i)
                .copied()
                .unwrap_or(Err(DeliveryError::Temporary))
        };
        match self.options.role {
            Role::Lmtp => {
                for (i, address) in addresses.iter().enumerate() {
                    let who = String::from_utf8_lossy(address);
                    let reply = match result_for(i) {
                        Ok(()) => Reply::new(250, Some(Status(2, 0, 0)), format!("<{who}> Saved")),
                        Err(error) => {
                            let mut reply = error.reply();
                            if let Some(first) = reply.lines.first_mut() {
                                *first = format!("<{who}> {first}");
                            }
                            reply
                        }
                    };
                    reply.encode(&mut self.output);
                }
            }
            Role::Smtp => {
                let errors: Vec<DeliveryError> = (0..addresses.len())
                    .filter_map(|i| result_for(i).err())
                    .collect();
                let worst = errors
                    .iter()
                    .find(|e| e.reply().is_temporary())
                    .or(errors.first());
                match worst {
                    None => self.ok(250, Status(2, 0, 0), "Ok: message delivered"),
                    Some(error) => error.reply().encode(&mut self.output),
                }
            }
        }
    }

    /// The TLS handshake after STARTTLS succeeded. Input received before it is discarded (it
    /// was sent in the clear and may have been injected, RFC 3207 section 4.2), and the client
    /// must greet again.
    pub fn tls_started(&mut self) {
        if self.waiting != Some(Waiting::Tls) {
            return;
        }
        self.waiting = None;
        self.input.clear();
        self.options.secure = true;
        self.helo = None;
        self.transaction = None;
    }

    /// Ends the session from the shell's side (timeout, shutdown) with a 421 reply.
    pub fn abort(&mut self, reason: &str) {
        self.reply(421, Status(4, 4, 2), reason);
        self.closed = true;
    }
}

/// What one step of [`SmtpSession::next`] came to.
enum Step {
    Continue,
    NeedInput,
    Event(Event),
}
