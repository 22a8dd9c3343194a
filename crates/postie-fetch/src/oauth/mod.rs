//! OAuth 2.0 sign-in for accounts whose provider takes no passwords: `postie fetch login`
//! signs in once (the authorization code grant with PKCE and a loopback redirect, RFC 8252,
//! in [`loopback`]; or the device authorization grant, RFC 8628, in [`device`]), the refresh
//! token is kept in the state folder ([`tokens`]), and every fetch takes a fresh access token
//! from it without asking the user. Endpoints come from a preset or the issuer's discovery
//! document ([`provider`]); the HTTPS requests are [`http`]'s.

pub mod device;
mod error;
mod http;
pub mod loopback;
pub mod provider;
pub mod tokens;

pub use error::OAuthError;
pub use provider::{Endpoints, OAuthProvider, SignInSettings};
pub use tokens::{access_token, TokenStore};
