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
mod failure_counts;
pub mod http;
mod known_networks;
mod listener;
mod local_records;
mod login_brake;
mod login_policy;
mod recent_sessions;
#[cfg(feature = "contract-suite")]
pub mod records_contract;
mod session;
mod shared;
mod spray;

pub use bearer_tokens::{BearerError, BearerFuture, BearerTokens};
pub use config::Pop3Config;
pub use error::ServerError;
pub use listener::{Pop3Reloader, Pop3Server, RunningServer};
pub use local_records::LocalRecords;
pub use login_brake::LoginBrake;
pub use login_policy::{
    BrakeSettings, LoginHistory, LoginRecords, LoginRecordsError, RecordsFuture,
    FORGET_FAILURES_AFTER, REMEMBER_NETWORKS_FOR,
};
pub use recent_sessions::{RecentSession, RecentSessions, KEPT_PER_USER};
