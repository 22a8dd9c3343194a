//! Every limit that bounds what a client, a sender or a maildrop can make postie hold, in one
//! place. Each crate takes its limits from here; ARCHITECTURE.md points here.

/// The most messages one POP3 session lists: the oldest this many; the rest wait for a later
/// session, after the client has deleted some. A snapshot costs about 100 octets a message.
pub const MAX_SNAPSHOT_MESSAGES: usize = 1_000_000;
