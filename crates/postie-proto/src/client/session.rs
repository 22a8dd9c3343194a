//! The client side of a POP3 session as a state machine.
//!
//! The shell calls command methods (`capa`, `user`, `retr`, …), which encode the command into
//! [`ClientSession::output`] and remember what answer to expect; it writes the output, feeds
//! what it reads with [`ClientSession::feed`], and calls [`ClientSession::next`] until it says
//! [`ClientEvent::NeedInput`]. Answers come back in the order the commands were sent, so
//! several commands may be written at once (PIPELINING, RFC 2449). After AUTH and STLS the
//! session holds later commands back until the exchange or the TLS handshake is over, because
//! the server reads the next lines as SASL responses or must see them only encrypted.

use std::collections::VecDeque;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

use super::apop::apop_digest;
use super::body::BodyDecoder;
use super::capa::ServerCapabilities;
use super::listing::{parse_list, parse_uidl, ListEntry, UidlEntry};
use super::sasl::{SaslClient, SaslError};
use super::status::{Greeting, Status};
use crate::line::{LineReader, ReadLine};
use postie_types::limits::{MAX_COMMAND_LINE, MAX_LISTING_ENTRIES as MAX_ENTRIES, MAX_SASL_LINE};
use postie_types::Secret;
use postie_types::{MsgNum, UserName};

/// The longest status, listing or challenge line accepted from a server, line ending included.
const MAX_RESPONSE_LINE: usize = MAX_SASL_LINE;
/// A message body is handed out in chunks of at most about this size.
const BODY_CHUNK: usize = 64 * 1024;

/// A single-line command, named in its [`ClientEvent::Reply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    User,
    Pass,
    Apop,
    Stls,
    Utf8,
    Dele(MsgNum),
    Noop,
    Rset,
    Quit,
}

/// STAT's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Maildrop {
    pub count: u64,
    pub octets: u64,
}

/// Why a login through AUTH did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    /// The server said `-ERR`.
    Refused(Status),
    /// The client gave up: the server's side of the exchange was wrong. `status` is the
    /// server's last answer.
    Mechanism { error: SaslError, status: Status },
}

/// What [`ClientSession::next`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// Write the output, then feed more input.
    NeedInput,
    /// The server's first line: `Ok` for `+OK`, `Err` when it refuses service.
    Greeting(Result<Greeting, Status>),
    /// The answer to a single-line command.
    Reply {
        command: Sent,
        status: Status,
    },
    Capabilities(Result<ServerCapabilities, Status>),
    Stat(Result<Maildrop, Status>),
    List(Result<Vec<ListEntry>, Status>),
    Uidl(Result<Vec<UidlEntry>, Status>),
    /// The status line of RETR or TOP. With `+OK`, `MessageData` events and one `MessageEnd`
    /// follow; with `-ERR`, nothing does.
    MessageStart {
        msg: MsgNum,
        top: bool,
        status: Status,
    },
    /// Content of the message in progress: lines un-stuffed, each ending in CRLF.
    MessageData(Vec<u8>),
    MessageEnd {
        msg: MsgNum,
    },
    /// An AUTH exchange ended.
    Authenticated(Result<Status, AuthFailure>),
}

/// The server broke the protocol, or the shell asked for something that cannot be sent. The
/// session is unusable afterwards: close the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    #[error(
        "the server sent {found:?} where a POP3 {expected} was expected; is this a POP3 server?"
    )]
    Malformed {
        expected: &'static str,
        found: String,
    },
    #[error("the server sent a line longer than {MAX_RESPONSE_LINE} octets")]
    LineTooLong,
    #[error("the server sent data nobody asked for: {0:?}")]
    Unsolicited(String),
    #[error("the server listed more than {MAX_ENTRIES} messages")]
    TooManyEntries,
    #[error("the server's greeting has no APOP timestamp, so it does not offer APOP")]
    NoApopTimestamp,
    #[error("{0} cannot be sent: it contains a line break or NUL")]
    Unsendable(&'static str),
}

#[derive(Debug)]
enum Awaiting {
    Greeting,
    Reply(Sent),
    Capa,
    Stat,
    List,
    Uidl,
    Message { msg: MsgNum, top: bool },
    Auth,
}

#[derive(Debug)]
enum Reading {
    Capa(ServerCapabilities),
    List(Vec<ListEntry>),
    Uidl(Vec<UidlEntry>),
    Body { msg: MsgNum, decoder: BodyDecoder },
}

/// A command that must be answered before anything else is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Barrier {
    Auth,
    Stls,
    /// STLS was accepted; waiting for the shell's handshake.
    Handshake,
}

#[derive(Debug)]
struct Exchange {
    client: SaslClient,
    /// An initial response too long for the AUTH line, sent at the first challenge instead.
    deferred: Option<Secret>,
    /// The client cancelled with `*`; the server's `-ERR` is expected next.
    cancelled: Option<SaslError>,
}

/// One POP3 session, client side.
#[derive(Debug)]
pub struct ClientSession {
    input: LineReader,
    output: Vec<u8>,
    awaiting: VecDeque<Awaiting>,
    held_output: Vec<u8>,
    held: VecDeque<Awaiting>,
    barrier: Option<Barrier>,
    reading: Option<Reading>,
    exchange: Option<Exchange>,
    greeting: Option<Greeting>,
    /// A message body ended after the data handed out last.
    ended: Option<MsgNum>,
    broken: Option<ClientError>,
}

impl Default for ClientSession {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientSession {
    /// A new session, expecting the server's greeting.
    pub fn new() -> ClientSession {
        ClientSession {
            input: LineReader::new(),
            output: Vec::new(),
            awaiting: VecDeque::from([Awaiting::Greeting]),
            held_output: Vec::new(),
            held: VecDeque::new(),
            barrier: None,
            reading: None,
            exchange: None,
            greeting: None,
            ended: None,
            broken: None,
        }
    }

    /// Adds bytes read from the server.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.input.feed(bytes);
    }

    /// Bytes to send to the server. The shell writes and clears them. They may hold a password.
    pub fn output(&mut self) -> &mut Vec<u8> {
        &mut self.output
    }

    /// The greeting, once received.
    pub fn greeting(&self) -> Option<&Greeting> {
        self.greeting.as_ref()
    }

    /// Commands sent or held whose answers have not been handed out yet.
    pub fn outstanding(&self) -> usize {
        self.awaiting.len() + self.held.len()
    }

    /// Whether the session waits for the shell's TLS handshake after STLS.
    pub fn wants_tls(&self) -> bool {
        self.barrier == Some(Barrier::Handshake)
    }

    /// The TLS handshake after STLS is done. Anything the server sent before it is dropped:
    /// bytes injected into the plaintext stream must not pass for answers (RFC 2595 section 4).
    pub fn tls_started(&mut self) {
        self.input.clear();
        if self.barrier == Some(Barrier::Handshake) {
            self.release();
        }
    }

    pub fn capa(&mut self) {
        self.send(b"CAPA", Awaiting::Capa);
    }

    pub fn stls(&mut self) {
        self.send(b"STLS", Awaiting::Reply(Sent::Stls));
        self.set_barrier(Barrier::Stls);
    }

    pub fn utf8(&mut self) {
        self.send(b"UTF8", Awaiting::Reply(Sent::Utf8));
    }

    pub fn user(&mut self, user: &UserName) {
        self.send(
            format!("USER {user}").as_bytes(),
            Awaiting::Reply(Sent::User),
        );
    }

    pub fn pass(&mut self, password: &Secret) -> Result<(), ClientError> {
        let password = password.expose();
        if password.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(ClientError::Unsendable("the password"));
        }
        let mut line = b"PASS ".to_vec();
        line.extend_from_slice(password);
        self.send(&line, Awaiting::Reply(Sent::Pass));
        line.fill(0);
        Ok(())
    }

    /// APOP with the greeting's timestamp.
    pub fn apop(&mut self, user: &UserName, password: &Secret) -> Result<(), ClientError> {
        let timestamp = self
            .greeting
            .as_ref()
            .and_then(|g| g.apop_timestamp.clone())
            .ok_or(ClientError::NoApopTimestamp)?;
        let digest = apop_digest(&timestamp, password.expose());
        self.send(
            format!("APOP {user} {digest}").as_bytes(),
            Awaiting::Reply(Sent::Apop),
        );
        Ok(())
    }

    /// Starts an AUTH exchange. The client's first message goes on the AUTH line when the
    /// mechanism has one, `initial_response` allows it and the line fits in 255 octets
    /// (RFC 5034 section 4); otherwise it answers the server's first, empty challenge.
    pub fn auth(&mut self, mut client: SaslClient, initial_response: bool) {
        let mut line = format!("AUTH {}", client.name()).into_bytes();
        let mut deferred = None;
        if let Some(first) = client.initial_response() {
            let encoded = if first.expose().is_empty() {
                "=".to_owned()
            } else {
                BASE64.encode(first.expose())
            };
            if initial_response && line.len() + 1 + encoded.len() + 2 <= MAX_COMMAND_LINE {
                line.push(b' ');
                line.extend_from_slice(encoded.as_bytes());
            } else {
                deferred = Some(first);
            }
        }
        self.send(&line, Awaiting::Auth);
        line.fill(0);
        self.exchange = Some(Exchange {
            client,
            deferred,
            cancelled: None,
        });
        self.set_barrier(Barrier::Auth);
    }

    pub fn stat(&mut self) {
        self.send(b"STAT", Awaiting::Stat);
    }

    pub fn list(&mut self) {
        self.send(b"LIST", Awaiting::List);
    }

    pub fn uidl(&mut self) {
        self.send(b"UIDL", Awaiting::Uidl);
    }

    pub fn retr(&mut self, msg: MsgNum) {
        self.send(
            format!("RETR {msg}").as_bytes(),
            Awaiting::Message { msg, top: false },
        );
    }

    pub fn top(&mut self, msg: MsgNum, lines: u64) {
        self.send(
            format!("TOP {msg} {lines}").as_bytes(),
            Awaiting::Message { msg, top: true },
        );
    }

    pub fn dele(&mut self, msg: MsgNum) {
        self.send(
            format!("DELE {msg}").as_bytes(),
            Awaiting::Reply(Sent::Dele(msg)),
        );
    }

    pub fn noop(&mut self) {
        self.send(b"NOOP", Awaiting::Reply(Sent::Noop));
    }

    pub fn rset(&mut self) {
        self.send(b"RSET", Awaiting::Reply(Sent::Rset));
    }

    pub fn quit(&mut self) {
        self.send(b"QUIT", Awaiting::Reply(Sent::Quit));
    }

    fn send(&mut self, line: &[u8], awaiting: Awaiting) {
        let (output, queue) = if self.barrier.is_some() {
            (&mut self.held_output, &mut self.held)
        } else {
            (&mut self.output, &mut self.awaiting)
        };
        output.extend_from_slice(line);
        output.extend_from_slice(b"\r\n");
        queue.push_back(awaiting);
    }

    fn set_barrier(&mut self, barrier: Barrier) {
        // A barrier command that is itself held keeps the one in force.
        if self.barrier.is_none() {
            self.barrier = Some(barrier);
        }
    }

    /// The barrier is gone: held commands go out, up to the next barrier among them.
    fn release(&mut self) {
        self.barrier = None;
        let held_output = std::mem::take(&mut self.held_output);
        let mut lines = held_output.split_inclusive(|&b| b == b'\n');
        while let Some(awaiting) = self.held.pop_front() {
            let line = lines.next().unwrap_or_default();
            self.output.extend_from_slice(line);
            let barrier = match awaiting {
                Awaiting::Auth => Some(Barrier::Auth),
                Awaiting::Reply(Sent::Stls) => Some(Barrier::Stls),
                _ => None,
            };
            self.awaiting.push_back(awaiting);
            if let Some(barrier) = barrier {
                self.barrier = Some(barrier);
                let rest: Vec<u8> = lines.flatten().copied().collect();
                self.held_output = rest;
                return;
            }
        }
    }

    /// Processes buffered input until there is something for the shell.
    // Not an Iterator: the shell acts on each event (writes, handshakes) before the next.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<ClientEvent, ClientError> {
        if let Some(error) = &self.broken {
            return Err(error.clone());
        }
        let result = self.step();
        if let Err(error) = &result {
            self.broken = Some(error.clone());
        }
        result
    }

    fn step(&mut self) -> Result<ClientEvent, ClientError> {
        if let Some(msg) = self.ended.take() {
            return Ok(ClientEvent::MessageEnd { msg });
        }
        if let Some(Reading::Body { .. }) = &self.reading {
            return Ok(self.body());
        }
        if self.barrier == Some(Barrier::Handshake) {
            return Ok(ClientEvent::NeedInput);
        }
        loop {
            let line = match self.input.next_line(MAX_RESPONSE_LINE) {
                None => return Ok(ClientEvent::NeedInput),
                Some(ReadLine::TooLong) => return Err(ClientError::LineTooLong),
                Some(ReadLine::Line(line)) => line,
            };
            if let Some(reading) = self.reading.take() {
                if let Some(event) = self.listing_line(reading, &line)? {
                    return Ok(event);
                }
                continue;
            }
            if matches!(self.awaiting.front(), Some(Awaiting::Auth)) {
                if let Some(event) = self.auth_line(&line)? {
                    return Ok(event);
                }
                continue;
            }
            if let Some(event) = self.status_line(&line)? {
                return Ok(event);
            }
        }
    }

    /// A status line; `None` when it opens a listing whose lines come next.
    fn status_line(&mut self, line: &[u8]) -> Result<Option<ClientEvent>, ClientError> {
        let Some(awaiting) = self.awaiting.pop_front() else {
            return Err(ClientError::Unsolicited(shown(line)));
        };
        let status = Status::parse(line).ok_or_else(|| ClientError::Malformed {
            expected: "status line (+OK or -ERR)",
            found: shown(line),
        })?;
        let event = match awaiting {
            Awaiting::Greeting => {
                if status.ok {
                    let greeting = Greeting::new(status);
                    self.greeting = Some(greeting.clone());
                    ClientEvent::Greeting(Ok(greeting))
                } else {
                    ClientEvent::Greeting(Err(status))
                }
            }
            Awaiting::Reply(command) => {
                if command == Sent::Stls {
                    if status.ok {
                        self.barrier = Some(Barrier::Handshake);
                    } else {
                        self.release();
                    }
                }
                ClientEvent::Reply { command, status }
            }
            Awaiting::Stat => ClientEvent::Stat(if status.ok {
                parse_stat(&status.text).ok_or_else(|| ClientError::Malformed {
                    expected: "STAT answer (+OK count octets)",
                    found: shown(line),
                })?
            } else {
                Err(status)
            }),
            Awaiting::Capa if status.ok => {
                self.reading = Some(Reading::Capa(ServerCapabilities::default()));
                return Ok(None);
            }
            Awaiting::Capa => ClientEvent::Capabilities(Err(status)),
            Awaiting::List if status.ok => {
                self.reading = Some(Reading::List(Vec::new()));
                return Ok(None);
            }
            Awaiting::List => ClientEvent::List(Err(status)),
            Awaiting::Uidl if status.ok => {
                self.reading = Some(Reading::Uidl(Vec::new()));
                return Ok(None);
            }
            Awaiting::Uidl => ClientEvent::Uidl(Err(status)),
            Awaiting::Message { msg, top } => {
                if status.ok {
                    self.reading = Some(Reading::Body {
                        msg,
                        decoder: BodyDecoder::default(),
                    });
                }
                ClientEvent::MessageStart { msg, top, status }
            }
            // step() hands lines to auth_line while AUTH is the oldest command.
            Awaiting::Auth => return Err(ClientError::Unsolicited(shown(line))),
        };
        Ok(Some(event))
    }

    /// A line of CAPA, LIST or UIDL; the event once the list ends.
    fn listing_line(
        &mut self,
        mut reading: Reading,
        line: &[u8],
    ) -> Result<Option<ClientEvent>, ClientError> {
        if line == b"." {
            return Ok(Some(match reading {
                Reading::Capa(capa) => ClientEvent::Capabilities(Ok(capa)),
                Reading::List(entries) => ClientEvent::List(Ok(entries)),
                Reading::Uidl(entries) => ClientEvent::Uidl(Ok(entries)),
                Reading::Body { .. } => return Ok(None),
            }));
        }
        let content = line.strip_prefix(b".").unwrap_or(line);
        match &mut reading {
            Reading::Capa(capa) => capa.add_line(content),
            Reading::List(entries) => push_bounded(
                entries,
                parse_list(content),
                "LIST line (number size)",
                line,
            )?,
            Reading::Uidl(entries) => push_bounded(
                entries,
                parse_uidl(content),
                "UIDL line (number unique-id)",
                line,
            )?,
            Reading::Body { .. } => {}
        }
        self.reading = Some(reading);
        Ok(None)
    }

    /// Decodes as much of the body in progress as is buffered, up to one chunk.
    fn body(&mut self) -> ClientEvent {
        let Some(Reading::Body { msg, decoder }) = &mut self.reading else {
            return ClientEvent::NeedInput;
        };
        let msg = *msg;
        let mut data = Vec::new();
        let mut ended = false;
        while data.len() < BODY_CHUNK {
            let Some(piece) = self.input.next_piece(BODY_CHUNK) else {
                break;
            };
            if decoder.piece(piece, &mut data) {
                ended = true;
                break;
            }
        }
        if ended {
            self.reading = None;
            if data.is_empty() {
                return ClientEvent::MessageEnd { msg };
            }
            self.ended = Some(msg);
        }
        if data.is_empty() {
            ClientEvent::NeedInput
        } else {
            ClientEvent::MessageData(data)
        }
    }

    /// A line while an AUTH exchange runs: a challenge, or the final status.
    fn auth_line(&mut self, line: &[u8]) -> Result<Option<ClientEvent>, ClientError> {
        let Some(exchange) = self.exchange.as_mut() else {
            return Err(ClientError::Unsolicited(shown(line)));
        };
        let challenge = if line == b"+" {
            Some(&b""[..])
        } else {
            line.strip_prefix(b"+ ")
        };
        if let Some(challenge) = challenge {
            let response = match (exchange.deferred.take(), &exchange.cancelled) {
                (_, Some(_)) => None,
                (Some(first), None) if challenge.trim_ascii().is_empty() => Some(first),
                (_, None) => match BASE64.decode(challenge.trim_ascii()) {
                    Ok(decoded) => match exchange.client.respond(&decoded) {
                        Ok(response) => Some(response),
                        Err(error) => {
                            exchange.cancelled = Some(error);
                            None
                        }
                    },
                    Err(_) => {
                        exchange.cancelled = Some(SaslError::Malformed("challenge is not base64"));
                        None
                    }
                },
            };
            match response {
                Some(response) => {
                    let encoded = BASE64.encode(response.expose());
                    self.output.extend_from_slice(encoded.as_bytes());
                }
                None => self.output.push(b'*'),
            }
            self.output.extend_from_slice(b"\r\n");
            return Ok(None);
        }
        let status = Status::parse(line).ok_or_else(|| ClientError::Malformed {
            expected: "AUTH answer (+ challenge, +OK or -ERR)",
            found: shown(line),
        })?;
        self.awaiting.pop_front();
        let Some(exchange) = self.exchange.take() else {
            return Err(ClientError::Unsolicited(shown(line)));
        };
        self.release();
        let result = match (status.ok, exchange.cancelled) {
            (_, Some(error)) => Err(AuthFailure::Mechanism { error, status }),
            (true, None) => match exchange.client.finish() {
                Ok(()) => Ok(status),
                Err(error) => Err(AuthFailure::Mechanism { error, status }),
            },
            (false, None) => {
                // OAuth servers explain a refusal in a challenge before the -ERR; keep it.
                let mut status = status;
                if let Some(explanation) = exchange.client.server_explanation() {
                    status.text = format!("{} (server said: {explanation})", status.text);
                }
                Err(AuthFailure::Refused(status))
            }
        };
        Ok(Some(ClientEvent::Authenticated(result)))
    }
}

fn push_bounded<T>(
    entries: &mut Vec<T>,
    entry: Option<T>,
    expected: &'static str,
    line: &[u8],
) -> Result<(), ClientError> {
    let entry = entry.ok_or_else(|| ClientError::Malformed {
        expected,
        found: shown(line),
    })?;
    if entries.len() >= MAX_ENTRIES {
        return Err(ClientError::TooManyEntries);
    }
    entries.push(entry);
    Ok(())
}

fn parse_stat(text: &str) -> Option<Result<Maildrop, Status>> {
    let mut words = text.split_ascii_whitespace();
    let count = words.next()?.parse().ok()?;
    let octets = words.next()?.parse().ok()?;
    Some(Ok(Maildrop { count, octets }))
}

/// A server line for an error message: lossy, and cut short.
fn shown(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(&line[..line.len().min(120)]);
    text.into_owned()
}
