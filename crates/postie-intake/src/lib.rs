//! Mail intake for postie: the doors through which mail reaches the store that POP3 reads.
//!
//! - [`IntakeServer`]: LMTP (TCP and Unix sockets) and inbound SMTP listeners (with
//!   STARTTLS), tokio shells around the sans-IO [`postie_proto::smtp::SmtpSession`].
//! - [`Deliverer`]: the delivery pipeline all doors share, `postie deliver` included:
//!   recipient to user, quota, trace headers, and the store's durable delivery.
//! - [`Spooled`]: a message body, in memory or (when large) in an unlinked temporary file,
//!   read once per recipient.

#![forbid(unsafe_code)]

mod config;
mod delivery;
mod error;
mod listener;
mod quota;
mod recipient;
mod session;
mod shared;
mod spool;
mod trace;

pub use config::{IntakeConfig, Listen};
pub use delivery::{Deliverer, DeliveryPolicy, Resolved};
pub use error::IntakeError;
pub use listener::{log_listeners, Inherited, IntakeServer, RunningIntake};
pub use quota::{parse_size, quota_for_user, QuotaRuleError};
pub use recipient::{login_name, Door};
pub use spool::{SpoolReader, Spooled};
pub use trace::{rfc5322_date, trace_headers, uses_crlf, Received};
