//! OAuth 2.0 bearer tokens for postie's logins (SASL OAUTHBEARER and XOAUTH2): a
//! [`TokenVerifier`] checks a token and says whose it is.
//!
//! - JWT access tokens are checked against the issuer's keys: its discovery document
//!   (`/.well-known/openid-configuration`) names the JWKS, which is cached, fetched again when
//!   a token names a key id it does not hold (a key rotation; at most [`REFETCH_BURST`] such
//!   fetches, then one per [`REFETCH_EVERY`]) and when older than [`KEYS_MAX_AGE`]. Signature,
//!   issuer, audience, expiry and not-before are checked.
//! - Opaque tokens are asked about at an RFC 7662 introspection endpoint.
//!
//! The SASL messages themselves are postie-auth's (`bearer`); the POP3 shell ties both.

#![forbid(unsafe_code)]

mod error;
mod http;
mod introspection;
mod jwks;
mod settings;
mod verifier;

pub use error::{OAuthError, TokenError};
pub use jwks::{KEYS_MAX_AGE, REFETCH_BURST, REFETCH_EVERY};
pub use settings::{Introspection, OAuthSettings};
pub use verifier::TokenVerifier;
