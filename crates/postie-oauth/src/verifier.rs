use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{decode, decode_header, Algorithm, Validation};
use serde_json::{Map, Value};

use crate::jwks::KeySource;
use crate::{http, introspection, OAuthError, OAuthSettings, TokenError};

/// Checks bearer tokens for one `[oauth]` configuration. Cheap to build (nothing is fetched
/// until the first token); shared by every session.
pub struct TokenVerifier {
    client: reqwest::Client,
    settings: OAuthSettings,
    keys: Option<KeySource>,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl TokenVerifier {
    pub fn new(settings: OAuthSettings) -> Result<Self, OAuthError> {
        let client = http::client(settings.ca_file.as_deref())?;
        let keys = match (&settings.introspection, &settings.issuer) {
            (None, Some(issuer)) => Some(KeySource::new(issuer.clone())),
            _ => None,
        };
        Ok(TokenVerifier {
            client,
            settings,
            keys,
        })
    }

    /// The discovery document a client should get a new token from, named in RFC 7628's
    /// error status.
    pub fn openid_configuration(&self) -> Option<String> {
        let issuer = self.settings.issuer.as_deref()?;
        Some(format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        ))
    }

    /// The value of the user claim of a token good for this server.
    pub async fn verify(&self, token: &str) -> Result<String, TokenError> {
        let claims = match (&self.settings.introspection, &self.keys) {
            (Some(endpoint), _) => {
                introspection::check(&self.client, endpoint, &self.settings, token).await?
            }
            (None, Some(keys)) => self.check_jwt(keys, token).await?,
            (None, None) => {
                return Err(TokenError::Unavailable(
                    "[oauth] names neither issuer nor introspection_url".into(),
                ))
            }
        };
        let claim = &self.settings.user_claim;
        match claims.get(claim) {
            Some(Value::String(user)) if !user.is_empty() => Ok(user.clone()),
            _ => Err(TokenError::Refused(format!(
                "it has no {claim:?} claim naming the user"
            ))),
        }
    }

    async fn check_jwt(
        &self,
        keys: &KeySource,
        token: &str,
    ) -> Result<Map<String, Value>, TokenError> {
        let header = decode_header(token)
            .map_err(|e| TokenError::Refused(format!("it is not a signed JWT ({e})")))?;
        if !asymmetric(header.alg) {
            return Err(TokenError::Refused(format!(
                "it is signed with {:?}, not a public-key algorithm",
                header.alg
            )));
        }
        let key = keys.key(&self.client, header.kid.as_deref()).await?;
        if key.algorithm.is_some_and(|alg| alg != header.alg) {
            return Err(TokenError::Refused(format!(
                "its algorithm {:?} is not the one its key is for",
                header.alg
            )));
        }
        let mut validation = Validation::new(header.alg);
        if let Some(issuer) = &self.settings.issuer {
            validation.set_issuer(&[issuer]);
        }
        if let Some(audience) = &self.settings.audience {
            validation.set_audience(&[audience]);
        }
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = self.settings.clock_skew.as_secs();
        decode::<Map<String, Value>>(token, &key.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|error| TokenError::Refused(refusal(error.kind())))
    }
}

/// Algorithms whose verification key is public. HMAC keys would be secrets shared with the
/// provider, and accepting HS256 with a public key as the secret is the classic forgery.
pub(crate) fn asymmetric(alg: Algorithm) -> bool {
    !matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

fn refusal(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::ExpiredSignature => "it has expired".into(),
        ErrorKind::ImmatureSignature => "it is not valid yet (nbf)".into(),
        ErrorKind::InvalidAudience => "it is for another audience".into(),
        ErrorKind::InvalidIssuer => "it was issued by another issuer".into(),
        ErrorKind::InvalidSignature => "its signature does not verify".into(),
        ErrorKind::MissingRequiredClaim(claim) => format!("it lacks the {claim:?} claim"),
        other => format!("it cannot be checked: {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Refused before any key is fetched: the issuer here does not exist.
    fn verifier() -> TokenVerifier {
        let ca = tempfile::NamedTempFile::new().unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        std::fs::write(ca.path(), cert.cert.pem()).unwrap();
        TokenVerifier::new(OAuthSettings {
            issuer: Some("https://issuer.invalid".into()),
            audience: Some("postie".into()),
            user_claim: "email".into(),
            introspection: None,
            ca_file: Some(ca.path().to_owned()),
            clock_skew: Duration::from_secs(60),
        })
        .unwrap()
    }

    #[tokio::test]
    async fn hmac_and_unsigned_tokens_are_refused_without_asking_the_issuer() {
        let claims = serde_json::json!({"iss": "https://issuer.invalid", "aud": "postie",
            "exp": 4_000_000_000u64, "email": "alice@example.org"});
        let hs256 = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(b"the issuer's public key, as a secret"),
        )
        .unwrap();
        let refused = verifier().verify(&hs256).await;
        assert!(
            matches!(refused, Err(TokenError::Refused(ref r)) if r.contains("HS256")),
            "{refused:?}"
        );

        // {"alg":"none"} with the same claims and no signature.
        let unsigned = format!("eyJhbGciOiJub25lIn0.{}.", hs256.split('.').nth(1).unwrap());
        let refused = verifier().verify(&unsigned).await;
        assert!(
            matches!(refused, Err(TokenError::Refused(_))),
            "{refused:?}"
        );
    }
}
