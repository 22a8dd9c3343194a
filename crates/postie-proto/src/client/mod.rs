//! The client side of POP3, free of I/O: the half of the protocol a mail fetcher speaks.
//!
//! [`ClientSession`] encodes commands and decodes the server's answers into
//! [`ClientEvent`]s, with the same line codec and dot-stuffing decoder the server side uses.
//! It knows nothing of sockets, TLS or clocks: the shell (postie-fetch) writes its output,
//! feeds it what the server sends, runs the TLS handshake when STLS is accepted and supplies
//! random nonces for SCRAM.

mod apop;
mod body;
mod capa;
mod listing;
mod sasl;
mod session;
mod status;

pub use apop::apop_digest;
pub use capa::ServerCapabilities;
pub use listing::{ListEntry, UidlEntry};
pub use sasl::{SaslClient, SaslError, MAX_SCRAM_ITERATIONS};
pub use session::{AuthFailure, ClientError, ClientEvent, ClientSession, Maildrop, Sent};
pub use status::{Greeting, Status};
