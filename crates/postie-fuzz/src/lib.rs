//! The fuzz targets of postie, one function each, taking arbitrary bytes. cargo-fuzz runs
//! them from `fuzz/`; `tests/corpus.rs` replays every checked-in corpus file through them, so
//! CI exercises every target on every change. A target panics only on a real defect.

#![forbid(unsafe_code)]

mod alphabet;
mod client;
mod pop3;
mod proxy;
mod sasl;
mod smtp;

pub use client::pop3_client;
pub use pop3::{dotstuff_round_trip, pop3_command, pop3_server_session};
pub use proxy::proxy_header;
pub use sasl::sasl_exchange;
pub use smtp::{smtp_data_round_trip, smtp_session};

/// Maildir file names: every name parser.
pub fn maildir_name(data: &[u8]) {
    postie_store::fuzzing::maildir_name(data);
}

/// postie's index: parses, and what parses survives a serialize/parse round trip.
pub fn postie_uidlist(data: &[u8]) {
    postie_store::fuzzing::postie_uidlist(data);
}

/// Dovecot's uidlist.
pub fn dovecot_uidlist(data: &[u8]) {
    postie_store::fuzzing::dovecot_uidlist(data);
}

/// The configuration file, parsed and checked as `postie serve` does, less the reading of
/// the TLS files an input may name.
pub fn config_file(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = postie::config::Config::parse_without_tls(
            std::path::Path::new("/etc/postie/postie.toml"),
            text,
        );
    }
}

/// The passwd-file.
pub fn passwd_file(data: &[u8]) {
    postie_auth::fuzzing::passwd_file(data);
}

/// A fuzz target: arbitrary bytes in, a panic only on a real defect.
pub type Target = fn(&[u8]);

/// Every target by name, for the corpus replay and for `fuzz/` to stay in step.
pub const TARGETS: &[(&str, Target)] = &[
    ("pop3_command", pop3_command),
    ("pop3_server_session", pop3_server_session),
    ("dotstuff_round_trip", dotstuff_round_trip),
    ("sasl_exchange", sasl_exchange),
    ("maildir_name", maildir_name),
    ("postie_uidlist", postie_uidlist),
    ("dovecot_uidlist", dovecot_uidlist),
    ("passwd_file", passwd_file),
    ("config_file", config_file),
    ("proxy_header", proxy_header),
    ("pop3_client", pop3_client),
    ("smtp_session", smtp_session),
    ("smtp_data_round_trip", smtp_data_round_trip),
];
