//! The SMTP and LMTP protocol core of postie, free of I/O: mail intake for the three doors
//! (LMTP, inbound SMTP, and the local delivery agent that needs only the headers).
//!
//! [`SmtpSession`] is the server side for both roles, driven like the POP3
//! [`crate::ServerSession`]: bytes in, [`Event`]s and reply bytes out. Command lines are
//! bounded; message bodies are not line-bounded and stream through [`DotDecoder`] (DATA) or
//! as raw BDAT chunks, so a 50 MB message never sits in memory.

mod command;
mod data;
mod reply;
mod session;

pub use command::{split_address, Body, Command, CommandError, Hello, MailParams};
pub use data::{dot_stuff, Decoded, DotDecoder};
pub use reply::{DeliveryError, Reply, Status};
pub use session::{Envelope, Event, Recipient, Role, SmtpOptions, SmtpSession};
