//! SASL server mechanisms as sans-IO exchanges: the server feeds in decoded client responses
//! and sends out what comes back (base64 encoding is the protocol layer's business).

mod login;
mod plain;
mod scram;

use std::fmt;
use std::str::FromStr;

use crate::{AuthError, Authenticator, UserDb};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mechanism {
    Plain,
    Login,
    ScramSha256,
}

impl Mechanism {
    /// Strongest first, the order to advertise them in.
    pub const ALL: [Mechanism; 3] = [Mechanism::ScramSha256, Mechanism::Plain, Mechanism::Login];

    pub fn as_str(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
        }
    }
}

impl FromStr for Mechanism {
    type Err = AuthError;

    /// Case-insensitive: SASL mechanism names are, per RFC 4422.
    fn from_str(name: &str) -> Result<Self, AuthError> {
        Mechanism::ALL
            .into_iter()
            .find(|mechanism| mechanism.as_str().eq_ignore_ascii_case(name))
            .ok_or_else(|| AuthError::UnknownMechanism(name.to_string()))
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What to do after a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaslStep {
    /// Send this challenge (possibly empty) and feed the client's answer to the next step.
    Challenge(Vec<u8>),
    /// As [`Verdict::Accepted`](crate::Verdict::Accepted).
    Accepted {
        user: String,
        app_password: Option<String>,
    },
    /// As [`Verdict::AppPasswordRequired`](crate::Verdict::AppPasswordRequired).
    AppPasswordRequired {
        user: String,
    },
    Rejected,
}

/// One authentication exchange. Once it has answered `Accepted` or `Rejected` (or an error),
/// every further step is `Rejected`.
pub struct SaslExchange {
    mechanism: Mechanism,
    state: State,
    /// The user name the client gave, once it has: failed logins are counted per user too.
    claimed_user: Option<String>,
}

enum State {
    Plain(plain::Plain),
    Login(login::Login),
    Scram(scram::Scram),
    Finished,
}

impl SaslExchange {
    pub fn new(mechanism: Mechanism) -> Self {
        let state = match mechanism {
            Mechanism::Plain => State::Plain(plain::Plain::default()),
            Mechanism::Login => State::Login(login::Login::default()),
            Mechanism::ScramSha256 => State::Scram(scram::Scram::new(None)),
        };
        SaslExchange {
            mechanism,
            state,
            claimed_user: None,
        }
    }

    /// Fixes the SCRAM server nonce instead of drawing a random one, for reproducing known
    /// exchanges (RFC 7677's example) in tests. Other mechanisms have no nonce and ignore it.
    pub fn with_server_nonce(mut self, nonce: &str) -> Result<Self, AuthError> {
        let printable_without_comma = |b: u8| (0x21..=0x7e).contains(&b) && b != b',';
        if nonce.is_empty() || !nonce.bytes().all(printable_without_comma) {
            return Err(AuthError::InvalidNonce);
        }
        if let State::Scram(scram) = &mut self.state {
            *scram = scram::Scram::new(Some(nonce.to_string()));
        }
        Ok(self)
    }

    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// The user name the client has given so far, whether or not it exists or is accepted.
    pub fn claimed_user(&self) -> Option<&str> {
        self.claimed_user.as_deref()
    }

    /// Advances the exchange. `input` is the decoded client response, `None` when the client
    /// gave no initial response. Errors come only from the user database.
    pub fn step<U: UserDb>(
        &mut self,
        auth: &Authenticator<U>,
        input: Option<&[u8]>,
    ) -> Result<SaslStep, AuthError> {
        let result = match &mut self.state {
            State::Plain(plain) => plain.step(auth, input, &mut self.claimed_user),
            State::Login(login) => login.step(auth, input, &mut self.claimed_user),
            State::Scram(scram) => scram.step(auth, input, &mut self.claimed_user),
            State::Finished => Ok(SaslStep::Rejected),
        };
        if !matches!(result, Ok(SaslStep::Challenge(_))) {
            self.state = State::Finished;
        }
        result
    }
}

impl fmt::Debug for SaslExchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaslExchange")
            .field("mechanism", &self.mechanism)
            .field("finished", &matches!(self.state, State::Finished))
            .finish()
    }
}

/// Converts a password-check verdict into the SASL outcome.
fn outcome(verdict: crate::Verdict) -> SaslStep {
    match verdict {
        crate::Verdict::Accepted { user, app_password } => {
            SaslStep::Accepted { user, app_password }
        }
        crate::Verdict::AppPasswordRequired { user } => SaslStep::AppPasswordRequired { user },
        crate::Verdict::Rejected => SaslStep::Rejected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mechanism_names() {
        for mechanism in Mechanism::ALL {
            assert_eq!(mechanism.as_str().parse::<Mechanism>().unwrap(), mechanism);
        }
        assert_eq!(
            "scram-sha-256".parse::<Mechanism>().unwrap(),
            Mechanism::ScramSha256
        );
        assert_eq!("login".parse::<Mechanism>().unwrap(), Mechanism::Login);
        assert!("CRAM-MD5".parse::<Mechanism>().is_err());
    }

    #[test]
    fn nonce_must_be_printable_without_commas() {
        for bad in ["", "a,b", "a b", "é"] {
            assert!(SaslExchange::new(Mechanism::ScramSha256)
                .with_server_nonce(bad)
                .is_err());
        }
    }
}
