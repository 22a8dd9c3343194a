//! `[oauth]`: OAuth 2.0 bearer tokens for POP3 logins (OAUTHBEARER, XOAUTH2). postie-oauth
//! checks a token; its user claim becomes a login name the way an LMTP recipient does
//! (`alice+tag@example.org` is `alice`), and that user must exist.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use postie_intake::{login_name, Door};
use postie_oauth::{Introspection, OAuthSettings, TokenError, TokenVerifier};
use postie_server::{BearerError, BearerFuture, BearerTokens};
use postie_types::Secret;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OAuthSection {
    issuer: Option<String>,
    audience: Option<String>,
    #[serde(default = "default_user_claim")]
    user_claim: String,
    introspection_url: Option<String>,
    client_id: Option<String>,
    client_secret_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    #[serde(default = "default_clock_skew")]
    clock_skew_secs: u64,
}

fn default_user_claim() -> String {
    "email".into()
}

fn default_clock_skew() -> u64 {
    60
}

/// The token checker `[oauth]` describes. `read_files` false checks the section but reads
/// neither the CA nor the client secret (for the fuzz targets), and builds nothing.
pub(crate) fn bearer_tokens(
    section: &OAuthSection,
    base: &Path,
    file_name: &str,
    read_files: bool,
) -> Result<Option<Arc<dyn BearerTokens>>> {
    let at = format!("{file_name}: [oauth]");
    for (key, url) in [
        ("issuer", &section.issuer),
        ("introspection_url", &section.introspection_url),
    ] {
        if let Some(url) = url {
            if !url.starts_with("https://") {
                bail!("{at} {key} = {url:?}: use the https:// address (tokens are checked only over TLS)");
            }
        }
    }
    if section.user_claim.is_empty() {
        bail!("{at} user_claim is empty: name the claim holding the user, such as \"email\"");
    }
    let introspection = match (&section.introspection_url, &section.client_id, &section.client_secret_file) {
        (None, None, None) => None,
        (Some(url), Some(client_id), Some(secret_file)) => Some((url, client_id, base.join(secret_file))),
        _ => bail!("{at} introspection_url, client_id and client_secret_file go together: set all three for opaque tokens, or none"),
    };
    if introspection.is_none() {
        if section.issuer.is_none() {
            bail!("{at} needs issuer (JWT access tokens, checked with the issuer's published keys) or introspection_url (opaque tokens)");
        }
        if section.audience.is_none() {
            bail!("{at} audience is missing: set it to what this server's tokens name in aud (its client id or resource at the provider)");
        }
    }
    if !read_files {
        return Ok(None);
    }
    let introspection = match introspection {
        None => None,
        Some((url, client_id, secret_file)) => {
            let secret = std::fs::read_to_string(&secret_file).with_context(|| {
                format!("{at} client_secret_file {}: make it readable by postie, holding the client secret", secret_file.display())
            })?;
            Some(Introspection {
                url: url.clone(),
                client_id: client_id.clone(),
                client_secret: Secret::from(secret.trim_end_matches(['\r', '\n']).to_owned()),
            })
        }
    };
    let settings = OAuthSettings {
        issuer: section.issuer.clone(),
        audience: section.audience.clone(),
        user_claim: section.user_claim.clone(),
        introspection,
        ca_file: section.ca_file.as_ref().map(|f| base.join(f)),
        clock_skew: Duration::from_secs(section.clock_skew_secs),
    };
    let verifier = TokenVerifier::new(settings).with_context(|| at.clone())?;
    Ok(Some(Arc::new(OAuthLogins {
        verifier,
        user_claim: section.user_claim.clone(),
    })))
}

#[derive(Debug)]
struct OAuthLogins {
    verifier: TokenVerifier,
    user_claim: String,
}

impl BearerTokens for OAuthLogins {
    fn login_name<'a>(&'a self, token: &'a Secret, authzid: Option<&'a str>) -> BearerFuture<'a> {
        Box::pin(async move {
            let token = std::str::from_utf8(token.expose())
                .map_err(|_| BearerError::Refused("the token is not text".into()))?;
            let claim = self.verifier.verify(token).await.map_err(|e| match e {
                TokenError::Refused(reason) => BearerError::Refused(reason),
                TokenError::Unavailable(reason) => BearerError::Unavailable(reason),
            })?;
            let login = mapped(&claim).ok_or_else(|| {
                BearerError::Refused(format!("its {} {claim:?} names no login", self.user_claim))
            })?;
            if let Some(authzid) = authzid {
                if mapped(authzid).as_deref() != Some(login.as_str()) {
                    return Err(BearerError::Refused(format!(
                        "it is {claim:?}'s token, and the client logs in as {authzid:?}"
                    )));
                }
            }
            Ok(login)
        })
    }

    fn openid_configuration(&self) -> Option<String> {
        self.verifier.openid_configuration()
    }
}

/// The login name of `user@domain`, as LMTP maps a recipient (any domain: the provider vouches
/// for the user, as the MTA in front of LMTP vouches for the address).
fn mapped(name: &str) -> Option<String> {
    login_name(name.as_bytes(), Door::Lmtp, &[]).ok()
}
