use std::path::PathBuf;
use std::time::Duration;

use postie_types::Secret;

/// `[oauth]`, checked by the binary: JWTs need `issuer` and `audience`; introspection needs
/// its endpoint and client credentials, and checks `issuer` and `audience` when given.
#[derive(Debug, Clone)]
pub struct OAuthSettings {
    /// The issuer as its tokens name it (`iss`), and where its discovery document is.
    pub issuer: Option<String>,
    /// What a token's `aud` must hold: this server's resource or client id at the provider.
    pub audience: Option<String>,
    /// The claim naming the user (`email` by default); its value is mapped to a login name.
    pub user_claim: String,
    /// Opaque tokens: ask this RFC 7662 endpoint instead of checking a JWT.
    pub introspection: Option<Introspection>,
    /// Trust only these CAs for the provider's HTTPS (default: the system's).
    pub ca_file: Option<PathBuf>,
    /// How far the provider's clock may be off ours, for `exp` and `nbf`.
    pub clock_skew: Duration,
}

/// An RFC 7662 token introspection endpoint and the credentials postie calls it with.
#[derive(Debug, Clone)]
pub struct Introspection {
    pub url: String,
    pub client_id: String,
    pub client_secret: Secret,
}
