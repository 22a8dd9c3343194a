//! The client side of postie: `postie fetch` and `postie probe`.
//!
//! The POP3 conversation itself is postie-proto's sans-IO [`postie_proto::client`]; this
//! crate is its blocking shell ([`conn`]), certificate trust ([`tls`]), the login choice
//! ([`login`]), the fetch engine ([`engine`]) with its durable per-account journal
//! ([`state`]) and destinations ([`dest`]), progress display, the polling daemon
//! ([`daemon`]: [`schedule`], [`signals`], [`poll`], with each account's [`status`] record,
//! served over HTTP by [`status_http`], and its [`hooks`]), the connection probe
//! ([`probe`]), and OAuth 2.0 sign-in with its stored tokens ([`oauth`]).

pub mod account_file;
mod batch;
pub mod config;
pub mod conn;
pub mod credentials;
pub mod daemon;
pub mod dest;
pub mod discover;
pub mod drain;
pub mod engine;
pub mod error;
pub mod from_now_on;
pub mod header;
pub mod hooks;
mod https;
pub mod local_deletion;
pub mod login;
pub mod message_file;
pub mod oauth;
pub mod poll;
pub mod probe;
pub mod progress;
pub mod resolver;
pub mod routing;
pub mod rules;
pub mod schedule;
pub mod server_policy;
mod signals;
pub mod state;
pub mod status;
pub mod status_http;
pub mod stubs;
pub mod subject;
pub mod target;
pub mod tls;
mod trace;

pub use config::{Account, AuthChoice, FetchConfig, Oversize, Retention};
pub use engine::{fetch, plan, Action, Plan, RunOptions, Summary};
pub use error::{ExitStatus, FetchError};
pub use progress::ProgressMode;
pub use target::{PopUrl, Target, TlsMode};
