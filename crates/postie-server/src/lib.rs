//! The tokio shell around postie's sans-IO POP3 core: listeners, timeouts and login policy
//! (the socket plumbing it shares with mail intake is postie-net's).
//!
//! A shell only moves bytes between a socket and a [`postie_proto::ServerSession`], runs the
//! services the session asks for (authentication, the mail store) off the async threads, and
//! enforces time and resource limits. All protocol decisions live in the core.

#![forbid(unsafe_code)]

mod bearer_tokens;
mod config;
mod error;
pub mod http;
mod listener;
mod login_policy;
mod session;
mod shared;

pub use bearer_tokens::{BearerError, BearerFuture, BearerTokens};
pub use config::Pop3Config;
pub use error::ServerError;
pub use listener::{Pop3Reloader, Pop3Server, RunningServer};
pub use login_policy::{
    LocalRecords, LoginRecords, LoginRecordsError, RecentFailures, RecordsFuture,
    FORGET_FAILURES_AFTER,
};
