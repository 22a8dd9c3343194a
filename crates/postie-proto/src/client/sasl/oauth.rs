//! XOAUTH2 and OAUTHBEARER (RFC 7628): a bearer token in one message. On failure the server
//! sends its reason as a JSON challenge, which the client acknowledges before the `-ERR`.

use postie_types::Secret;

#[derive(Debug)]
pub(super) struct OAuthClient {
    bearer: bool,
    message: Secret,
    error: Option<String>,
}

impl OAuthClient {
    pub(super) fn xoauth2(user: &str, token: &Secret) -> OAuthClient {
        let mut message = format!("user={user}\x01auth=Bearer ").into_bytes();
        message.extend_from_slice(token.expose());
        message.extend_from_slice(b"\x01\x01");
        OAuthClient {
            bearer: false,
            message: Secret::new(message),
            error: None,
        }
    }

    pub(super) fn oauthbearer(user: &str, token: &Secret, host: &str, port: u16) -> OAuthClient {
        // The authzid is a SASL name: ',' and '=' escaped as in RFC 5801.
        let user = user.replace('=', "=3D").replace(',', "=2C");
        let mut message =
            format!("n,a={user},\x01host={host}\x01port={port}\x01auth=Bearer ").into_bytes();
        message.extend_from_slice(token.expose());
        message.extend_from_slice(b"\x01\x01");
        OAuthClient {
            bearer: true,
            message: Secret::new(message),
            error: None,
        }
    }

    pub(super) fn name(&self) -> &'static str {
        if self.bearer {
            "OAUTHBEARER"
        } else {
            "XOAUTH2"
        }
    }

    pub(super) fn initial(&self) -> Secret {
        self.message.clone()
    }

    /// An empty challenge asks for the token (the two-step form Microsoft 365 uses); any
    /// other is the server's error report, answered as the mechanism says so the server can
    /// send its final `-ERR`.
    pub(super) fn respond(&mut self, challenge: &[u8]) -> Secret {
        if challenge.is_empty() && self.error.is_none() {
            return self.message.clone();
        }
        self.error = Some(String::from_utf8_lossy(challenge).into_owned());
        Secret::new(if self.bearer {
            b"\x01".to_vec()
        } else {
            Vec::new()
        })
    }

    pub(super) fn server_error(&self) -> Option<&str> {
        self.error.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_error_challenges() {
        let token = Secret::new(b"ya29.token".to_vec());
        let mut xoauth2 = OAuthClient::xoauth2("a@b.c", &token);
        assert_eq!(
            xoauth2.initial().expose(),
            b"user=a@b.c\x01auth=Bearer ya29.token\x01\x01"
        );
        assert_eq!(xoauth2.respond(b"").expose(), xoauth2.initial().expose());
        assert_eq!(xoauth2.respond(b"{\"status\":\"401\"}").expose(), b"");
        assert_eq!(xoauth2.server_error(), Some("{\"status\":\"401\"}"));
        let mut bearer = OAuthClient::oauthbearer("a,b", &token, "pop.example", 995);
        assert_eq!(
            bearer.initial().expose(),
            b"n,a=a=2Cb,\x01host=pop.example\x01port=995\x01auth=Bearer ya29.token\x01\x01"
        );
        assert_eq!(bearer.respond(b"{}").expose(), b"\x01");
    }
}
