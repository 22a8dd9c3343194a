//! PLAIN (RFC 4616): one message, `[authzid] NUL authcid NUL passwd`.

use super::{outcome, SaslStep};
use crate::{AuthError, Authenticator, UserDb};

#[derive(Default)]
pub(super) struct Plain {
    challenged: bool,
}

impl Plain {
    pub(super) fn step<U: UserDb>(
        &mut self,
        auth: &Authenticator<U>,
        input: Option<&[u8]>,
        claimed: &mut Option<String>,
    ) -> Result<SaslStep, AuthError> {
        match input {
            // No initial response: an empty challenge asks for the message.
            None if !self.challenged => {
                self.challenged = true;
                Ok(SaslStep::Challenge(Vec::new()))
            }
            None => Ok(SaslStep::Rejected),
            Some(message) => verify(auth, message, claimed),
        }
    }
}

fn verify<U: UserDb>(
    auth: &Authenticator<U>,
    message: &[u8],
    claimed: &mut Option<String>,
) -> Result<SaslStep, AuthError> {
    let mut parts = message.split(|&b| b == 0);
    let (Some(authzid), Some(authcid), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Ok(SaslStep::Rejected);
    };
    let Ok(authcid) = std::str::from_utf8(authcid) else {
        return Ok(SaslStep::Rejected);
    };
    *claimed = Some(authcid.to_owned());
    // postie has no proxy authorization: one may only act as oneself.
    if authcid.is_empty() || !(authzid.is_empty() || authzid == authcid.as_bytes()) {
        return Ok(SaslStep::Rejected);
    }
    auth.verify_password(authcid, password).map(outcome)
}
