//! The POP3 protocol core of postie, free of I/O.
//!
//! Bytes go in, events and bytes come out: no sockets, no clock, no files. The server shell
//! feeds what it reads into a [`ServerSession`], handles the [`Event`]s it returns by calling
//! services (authentication, storage, TLS), and writes the session's output. The same line
//! codec and dot-stuffing pair serve the client side.

mod capability;
pub mod client;
mod command;
mod dotstuff;
mod line;
pub mod proxy;
mod response;
mod server;
pub mod smtp;
mod tally;
mod verb;

pub use capability::{Capabilities, Expire};
pub use command::{Command, CommandError};
pub use dotstuff::{BodyEncoder, MultilineDecoder, MultilineItem};
pub use line::{LinePiece, LineReader, ReadLine};
pub use response::{ErrorKind, RespCode};
pub use server::{
    BodyTransfer, Credentials, Event, MessageEntry, Pending, ServerOptions, ServerSession,
    WrongState,
};
pub use tally::CommandTally;
pub use verb::Verb;
