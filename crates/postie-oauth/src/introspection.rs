//! Opaque tokens, asked about at the provider's RFC 7662 introspection endpoint.

use std::time::{SystemTime, UNIX_EPOCH};

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde_json::{Map, Value};

use crate::{http, Introspection, OAuthSettings, TokenError};

/// The introspection answer for `token`, when it is active and good for this server.
pub(crate) async fn check(
    client: &reqwest::Client,
    endpoint: &Introspection,
    settings: &OAuthSettings,
    token: &str,
) -> Result<Map<String, Value>, TokenError> {
    // RFC 6749 section 2.3.1: the client id and secret are form-encoded inside Basic.
    let secret = String::from_utf8_lossy(endpoint.client_secret.expose());
    let request = client
        .post(&endpoint.url)
        .basic_auth(form_encode(&endpoint.client_id), Some(form_encode(&secret)))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(ACCEPT, "application/json")
        .body(format!(
            "token={}&token_type_hint=access_token",
            form_encode(token)
        ));
    let answer = http::json(request, &format!("introspection at {}", endpoint.url)).await?;
    let Value::Object(claims) = answer else {
        return Err(TokenError::Unavailable(format!(
            "introspection at {} answered no JSON object",
            endpoint.url
        )));
    };
    if claims.get("active") != Some(&Value::Bool(true)) {
        return Err(TokenError::Refused(
            "the provider says it is not active (expired, revoked or unknown)".into(),
        ));
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let skew = settings.clock_skew.as_secs();
    let time = |name: &str| claims.get(name).and_then(Value::as_u64);
    if time("exp").is_some_and(|exp| exp.saturating_add(skew) < now) {
        return Err(TokenError::Refused("it has expired".into()));
    }
    if time("nbf").is_some_and(|nbf| nbf > now.saturating_add(skew)) {
        return Err(TokenError::Refused("it is not valid yet (nbf)".into()));
    }
    if let (Some(issuer), Some(named)) = (&settings.issuer, claims.get("iss")) {
        if named.as_str() != Some(issuer.as_str()) {
            return Err(TokenError::Refused(
                "it was issued by another issuer".into(),
            ));
        }
    }
    if let Some(audience) = &settings.audience {
        let ours = match claims.get("aud") {
            Some(Value::String(aud)) => aud == audience,
            Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(audience)),
            _ => false,
        };
        if !ours {
            return Err(TokenError::Refused("it is for another audience".into()));
        }
    }
    Ok(claims)
}

/// `application/x-www-form-urlencoded`: everything but RFC 3986's unreserved characters
/// percent-encoded.
fn form_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn form_encoding() {
        assert_eq!(super::form_encode("a-b_c.d~e"), "a-b_c.d~e");
        assert_eq!(super::form_encode("a b+c/="), "a%20b%2Bc%2F%3D");
    }
}
