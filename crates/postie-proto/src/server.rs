//! The server side of a POP3 session as a state machine (RFC 1939 section 3).
//!
//! The shell feeds input with [`ServerSession::feed`] and calls [`ServerSession::next`] until it
//! returns [`Event::NeedInput`] or an event that needs a service. Each such event is answered by
//! exactly one completion call (`login_accepted`, `sasl_challenge`, `tls_started`, …; a message
//! by `message_opened`, its chunks and `message_end`); until then the session processes no
//! further input, so pipelined commands are answered in order. A completion that answers no
//! pending event is refused with [`WrongState`]. Output accumulates in
//! [`ServerSession::output`] for the shell to write in one go.

use std::fmt;

use crate::capability::{CapaContext, Capabilities};
use crate::command::{decode_base64, Command, CommandError};
use crate::dotstuff::BodyEncoder;
use crate::line::{LineReader, ReadLine};
use crate::response::{write_err, write_error_kind, write_ok, ErrorKind, RespCode};
use crate::tally::CommandTally;
use postie_types::limits::{MAX_COMMAND_LINE, MAX_SASL_LINE};
use postie_types::Secret;
use postie_types::{MsgNum, Uidl, UserName};

/// Settings fixed for one connection.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Text of the greeting after "+OK ".
    pub greeting: String,
    /// The APOP timestamp (`<…@host>`), present when APOP is offered.
    pub apop_timestamp: Option<String>,
    pub capabilities: Capabilities,
    /// TLS can be started with STLS on this connection.
    pub stls_available: bool,
    /// The connection is already encrypted (implicit TLS).
    pub secure: bool,
    /// Password authentication is allowed before TLS (loopback peer or configuration).
    pub plaintext_allowed_insecure: bool,
    /// Failed logins after which the connection is closed.
    pub max_auth_failures: u32,
    /// Bad commands in a row after which the connection is closed.
    pub max_bad_commands: u32,
}

/// One message of the snapshot taken at login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageEntry {
    /// Octets in CRLF form before byte-stuffing.
    pub size: u64,
    pub uidl: Uidl,
}

/// Credentials to check, from USER/PASS or APOP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    User {
        user: UserName,
        password: Secret,
    },
    Apop {
        user: UserName,
        timestamp: String,
        digest: Vec<u8>,
    },
}

/// What the session needs from the shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Write the output, then feed more input.
    NeedInput,
    /// Check these credentials and open the maildrop; answer with `login_accepted` or `login_rejected`.
    Authenticate(Credentials),
    /// Start a SASL exchange; answer with `sasl_challenge`, `login_accepted` or `login_rejected`.
    SaslStart {
        mechanism: String,
        initial_response: Option<Vec<u8>>,
    },
    /// The client's next SASL response, decoded; answered like `SaslStart`.
    SaslResponse(Vec<u8>),
    /// Write the output, run the TLS handshake, then call `tls_started`.
    StartTls,
    /// Send message `index` (0-based; `top_lines` set for TOP): open it and call
    /// `message_opened`, hand its bytes as stored to `message_chunk` until it wants no more or
    /// the message ends, then call `message_end`. Or, if it cannot be opened, `message_failed`.
    Retrieve {
        index: usize,
        top_lines: Option<u64>,
    },
    /// QUIT in the transaction state: delete these messages (0-based), then call `updated`.
    Update { deleted: Vec<usize> },
    /// Write the output and close the connection.
    Close,
}

#[derive(Debug)]
enum Phase {
    Authorization {
        user: Option<UserName>,
    },
    /// In a SASL exchange: the next line is a client response.
    Sasl,
    Transaction(Snapshot),
    Closed,
}

/// A service call the session waits for.
#[derive(Debug)]
enum Waiting {
    /// Credentials checked or a SASL step (in `Phase::Sasl`).
    Login,
    Tls,
    /// A message to be opened; `size` is the octet count its status line announces.
    Message {
        size: u64,
        top_lines: Option<u64>,
    },
    /// The body of an open message, streaming through the encoder into the output.
    Body {
        encoder: BodyEncoder,
        sent: u64,
    },
    /// The body of an open message, sent by the shell as stored: `octets` of them, with the
    /// stuffing `.`s inserted among them.
    Stored {
        octets: u64,
        stuffed: u64,
    },
    Update,
}

/// How the shell sends the body of a message opened with
/// [`ServerSession::message_opened_in_wire_form`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyTransfer {
    /// Through the encoder: hand the message as stored to `message_chunk`.
    Encode,
    /// As stored: after the output, exactly `octets` octets of the message, unchanged but
    /// for a `.` before each line that starts with one (the shell knows where they are).
    AsStored { octets: u64 },
}

/// What a session waits for from its shell, as [`WrongState`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pending {
    /// No event is waiting for an answer.
    Nothing,
    /// `Authenticate`: credentials to check.
    Login,
    /// `SaslStart` or `SaslResponse`: the next step of a SASL exchange.
    SaslStep,
    /// `StartTls`: the handshake.
    TlsHandshake,
    /// `Retrieve`: the message to be opened.
    MessageOpen,
    /// The chunks and the end of an opened message.
    MessageBody,
    /// The end of an opened message the shell sends as stored.
    MessageSentAsStored,
    /// `Update`: the deletions after QUIT.
    Update,
}

impl fmt::Display for Pending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Pending::Nothing => "nothing",
            Pending::Login => "a login",
            Pending::SaslStep => "a SASL step",
            Pending::TlsHandshake => "the TLS handshake",
            Pending::MessageOpen => "a message to be opened",
            Pending::MessageBody => "the body of an open message",
            Pending::MessageSentAsStored => "the end of a message sent as stored",
            Pending::Update => "the update after QUIT",
        })
    }
}

/// A completion called when the session was not waiting for it: a defect of the shell,
/// which should end the connection rather than leave the session waiting for ever.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{completion}` answers {}, but the session waits for {actual}", either(.expected))]
pub struct WrongState {
    /// The completion method called.
    pub completion: &'static str,
    /// What it answers.
    pub expected: &'static [Pending],
    /// What the session waited for.
    pub actual: Pending,
}

fn either(expected: &[Pending]) -> String {
    let names: Vec<String> = expected.iter().map(Pending::to_string).collect();
    names.join(" or ")
}

#[derive(Debug)]
struct Snapshot {
    messages: Vec<MessageEntry>,
    deleted: Vec<bool>,
}

impl Snapshot {
    fn live(&self) -> impl Iterator<Item = (usize, &MessageEntry)> {
        self.messages
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.deleted[*i])
    }

    fn totals(&self) -> (usize, u64) {
        self.live().fold((0, 0), |(count, octets), (_, m)| {
            (count + 1, octets + m.size)
        })
    }

    fn resolve(&self, msg: MsgNum) -> Result<usize, &'static str> {
        let index = msg.index();
        match self.deleted.get(index) {
            None => Err("No such message."),
            Some(true) => Err("Message is deleted."),
            Some(false) => Ok(index),
        }
    }
}

/// RETR and TOP: the event asking for message `msg`, and the wait for its answer.
fn retrieve(
    snapshot: &Snapshot,
    waiting: &mut Option<Waiting>,
    msg: MsgNum,
    top_lines: Option<u64>,
) -> Result<Option<Event>, &'static str> {
    let index = snapshot.resolve(msg)?;
    *waiting = Some(Waiting::Message {
        size: snapshot.messages[index].size,
        top_lines,
    });
    Ok(Some(Event::Retrieve { index, top_lines }))
}

/// One POP3 session, server side.
#[derive(Debug)]
pub struct ServerSession {
    options: ServerOptions,
    input: LineReader,
    output: Vec<u8>,
    phase: Phase,
    waiting: Option<Waiting>,
    auth_failures: u32,
    bad_commands: u32,
    tally: CommandTally,
}

impl ServerSession {
    /// A new session; the greeting is already in the output.
    pub fn new(options: ServerOptions) -> Self {
        let mut output = Vec::new();
        let greeting = match &options.apop_timestamp {
            Some(timestamp) => format!("{} {timestamp}", options.greeting),
            None => options.greeting.clone(),
        };
        write_ok(&mut output, &greeting);
        ServerSession {
            options,
            input: LineReader::new(),
            output,
            phase: Phase::Authorization { user: None },
            waiting: None,
            auth_failures: 0,
            bad_commands: 0,
            tally: CommandTally::default(),
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

    /// Whether the user has logged in (the shell picks the longer idle timeout then).
    pub fn is_authenticated(&self) -> bool {
        matches!(self.phase, Phase::Transaction(_))
    }

    /// The commands received so far, by verb.
    pub fn commands(&self) -> &CommandTally {
        &self.tally
    }

    /// Whether the connection is encrypted.
    pub fn is_secure(&self) -> bool {
        self.options.secure
    }

    /// Processes buffered input until an event needs the shell.
    // Not an Iterator: every call needs the previous event answered first.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Event {
        loop {
            if matches!(self.phase, Phase::Closed) {
                return Event::Close;
            }
            if self.waiting.is_some() {
                // A completion call is missing; processing more input now would break ordering.
                return Event::NeedInput;
            }
            let limit = match self.phase {
                Phase::Sasl => MAX_SASL_LINE,
                // An initial response may make AUTH longer than a command line may be: an
                // OAuth bearer token alone is longer, and mail clients send it there anyway
                // (RFC 5034 asks them not to; Dovecot takes it too).
                Phase::Authorization { .. } if self.input.starts_with_ignore_case(b"AUTH ") => {
                    MAX_SASL_LINE
                }
                _ => MAX_COMMAND_LINE,
            };
            let line = match self.input.next_line(limit) {
                None => return Event::NeedInput,
                Some(ReadLine::TooLong) => {
                    if matches!(self.phase, Phase::Sasl) {
                        self.phase = Phase::Authorization { user: None };
                    }
                    self.bad_command("Line too long.");
                    continue;
                }
                Some(ReadLine::Line(line)) => line,
            };
            let event = if matches!(self.phase, Phase::Sasl) {
                self.sasl_line(&line)
            } else {
                match Command::parse(&line) {
                    Ok(command) => {
                        self.tally.record(command.verb());
                        self.command(command)
                    }
                    Err(CommandError::ProxyHeader) => {
                        // Whoever claims another client's address is not talked to further.
                        self.tally.record_invalid();
                        write_err(
                            &mut self.output,
                            Some(RespCode::SysPerm),
                            &CommandError::ProxyHeader.to_string(),
                        );
                        self.phase = Phase::Closed;
                        None
                    }
                    Err(error) => {
                        self.tally.record_invalid();
                        self.bad_command(&error.to_string());
                        None
                    }
                }
            };
            if let Some(event) = event {
                return event;
            }
        }
    }

    fn sasl_line(&mut self, line: &[u8]) -> Option<Event> {
        if line == b"*" {
            self.phase = Phase::Authorization { user: None };
            write_err(&mut self.output, None, "Authentication cancelled.");
            return None;
        }
        match decode_base64(line) {
            Ok(response) => {
                self.waiting = Some(Waiting::Login);
                Some(Event::SaslResponse(response))
            }
            Err(_) => {
                self.phase = Phase::Authorization { user: None };
                self.bad_command("Invalid base64 data in SASL response.");
                None
            }
        }
    }

    fn bad_command(&mut self, text: &str) {
        self.bad_commands += 1;
        if self.bad_commands >= self.options.max_bad_commands {
            write_err(
                &mut self.output,
                None,
                "Too many invalid commands, closing the connection.",
            );
            self.phase = Phase::Closed;
        } else {
            write_err(&mut self.output, None, text);
        }
    }

    fn plaintext_allowed(&self) -> bool {
        self.options.secure || self.options.plaintext_allowed_insecure
    }

    fn command(&mut self, command: Command) -> Option<Event> {
        match command {
            Command::Capa => {
                let ctx = CapaContext {
                    authenticated: self.is_authenticated(),
                    stls_offered: self.options.stls_available && !self.options.secure,
                    plaintext_allowed: self.plaintext_allowed(),
                };
                self.options.capabilities.write(&ctx, &mut self.output);
                self.bad_commands = 0;
                None
            }
            Command::Quit => Some(self.quit()),
            command => match self.phase {
                Phase::Authorization { .. } => self.authorization(command),
                Phase::Transaction(_) => self.transaction(command),
                Phase::Sasl | Phase::Closed => None,
            },
        }
    }

    fn transaction(&mut self, command: Command) -> Option<Event> {
        let Phase::Transaction(snapshot) = &mut self.phase else {
            return None;
        };
        let out = &mut self.output;
        let result: Result<Option<Event>, &str> = match command {
            Command::Stat => {
                let (count, octets) = snapshot.totals();
                write_ok(out, &format!("{count} {octets}"));
                Ok(None)
            }
            Command::List(None) => {
                let (count, octets) = snapshot.totals();
                write_ok(out, &format!("{count} messages ({octets} octets)"));
                for (index, message) in snapshot.live() {
                    out.extend_from_slice(format!("{} {}\r\n", index + 1, message.size).as_bytes());
                }
                out.extend_from_slice(b".\r\n");
                Ok(None)
            }
            Command::List(Some(msg)) => snapshot.resolve(msg).map(|index| {
                write_ok(out, &format!("{msg} {}", snapshot.messages[index].size));
                None
            }),
            Command::Uidl(None) => {
                write_ok(out, "Unique-ID listing follows.");
                for (index, message) in snapshot.live() {
                    out.extend_from_slice(format!("{} {}\r\n", index + 1, message.uidl).as_bytes());
                }
                out.extend_from_slice(b".\r\n");
                Ok(None)
            }
            Command::Uidl(Some(msg)) => snapshot.resolve(msg).map(|index| {
                write_ok(out, &format!("{msg} {}", snapshot.messages[index].uidl));
                None
            }),
            Command::Retr(msg) => retrieve(snapshot, &mut self.waiting, msg, None),
            Command::Top { msg, lines } => retrieve(snapshot, &mut self.waiting, msg, Some(lines)),
            Command::Dele(msg) => snapshot.resolve(msg).map(|index| {
                snapshot.deleted[index] = true;
                write_ok(out, &format!("Message {msg} deleted."));
                None
            }),
            Command::Rset => {
                snapshot.deleted.iter_mut().for_each(|d| *d = false);
                let (count, octets) = snapshot.totals();
                write_ok(
                    out,
                    &format!("Maildrop has {count} messages ({octets} octets)."),
                );
                Ok(None)
            }
            Command::Noop => {
                write_ok(out, "");
                Ok(None)
            }
            _ => Err("Already logged in."),
        };
        match result {
            Ok(event) => {
                self.bad_commands = 0;
                event
            }
            Err(text) => {
                write_err(out, None, text);
                self.bad_command_after_reply();
                None
            }
        }
    }

    /// Counts a command whose `-ERR` reply has been written already.
    fn bad_command_after_reply(&mut self) {
        self.bad_commands += 1;
        if self.bad_commands >= self.options.max_bad_commands {
            write_err(
                &mut self.output,
                None,
                "Too many invalid commands, closing the connection.",
            );
            self.phase = Phase::Closed;
        }
    }

    fn quit(&mut self) -> Event {
        match &self.phase {
            Phase::Transaction(snapshot) => {
                let deleted = (0..snapshot.messages.len())
                    .filter(|&i| snapshot.deleted[i])
                    .collect();
                self.waiting = Some(Waiting::Update);
                Event::Update { deleted }
            }
            _ => {
                write_ok(&mut self.output, "Logging out.");
                self.phase = Phase::Closed;
                Event::Close
            }
        }
    }

    fn authorization(&mut self, command: Command) -> Option<Event> {
        let plaintext_allowed = self.plaintext_allowed();
        let out = &mut self.output;
        match command {
            Command::User(name) => {
                if !plaintext_allowed {
                    write_error_kind(out, ErrorKind::PlaintextRefused);
                } else {
                    // The same answer for every name: no user enumeration here.
                    write_ok(out, "Send your password.");
                    self.phase = Phase::Authorization { user: Some(name) };
                    self.bad_commands = 0;
                    return None;
                }
            }
            Command::Pass(password) => {
                let Phase::Authorization { user } = &mut self.phase else {
                    return None;
                };
                match user.take() {
                    None => write_err(out, None, "Send USER first."),
                    Some(_) if !plaintext_allowed => {
                        write_error_kind(out, ErrorKind::PlaintextRefused)
                    }
                    Some(user) => {
                        self.waiting = Some(Waiting::Login);
                        return Some(Event::Authenticate(Credentials::User { user, password }));
                    }
                }
            }
            Command::Apop { user, digest } => match self.options.apop_timestamp.clone() {
                Some(timestamp) => {
                    self.waiting = Some(Waiting::Login);
                    return Some(Event::Authenticate(Credentials::Apop {
                        user,
                        timestamp,
                        digest,
                    }));
                }
                None => write_err(out, None, "APOP is not offered by this server."),
            },
            Command::Auth {
                mechanism: None, ..
            } => {
                write_ok(out, "Supported mechanisms follow.");
                for mechanism in self.options.capabilities.mechanisms(plaintext_allowed) {
                    out.extend_from_slice(mechanism.as_bytes());
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b".\r\n");
                self.bad_commands = 0;
                return None;
            }
            Command::Auth {
                mechanism: Some(mechanism),
                initial_response,
            } => {
                let caps = &self.options.capabilities;
                if !caps.sasl.contains(&mechanism) {
                    write_err(out, None, "Unsupported authentication mechanism.");
                } else if caps.plaintext_sasl.contains(&mechanism) && !plaintext_allowed {
                    write_error_kind(out, ErrorKind::PlaintextRefused);
                } else {
                    self.phase = Phase::Sasl;
                    self.waiting = Some(Waiting::Login);
                    return Some(Event::SaslStart {
                        mechanism,
                        initial_response,
                    });
                }
            }
            Command::Stls => {
                if self.options.secure {
                    write_err(out, None, "TLS is already active.");
                } else if !self.options.stls_available {
                    write_err(out, None, "STLS is not available: TLS is not configured.");
                } else {
                    write_ok(out, "Begin TLS negotiation now.");
                    self.waiting = Some(Waiting::Tls);
                    self.bad_commands = 0;
                    return Some(Event::StartTls);
                }
            }
            Command::Utf8 => {
                write_ok(out, "UTF8 enabled.");
                self.bad_commands = 0;
                return None;
            }
            _ => write_err(out, None, "Not logged in: authenticate first."),
        }
        self.bad_command_after_reply();
        None
    }

    /// What the session waits for.
    fn pending(&self) -> Pending {
        match (&self.waiting, &self.phase) {
            (None, _) => Pending::Nothing,
            (Some(Waiting::Login), Phase::Sasl) => Pending::SaslStep,
            (Some(Waiting::Login), _) => Pending::Login,
            (Some(Waiting::Tls), _) => Pending::TlsHandshake,
            (Some(Waiting::Message { .. }), _) => Pending::MessageOpen,
            (Some(Waiting::Body { .. }), _) => Pending::MessageBody,
            (Some(Waiting::Stored { .. }), _) => Pending::MessageSentAsStored,
            (Some(Waiting::Update), _) => Pending::Update,
        }
    }

    /// Ends the wait if `completion` answers it; otherwise leaves the session as it was.
    fn complete(
        &mut self,
        completion: &'static str,
        expected: &'static [Pending],
    ) -> Result<(), WrongState> {
        if !expected.contains(&self.pending()) {
            return Err(self.wrong_state(completion, expected));
        }
        self.waiting = None;
        Ok(())
    }

    fn wrong_state(&self, completion: &'static str, expected: &'static [Pending]) -> WrongState {
        WrongState {
            completion,
            expected,
            actual: self.pending(),
        }
    }

    /// The credentials were right and the maildrop is open: enter the transaction state.
    pub fn login_accepted(&mut self, messages: Vec<MessageEntry>) -> Result<(), WrongState> {
        self.complete("login_accepted", &[Pending::Login, Pending::SaslStep])?;
        let snapshot = Snapshot {
            deleted: vec![false; messages.len()],
            messages,
        };
        let (count, octets) = snapshot.totals();
        write_ok(
            &mut self.output,
            &format!("Logged in: {count} messages ({octets} octets)."),
        );
        self.phase = Phase::Transaction(snapshot);
        self.bad_commands = 0;
        Ok(())
    }

    /// The login failed. Failed credentials count towards closing the connection.
    pub fn login_rejected(&mut self, kind: ErrorKind) -> Result<(), WrongState> {
        self.complete("login_rejected", &[Pending::Login, Pending::SaslStep])?;
        write_error_kind(&mut self.output, kind);
        self.phase = Phase::Authorization { user: None };
        if matches!(
            kind,
            ErrorKind::BadCredentials | ErrorKind::AppPasswordRequired
        ) {
            self.auth_failures += 1;
            if self.auth_failures >= self.options.max_auth_failures {
                write_err(
                    &mut self.output,
                    None,
                    "Too many failed logins, closing the connection.",
                );
                self.phase = Phase::Closed;
            }
        }
        Ok(())
    }

    /// The SASL exchange goes on with this server challenge.
    pub fn sasl_challenge(&mut self, challenge: &[u8]) -> Result<(), WrongState> {
        self.complete("sasl_challenge", &[Pending::SaslStep])?;
        use base64::Engine;
        self.output.extend_from_slice(b"+ ");
        self.output.extend_from_slice(
            base64::engine::general_purpose::STANDARD
                .encode(challenge)
                .as_bytes(),
        );
        self.output.extend_from_slice(b"\r\n");
        Ok(())
    }

    /// The TLS handshake after STLS succeeded. Input received before it is discarded: it was
    /// sent in the clear and may have been injected (RFC 2595 section 4; the STARTTLS
    /// injection class of bugs).
    pub fn tls_started(&mut self) -> Result<(), WrongState> {
        self.complete("tls_started", &[Pending::TlsHandshake])?;
        self.input.clear();
        self.options.secure = true;
        // Nothing the client said in the clear counts inside TLS (RFC 3207 section 4.2, which
        // RFC 2595 implies): a USER before STLS may have been injected by a man in the middle.
        self.phase = Phase::Authorization { user: None };
        Ok(())
    }

    /// The message of the pending `Retrieve` is open: writes the status line. The shell then
    /// hands the message to `message_chunk` and ends it with `message_end`.
    pub fn message_opened(&mut self) -> Result<(), WrongState> {
        let Some(Waiting::Message { size, top_lines }) = self.waiting else {
            return Err(self.wrong_state("message_opened", &[Pending::MessageOpen]));
        };
        let encoder = match top_lines {
            Some(lines) => {
                write_ok(&mut self.output, "Top of message follows.");
                BodyEncoder::top(lines)
            }
            None => {
                write_ok(&mut self.output, &format!("{size} octets"));
                BodyEncoder::whole()
            }
        };
        self.waiting = Some(Waiting::Body { encoder, sent: 0 });
        Ok(())
    }

    /// The message of the pending `Retrieve` is open, and the store knows (without reading it)
    /// that its `stored_len` octets as stored are its wire form once `stuffed` lines that start
    /// with `.` get another one: CRLF line endings, a final CRLF. The session decides how it
    /// goes out and writes the status line. [`BodyTransfer::AsStored`] for a RETR whose
    /// announced size is `stored_len`: the shell writes the output, then exactly those octets
    /// as stored with a `.` inserted before each of those lines, and calls `message_end`,
    /// which writes the terminating `.`; a shell that cannot send them all must end the
    /// connection. [`BodyTransfer::Encode`] otherwise (TOP, a size that does not match): as
    /// after [`message_opened`](Self::message_opened).
    pub fn message_opened_in_wire_form(
        &mut self,
        stored_len: u64,
        stuffed: u64,
    ) -> Result<BodyTransfer, WrongState> {
        let Some(Waiting::Message { size, top_lines }) = self.waiting else {
            return Err(self.wrong_state("message_opened_in_wire_form", &[Pending::MessageOpen]));
        };
        if top_lines.is_some() || size != stored_len {
            self.message_opened()?;
            return Ok(BodyTransfer::Encode);
        }
        write_ok(&mut self.output, &format!("{size} octets"));
        self.waiting = Some(Waiting::Stored {
            octets: size,
            stuffed,
        });
        Ok(BodyTransfer::AsStored { octets: size })
    }

    /// The next chunk of the open message, as stored (any line endings, unstuffed), which is
    /// encoded straight into the output. Returns whether more is wanted: TOP wants none once
    /// it has the header and its lines, and the shell may stop reading then.
    pub fn message_chunk(&mut self, chunk: &[u8]) -> Result<bool, WrongState> {
        let Some(Waiting::Body { encoder, sent }) = &mut self.waiting else {
            return Err(self.wrong_state("message_chunk", &[Pending::MessageBody]));
        };
        let before = self.output.len();
        encoder.encode(chunk, &mut self.output);
        *sent += (self.output.len() - before) as u64;
        Ok(!encoder.is_done())
    }

    /// The open message ends here (or TOP wanted no more): completes its last line and writes
    /// the terminating ".". Returns the bytes of the body sent, terminator included.
    pub fn message_end(&mut self) -> Result<u64, WrongState> {
        let body = self
            .waiting
            .take_if(|waiting| matches!(waiting, Waiting::Body { .. } | Waiting::Stored { .. }));
        let before = self.output.len();
        let sent = match body {
            Some(Waiting::Body { encoder, sent }) => {
                encoder.finish(&mut self.output);
                sent
            }
            Some(Waiting::Stored { octets, stuffed }) => {
                self.output.extend_from_slice(b".\r\n");
                octets + stuffed
            }
            _ => {
                return Err(self.wrong_state(
                    "message_end",
                    &[Pending::MessageBody, Pending::MessageSentAsStored],
                ))
            }
        };
        self.bad_commands = 0;
        Ok(sent + (self.output.len() - before) as u64)
    }

    /// The message of the pending `Retrieve` could not be opened; nothing was written for it.
    /// (Once it is open, its status line is out, and a failure can only end the connection.)
    pub fn message_failed(&mut self, kind: ErrorKind) -> Result<(), WrongState> {
        self.complete("message_failed", &[Pending::MessageOpen])?;
        write_error_kind(&mut self.output, kind);
        Ok(())
    }

    /// The deletions after QUIT were applied (or not); the session ends either way.
    pub fn updated(&mut self, result: Result<(), ErrorKind>) -> Result<(), WrongState> {
        self.complete("updated", &[Pending::Update])?;
        match result {
            Ok(()) => write_ok(&mut self.output, "Logging out, messages deleted."),
            Err(ErrorKind::Temporary) | Err(_) => write_err(
                &mut self.output,
                Some(RespCode::SysTemp),
                "Some deleted messages were not removed.",
            ),
        }
        self.phase = Phase::Closed;
        Ok(())
    }

    /// Ends the session from the shell's side (idle timeout, shutdown, a completion out of
    /// turn): a final `-ERR` line. Nothing is deleted.
    pub fn abort(&mut self, reason: &str) {
        write_err(&mut self.output, None, reason);
        self.phase = Phase::Closed;
    }
}
