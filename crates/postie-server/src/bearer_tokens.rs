//! OAuth 2.0 bearer tokens as a login service: what the POP3 shell asks when a client logs in
//! with OAUTHBEARER or XOAUTH2. The binary implements it (postie-oauth checks the token, the
//! claim becomes a login name as LMTP recipients do); this crate knows no HTTP.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use postie_types::Secret;

/// What a token check comes to, later.
pub type BearerFuture<'a> = Pin<Box<dyn Future<Output = Result<String, BearerError>> + Send + 'a>>;

/// Checks bearer tokens. Shared by every session; set in [`crate::Pop3Config`].
pub trait BearerTokens: Send + Sync + fmt::Debug {
    /// The login name `token` is good for. `authzid` is the user the client says it logs in
    /// as (OAUTHBEARER's `a=`, XOAUTH2's `user=`): a token of another user is refused.
    fn login_name<'a>(&'a self, token: &'a Secret, authzid: Option<&'a str>) -> BearerFuture<'a>;

    /// Where a client gets a new token, for the error status (RFC 7628 section 3.2.2).
    fn openid_configuration(&self) -> Option<String>;
}

/// Why a token did not log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BearerError {
    /// Not good for this server: counted as a failed login.
    Refused(String),
    /// The identity provider could not be asked: a temporary failure.
    Unavailable(String),
}
