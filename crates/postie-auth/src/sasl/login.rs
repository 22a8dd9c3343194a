//! LOGIN (draft-murchison-sasl-login): "Username:" then "Password:", each answered in turn.

use super::{outcome, SaslStep};
use crate::{AuthError, Authenticator, UserDb};

#[derive(Default)]
pub(super) enum Login {
    #[default]
    Start,
    AwaitingUser,
    AwaitingPassword(String),
}

impl Login {
    pub(super) fn step<U: UserDb>(
        &mut self,
        auth: &Authenticator<U>,
        input: Option<&[u8]>,
        claimed: &mut Option<String>,
    ) -> Result<SaslStep, AuthError> {
        match (std::mem::take(self), input) {
            (Login::Start, None) => {
                *self = Login::AwaitingUser;
                Ok(SaslStep::Challenge(b"Username:".to_vec()))
            }
            // Some clients send the user name as an initial response.
            (Login::Start | Login::AwaitingUser, Some(user)) => match std::str::from_utf8(user) {
                Ok(user) if !user.is_empty() => {
                    *claimed = Some(user.to_string());
                    *self = Login::AwaitingPassword(user.to_string());
                    Ok(SaslStep::Challenge(b"Password:".to_vec()))
                }
                _ => Ok(SaslStep::Rejected),
            },
            (Login::AwaitingPassword(user), Some(password)) => {
                auth.verify_password(&user, password).map(outcome)
            }
            (Login::AwaitingUser | Login::AwaitingPassword(_), None) => Ok(SaslStep::Rejected),
        }
    }
}
