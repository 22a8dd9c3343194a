//! The client messages of SASL OAUTHBEARER (RFC 7628) and XOAUTH2 (Google's, also Microsoft's)
//! and the error status the server answers a bad token with, sans-IO. Checking the token is
//! not done here: it takes the network (postie-oauth), so the shell does it.
//!
//! OAUTHBEARER: `n,a=alice@example.org,^Ahost=…^Aport=…^Aauth=Bearer TOKEN^A^A`.
//! XOAUTH2: `user=alice@example.org^Aauth=Bearer TOKEN^A^A`. On a bad token the server sends
//! the error status as a challenge, the client answers with a dummy response (`^A` or
//! nothing), and only then does the server fail the exchange.

use std::fmt;
use std::str::FromStr;

use postie_types::Secret;

/// The two ways a client presents a bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BearerMechanism {
    OAuthBearer,
    XOAuth2,
}

impl BearerMechanism {
    /// The standard one first, the order to advertise them in.
    pub const ALL: [BearerMechanism; 2] = [BearerMechanism::OAuthBearer, BearerMechanism::XOAuth2];

    pub fn as_str(self) -> &'static str {
        match self {
            BearerMechanism::OAuthBearer => "OAUTHBEARER",
            BearerMechanism::XOAuth2 => "XOAUTH2",
        }
    }
}

impl FromStr for BearerMechanism {
    type Err = ();

    /// Case-insensitive, as SASL mechanism names are.
    fn from_str(name: &str) -> Result<Self, ()> {
        BearerMechanism::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(name))
            .ok_or(())
    }
}

impl fmt::Display for BearerMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the client sent: the token, and the user it says it logs in as, if it said.
#[derive(Debug)]
pub struct BearerRequest {
    pub user: Option<String>,
    pub token: Secret,
}

/// A client message that is not what the mechanism defines.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {mechanism} message: {reason}")]
pub struct BearerSyntaxError {
    pub mechanism: BearerMechanism,
    pub reason: &'static str,
}

const KVSEP: u8 = 0x01;

/// Reads a client's message.
pub fn parse_bearer(
    mechanism: BearerMechanism,
    message: &[u8],
) -> Result<BearerRequest, BearerSyntaxError> {
    let error = |reason| BearerSyntaxError { mechanism, reason };
    let body = message
        .strip_suffix(&[KVSEP, KVSEP])
        .ok_or(error("it does not end with two ^A"))?;
    let mut fields = body.split(|&b| b == KVSEP);
    let mut user = match mechanism {
        BearerMechanism::OAuthBearer => {
            gs2_authzid(fields.next().unwrap_or_default()).map_err(error)?
        }
        BearerMechanism::XOAuth2 => None,
    };
    let mut token = None;
    for field in fields {
        let field = std::str::from_utf8(field).map_err(|_| error("a field is not UTF-8"))?;
        let (key, value) = field
            .split_once('=')
            .ok_or(error("a field is not key=value"))?;
        match key {
            "auth" => {
                token = Some(bearer_token(value).ok_or(error("auth is not \"Bearer TOKEN\""))?)
            }
            "user" if mechanism == BearerMechanism::XOAuth2 => user = Some(value.to_owned()),
            // host, port, and extensions that RFC 7628 says to ignore when unknown.
            _ => {}
        }
    }
    Ok(BearerRequest {
        user: user.filter(|u| !u.is_empty()),
        token: Secret::from(
            token
                .ok_or(error("it has no auth=Bearer field"))?
                .to_owned(),
        ),
    })
}

/// RFC 7628's error status: the token was not accepted; where to get a new one.
pub fn bearer_error_status(openid_configuration: Option<&str>) -> Vec<u8> {
    let mut json = String::from(r#"{"status":"invalid_token","schemes":"bearer""#);
    if let Some(url) = openid_configuration {
        json.push_str(r#","openid-configuration":""#);
        for c in url.chars() {
            match c {
                '"' => json.push_str("\\\""),
                '\\' => json.push_str("\\\\"),
                c if c.is_control() => json.push_str(&format!("\\u{:04x}", u32::from(c))),
                c => json.push(c),
            }
        }
        json.push('"');
    }
    json.push('}');
    json.into_bytes()
}

/// The authorization identity of a GS2 header (`n,a=alice,` or `n,,`). Channel binding is
/// refused: postie offers no -PLUS mechanism.
fn gs2_authzid(header: &[u8]) -> Result<Option<String>, &'static str> {
    let header = std::str::from_utf8(header).map_err(|_| "the GS2 header is not UTF-8")?;
    let rest = match header.as_bytes().first() {
        Some(b'n' | b'y') => &header[1..],
        Some(b'p') => return Err("channel binding is not offered"),
        _ => return Err("the GS2 header does not start with n, y or p"),
    };
    let authzid = rest
        .strip_prefix(',')
        .and_then(|r| r.strip_suffix(','))
        .ok_or("the GS2 header is not n,[a=user],")?;
    if authzid.is_empty() {
        return Ok(None);
    }
    let name = authzid
        .strip_prefix("a=")
        .ok_or("the GS2 header's second field is not a=user")?;
    // RFC 5801 saslname: ',' and '=' are written =2C and =3D, and '=' appears in no other way.
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        match rest.get(at..at + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err("the GS2 authzid has a bad =XX escape"),
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Ok(Some(out))
}

/// The token of `Bearer TOKEN` (RFC 6750's b64token; the scheme name in any case).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let body = token.trim_end_matches('=');
    let b64token = |c: char| c.is_ascii_alphanumeric() || "-._~+/".contains(c);
    (!body.is_empty() && body.chars().all(b64token)).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(mechanism: BearerMechanism, message: &[u8]) -> (Option<String>, Vec<u8>) {
        let request = parse_bearer(mechanism, message).unwrap();
        (request.user, request.token.expose().to_vec())
    }

    #[test]
    fn rfc_7628_example() {
        let message = b"n,a=user@example.com,\x01host=server.example.com\x01port=143\x01auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01";
        assert_eq!(
            parse(BearerMechanism::OAuthBearer, message),
            (
                Some("user@example.com".into()),
                b"vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==".to_vec()
            )
        );
    }

    #[test]
    fn no_authzid_and_escapes() {
        let (user, _) = parse(
            BearerMechanism::OAuthBearer,
            b"n,,\x01auth=bearer abc\x01\x01",
        );
        assert_eq!(user, None);
        let (user, _) = parse(
            BearerMechanism::OAuthBearer,
            b"y,a=a=2Cb=3Dc,\x01auth=Bearer abc\x01\x01",
        );
        assert_eq!(user.as_deref(), Some("a,b=c"));
    }

    #[test]
    fn xoauth2() {
        assert_eq!(
            parse(BearerMechanism::XOAuth2, b"user=someuser@example.com\x01auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg\x01\x01"),
            (
                Some("someuser@example.com".into()),
                b"ya29.vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg".to_vec()
            )
        );
    }

    #[test]
    fn malformed_messages_are_refused() {
        for message in [
            &b"n,,\x01auth=Bearer abc\x01"[..],
            b"n,,\x01host=x\x01\x01",
            b"p=tls-unique,,\x01auth=Bearer abc\x01\x01",
            b"n,a=x=41,\x01auth=Bearer abc\x01\x01",
            b"n,,\x01auth=Basic abc\x01\x01",
            b"n,,\x01auth=Bearer a b\x01\x01",
            b"n,,\x01auth=Bearer \x01\x01",
            b"",
        ] {
            assert!(
                parse_bearer(BearerMechanism::OAuthBearer, message).is_err(),
                "{message:?}"
            );
        }
    }

    #[test]
    fn mechanism_names() {
        assert_eq!("oauthbearer".parse(), Ok(BearerMechanism::OAuthBearer));
        assert_eq!("XOAUTH2".parse(), Ok(BearerMechanism::XOAuth2));
        assert_eq!("PLAIN".parse::<BearerMechanism>(), Err(()));
    }

    #[test]
    fn error_status_is_json() {
        assert_eq!(
            bearer_error_status(Some("https://id.example/\"x\"/.well-known/openid-configuration")),
            br#"{"status":"invalid_token","schemes":"bearer","openid-configuration":"https://id.example/\"x\"/.well-known/openid-configuration"}"#.to_vec()
        );
        assert_eq!(
            bearer_error_status(None),
            br#"{"status":"invalid_token","schemes":"bearer"}"#.to_vec()
        );
    }
}
