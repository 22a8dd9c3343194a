//! SASL mechanisms, client side (RFC 4422 as POP3 carries it, RFC 5034): each turns the
//! server's challenges into responses. Random nonces come from the caller: no I/O here.

mod oauth;
mod scram;

use postie_types::Secret;
pub use scram::MAX_SCRAM_ITERATIONS;

/// Why a SASL exchange was given up on the client side.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    #[error("the server's SCRAM proof is wrong: it does not know the password, or someone is in between")]
    ServerSignature,
    #[error("the server accepted the login without proving it knows the password (no SCRAM server-final message)")]
    ServerNotVerified,
    #[error("the server's SCRAM message is malformed: {0}")]
    Malformed(&'static str),
    #[error("the server asks for {0} SCRAM iterations, more than the {max} postie computes", max = MAX_SCRAM_ITERATIONS)]
    TooManyIterations(u64),
    #[error("the server refused the SCRAM exchange: {0}")]
    ServerError(String),
    #[error("the server sent a challenge the {0} mechanism does not expect")]
    UnexpectedChallenge(&'static str),
}

/// A client mechanism with its credentials, ready for one exchange.
#[derive(Debug)]
pub struct SaslClient {
    mechanism: Mechanism,
}

#[derive(Debug)]
enum Mechanism {
    Plain(Secret),
    Login {
        user: Secret,
        password: Secret,
        step: u8,
    },
    Scram(Box<scram::ScramClient>),
    OAuth(oauth::OAuthClient),
}

impl SaslClient {
    /// PLAIN (RFC 4616): the password in one message; use it only over TLS.
    pub fn plain(user: &str, password: &Secret) -> SaslClient {
        let mut message = Vec::with_capacity(user.len() + password.expose().len() + 2);
        message.push(0);
        message.extend_from_slice(user.as_bytes());
        message.push(0);
        message.extend_from_slice(password.expose());
        SaslClient {
            mechanism: Mechanism::Plain(Secret::new(message)),
        }
    }

    /// LOGIN (draft-murchison-sasl-login): user name and password as two answers.
    pub fn login(user: &str, password: &Secret) -> SaslClient {
        SaslClient {
            mechanism: Mechanism::Login {
                user: Secret::new(user.as_bytes().to_vec()),
                password: password.clone(),
                step: 0,
            },
        }
    }

    /// SCRAM-SHA-256 (RFC 5802, RFC 7677) without channel binding: the password never
    /// crosses the wire, and the server proves it knows it too. `client_nonce` must be fresh
    /// random printable ASCII without commas (the shell makes it).
    pub fn scram_sha256(user: &str, password: &Secret, client_nonce: &str) -> SaslClient {
        SaslClient {
            mechanism: Mechanism::Scram(Box::new(scram::ScramClient::new(
                user,
                password,
                client_nonce,
            ))),
        }
    }

    /// XOAUTH2 (Google, Microsoft): an OAuth 2.0 bearer token.
    pub fn xoauth2(user: &str, token: &Secret) -> SaslClient {
        SaslClient {
            mechanism: Mechanism::OAuth(oauth::OAuthClient::xoauth2(user, token)),
        }
    }

    /// OAUTHBEARER (RFC 7628): an OAuth 2.0 bearer token with the server's host and port.
    pub fn oauthbearer(user: &str, token: &Secret, host: &str, port: u16) -> SaslClient {
        SaslClient {
            mechanism: Mechanism::OAuth(oauth::OAuthClient::oauthbearer(user, token, host, port)),
        }
    }

    /// The mechanism's name as AUTH sends it.
    pub fn name(&self) -> &'static str {
        match &self.mechanism {
            Mechanism::Plain(_) => "PLAIN",
            Mechanism::Login { .. } => "LOGIN",
            Mechanism::Scram(_) => "SCRAM-SHA-256",
            Mechanism::OAuth(oauth) => oauth.name(),
        }
    }

    /// The client's first message, for mechanisms that speak first.
    pub(crate) fn initial_response(&mut self) -> Option<Secret> {
        match &mut self.mechanism {
            Mechanism::Plain(message) => Some(message.clone()),
            Mechanism::Login { .. } => None,
            Mechanism::Scram(scram) => Some(scram.client_first()),
            Mechanism::OAuth(oauth) => Some(oauth.initial()),
        }
    }

    /// The answer to a server challenge (decoded from base64).
    pub(crate) fn respond(&mut self, challenge: &[u8]) -> Result<Secret, SaslError> {
        match &mut self.mechanism {
            Mechanism::Plain(_) => Err(SaslError::UnexpectedChallenge("PLAIN")),
            Mechanism::Login {
                user,
                password,
                step,
            } => {
                *step += 1;
                match *step {
                    1 => Ok(user.clone()),
                    2 => Ok(password.clone()),
                    _ => Err(SaslError::UnexpectedChallenge("LOGIN")),
                }
            }
            Mechanism::Scram(scram) => scram.respond(challenge),
            Mechanism::OAuth(oauth) => Ok(oauth.respond(challenge)),
        }
    }

    /// Checks, when the server says +OK, that the exchange really completed.
    pub(crate) fn finish(&self) -> Result<(), SaslError> {
        match &self.mechanism {
            Mechanism::Scram(scram) => scram.finish(),
            _ => Ok(()),
        }
    }

    /// What the server explained in an error challenge (OAuth's JSON status), for the user.
    pub fn server_explanation(&self) -> Option<&str> {
        match &self.mechanism {
            Mechanism::OAuth(oauth) => oauth.server_error(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_login() {
        let password = Secret::new(b"pw".to_vec());
        let mut plain = SaslClient::plain("alice", &password);
        assert_eq!(plain.initial_response().unwrap().expose(), b"\0alice\0pw");
        assert!(plain.respond(b"").is_err());
        let mut login = SaslClient::login("alice", &password);
        assert!(login.initial_response().is_none());
        assert_eq!(login.respond(b"Username:").unwrap().expose(), b"alice");
        assert_eq!(login.respond(b"Password:").unwrap().expose(), b"pw");
        assert!(login.respond(b"?").is_err());
    }
}
