//! The tokio shells around postie's sans-IO POP3 core: listeners, TLS, timeouts and limits.
//!
//! A shell only moves bytes between a socket and a [`postie_proto::ServerSession`], runs the
//! services the session asks for (authentication, the mail store) off the async threads, and
//! enforces time and resource limits. All protocol decisions live in the core.

mod config;
pub mod conn;
mod error;
pub mod http;
mod limits;
mod listener;
pub mod proxy;
mod session;
mod tls;
pub mod write;

pub use config::Pop3Config;
pub use error::ServerError;
pub use listener::{Pop3Reloader, Pop3Server, RunningServer};
pub use tls::{read_certs, ReloadableCert};
