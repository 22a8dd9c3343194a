//! Users, passwords and SASL for postie.
//!
//! - [`PasswdFile`]: a Dovecot passwd-file as the user database ([`UserDb`]), re-read when it
//!   changes, plus [`passwd_file::set_user`] and friends for editing it in place.
//! - [`PasswordHash`] and [`hash_password`]: Dovecot's `{SCHEME}data` stored passwords.
//! - [`Authenticator`]: the USER/PASS, APOP and SASL checks the POP3 server runs. They block
//!   (hashing, file I/O), so run them off the async threads.
//! - [`SaslExchange`]: PLAIN, LOGIN and SCRAM-SHA-256 as sans-IO state machines.
//! - App passwords ([`AppPasswords`], [`NewAppPassword`]): generated per-client passwords,
//!   kept beside the passwd-file (`passwd_file::add_app_password` and friends) or in the
//!   database.
//! - [`parse_bearer`]: the client messages of OAUTHBEARER and XOAUTH2 (the token itself is
//!   checked by postie-oauth).

#![forbid(unsafe_code)]

mod apop;
mod app_password;
mod authenticator;
mod bearer;
mod error;
mod login_name;
pub mod passwd_file;
mod password;
mod random;
mod sasl;
mod scheme;
mod scram_keys;
mod two_step;
mod userdb;

pub use app_password::{
    validate_label, AppPassword, AppPasswordDigest, AppPasswordInfo, AppPasswordUse, AppPasswords,
    NewAppPassword, MAX_LABEL_LEN, USE_RECORD_INTERVAL,
};
pub use authenticator::{Authenticator, Verdict};
pub use bearer::{
    bearer_error_status, parse_bearer, BearerMechanism, BearerRequest, BearerSyntaxError,
};
pub use error::AuthError;
pub use login_name::LoginName;
pub use passwd_file::PasswdFile;
pub use password::{hash_password, PasswordHash, MAX_PASSWORD_LEN};
pub use sasl::{Mechanism, SaslExchange, SaslStep};
pub use scheme::Scheme;
pub use two_step::{new_recovery_codes, recovery_digest, TotpSecret, TwoStep, RECOVERY_CODES};
pub use userdb::{UserDb, UserRecord};

/// Entry points for the fuzz targets (crate postie-fuzz): the parsers of outside bytes.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    pub fn passwd_file(contents: &[u8]) {
        let _ = crate::passwd_file::parse::parse_file(std::path::Path::new("fuzz"), contents);
    }
}
