//! Where to sign in: the Google and Microsoft presets (endpoints and the scopes their POP3
//! servers want), or any provider by its issuer URL, whose discovery document
//! (`/.well-known/openid-configuration`) names the endpoints.

use std::path::PathBuf;

use super::http::Http;
use super::OAuthError;

/// The `oauth_provider` presets, or `oauth_issuer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OAuthProvider {
    Google,
    Microsoft,
    Issuer(String),
}

impl OAuthProvider {
    /// `oauth_provider = NAME`.
    pub fn preset(name: &str) -> Result<OAuthProvider, String> {
        match name {
            "google" => Ok(OAuthProvider::Google),
            "microsoft" => Ok(OAuthProvider::Microsoft),
            other => Err(format!(
                "oauth_provider = {other:?}: expected \"google\" or \"microsoft\"; for another provider set oauth_issuer = \"https://…\" instead"
            )),
        }
    }

    /// The scopes asked for when the account sets no `oauth_scopes`.
    pub fn default_scopes(&self) -> &'static str {
        match self {
            // Google's one scope for POP3 and IMAP, https://developers.google.com/gmail/imap/xoauth2-protocol
            OAuthProvider::Google => "https://mail.google.com/",
            // https://learn.microsoft.com/exchange/client-developer/legacy-protocols/how-to-authenticate-an-imap-pop-smtp-application-by-using-oauth
            OAuthProvider::Microsoft => {
                "https://outlook.office.com/POP.AccessAsUser.All offline_access"
            }
            OAuthProvider::Issuer(_) => "openid offline_access",
        }
    }

    /// Parameters the authorization request needs beyond the standard ones: Google gives a
    /// refresh token only with offline access asked for, and again only at a consent.
    pub fn authorization_extras(&self) -> &'static [(&'static str, &'static str)] {
        match self {
            OAuthProvider::Google => &[("access_type", "offline"), ("prompt", "consent")],
            _ => &[],
        }
    }
}

/// An account's sign-in settings: `oauth_provider` or `oauth_issuer`, `oauth_client_id`,
/// `oauth_client_secret_file`, `oauth_scopes`, `oauth_token_store_command`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInSettings {
    pub provider: OAuthProvider,
    pub client_id: String,
    pub client_secret_file: Option<PathBuf>,
    pub scopes: Option<String>,
    /// Keeps the refresh token instead of the state folder (a keyring): run with `get`, it
    /// prints the token; with `store`, it takes the token on its standard input.
    pub token_store_command: Option<String>,
}

impl SignInSettings {
    pub fn scopes(&self) -> &str {
        self.scopes
            .as_deref()
            .unwrap_or(self.provider.default_scopes())
    }

    /// The client secret, when the client has one (desktop clients of Google do, though it
    /// is not secret; public clients have none).
    pub fn client_secret(&self) -> Result<Option<String>, OAuthError> {
        let Some(path) = &self.client_secret_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path).map_err(|source| OAuthError::Local {
            what: "read oauth_client_secret_file",
            path: path.clone(),
            source,
        })?;
        let secret = text.lines().next().unwrap_or("").trim().to_owned();
        if secret.is_empty() {
            return Err(OAuthError::Settings(format!(
                "oauth_client_secret_file {}: its first line is empty; put the client secret there",
                path.display()
            )));
        }
        Ok(Some(secret))
    }

    /// The client's credentials as token requests send them (RFC 6749 section 2.3.1's
    /// body form, which public clients and every preset accept).
    pub(crate) fn client_fields(&self) -> Result<Vec<(&'static str, String)>, OAuthError> {
        let mut fields = vec![("client_id", self.client_id.clone())];
        if let Some(secret) = self.client_secret()? {
            fields.push(("client_secret", secret));
        }
        Ok(fields)
    }

    pub(crate) fn endpoints(&self, http: &Http) -> Result<Endpoints, OAuthError> {
        Ok(match &self.provider {
            OAuthProvider::Google => Endpoints {
                authorization: "https://accounts.google.com/o/oauth2/v2/auth".into(),
                token: "https://oauth2.googleapis.com/token".into(),
                device_authorization: Some("https://oauth2.googleapis.com/device/code".into()),
            },
            OAuthProvider::Microsoft => Endpoints {
                authorization: "https://login.microsoftonline.com/common/oauth2/v2.0/authorize"
                    .into(),
                token: "https://login.microsoftonline.com/common/oauth2/v2.0/token".into(),
                device_authorization: Some(
                    "https://login.microsoftonline.com/common/oauth2/v2.0/devicecode".into(),
                ),
            },
            OAuthProvider::Issuer(issuer) => discover(http, issuer)?,
        })
    }
}

/// The endpoints of a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub authorization: String,
    pub token: String,
    pub device_authorization: Option<String>,
}

/// Reads the issuer's discovery document (OpenID Connect Discovery 1.0, RFC 8414).
fn discover(http: &Http, issuer: &str) -> Result<Endpoints, OAuthError> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let what = format!("the discovery document {url}");
    let document = http.get_json(&url, &what)?;
    let bad = |reason: String| OAuthError::BadAnswer {
        what: what.clone(),
        reason,
    };
    let named = |key: &str| {
        document
            .get(key)
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    if named("issuer").as_deref().map(|i| i.trim_end_matches('/'))
        != Some(issuer.trim_end_matches('/'))
    {
        return Err(bad(format!(
            "its issuer is {:?}, not {issuer:?}; check oauth_issuer",
            named("issuer").unwrap_or_default()
        )));
    }
    Ok(Endpoints {
        authorization: named("authorization_endpoint")
            .ok_or_else(|| bad("it names no authorization_endpoint".into()))?,
        token: named("token_endpoint").ok_or_else(|| bad("it names no token_endpoint".into()))?,
        device_authorization: named("device_authorization_endpoint"),
    })
}
