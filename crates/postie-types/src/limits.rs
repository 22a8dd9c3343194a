//! Every limit that bounds what a client, a sender, a server or a maildrop can make postie
//! hold or wait for, in one place: each crate takes its limits from here (ARCHITECTURE.md
//! points here). Limits an operator sets (`max_connections`, timeouts, message sizes) have
//! their defaults here too.

use std::time::Duration;

// --- Lines and commands --------------------------------------------------------------------

/// The longest POP3 command line a server accepts, CRLF included (RFC 2449 section 4).
pub const MAX_COMMAND_LINE: usize = 255;
/// The longest SASL continuation line a server accepts, CRLF included, and the longest
/// status or listing line the client accepts from a server.
pub const MAX_SASL_LINE: usize = 16 * 1024;
/// The longest SMTP/LMTP command line, CRLF included: RFC 5321's 512, with room for the
/// extension parameters (SIZE, BODY, SMTPUTF8, AUTH=) real clients send; Postfix allows
/// 2048 too.
pub const MAX_SMTP_LINE: usize = 2048;
/// Failed logins after which a POP3 connection is closed.
pub const MAX_AUTH_FAILURES: u32 = 3;
/// Invalid commands in a row after which a POP3 or SMTP connection is closed.
pub const MAX_BAD_COMMANDS: u32 = 20;
/// The longest password postie hashes or checks; longer ones are refused before any work.
pub const MAX_PASSWORD_LEN: usize = 1024;

// --- Maildrops -----------------------------------------------------------------------------

/// The most messages one POP3 session lists: the oldest this many; the rest wait for a later
/// session, after the client has deleted some. A snapshot costs about 100 octets a message.
pub const MAX_SNAPSHOT_MESSAGES: usize = 1_000_000;
/// The most entries the fetch client accepts in one LIST or UIDL answer from a server.
pub const MAX_LISTING_ENTRIES: usize = 10_000_000;

// --- Buffers and chunks --------------------------------------------------------------------

/// Bytes of a message read from the store per call on RETR/TOP, and the output buffered
/// before it is written. Chosen by a sweep of 16 KiB to 1 MiB against 1 MiB messages
/// (`bench/run.py --only retr`): 96 to 112 KiB gave the most throughput, 128 KiB and more
/// about a third less. Part of that is glibc, which hands buffers of 128 KiB and more out as
/// fresh mappings, faulted in page by page on every RETR.
pub const RETR_CHUNK: usize = 96 * 1024;
/// A session's buffers bigger than this are given back when it waits for its client, so
/// idle sessions stay near 9 KiB.
pub const IDLE_BUFFER: usize = 16 * 1024;
/// Bytes read from an SMTP/LMTP socket at a time; also the most one body piece holds.
pub const SMTP_READ_CHUNK: usize = 64 * 1024;

// --- Connections ---------------------------------------------------------------------------

/// Default `[pop3] max_connections`: POP3 sessions at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 20_000;
/// Default `[pop3] max_connections_per_ip`.
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 64;
/// Connections per client address on the SMTP door, which faces the internet: one address
/// must not take every slot of the intake. Postfix's default
/// `smtpd_client_connection_count_limit`. LMTP is not limited this way: its peers are the
/// local MTA, which opens as many connections as its own concurrency limits say.
pub const SMTP_MAX_PER_ADDRESS: usize = 50;
/// HTTP connections served at once; more are closed at once (scrapers and mail clients are
/// few).
pub const HTTP_MAX_CONNECTIONS: usize = 64;
/// An HTTP request line and headers, CRLFs included.
pub const HTTP_MAX_HEAD: usize = 8 * 1024;
/// An HTTP request body (an Autodiscover request is a few hundred bytes).
pub const HTTP_MAX_BODY: usize = 64 * 1024;

// --- Time ----------------------------------------------------------------------------------

/// The longest a load balancer may take to send its PROXY header; it sends it with the
/// connection.
pub const PROXY_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// A whole HTTP request must arrive within this.
pub const HTTP_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
