//! The socket plumbing both of postie's doors stand on, the POP3 server (postie-server) and
//! mail intake (postie-intake): the connection type and its upgrade to TLS, the one accept
//! loop with its PROXY headers and connection limits, writes under a deadline, and the
//! server certificate.
//!
//! Nothing here knows a protocol: what a door says to a client it turns away, and everything
//! after a connection is let in, is the door's.

// Three system calls need it: sendfile(2) and send(2) with MSG_MORE for a stuffing dot, in
// `sendfile.rs`, and sendmsg(2) of a close_notify record in `kernel_tls.rs`, allowed there alone.
#![deny(unsafe_code)]

pub mod accept;
mod conn;
pub mod kernel_tls;
mod limits;
pub mod proxy;
mod sendfile;
pub mod tls;
mod write;

pub use accept::{Door, Gate, Listener, Serving};
pub use conn::{Conn, InProcess, UpgradeError};
pub use limits::{ConnectionLimits, ConnectionSlot, Refusal};
pub use sendfile::SendFileError;
pub use tls::{read_certs, CertError, ReloadableCert};
pub use write::{write_within, WriteFailed};
