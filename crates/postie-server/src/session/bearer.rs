//! OAUTHBEARER and XOAUTH2 logins: the token is checked by the configured
//! [`BearerTokens`](crate::BearerTokens) (over the network, so here in the shell rather than
//! in postie-auth's blocking SASL exchanges) and its user must exist in the user database.
//! A refused token is counted by the brake like a wrong password, then answered with RFC
//! 7628's error status as a challenge; the client's dummy response gets `-ERR [AUTH]`.

use std::sync::Arc;

use postie_auth::{bearer_error_status, parse_bearer, AuthError, BearerMechanism, UserDb, Verdict};
use postie_proto::ErrorKind;
use postie_store::MailStore;
use tracing::info;

use super::{blocking, Session};
use crate::bearer_tokens::BearerError;

/// Where a bearer exchange stands between two client lines.
pub(super) enum BearerWait {
    /// `AUTH OAUTHBEARER` came without an initial response: the message comes next.
    Message(BearerMechanism),
    /// The error status was sent: any response ends the exchange with `-ERR [AUTH]`.
    Dummy,
}

/// Whether a SASL mechanism name is one of the bearer mechanisms (the core has already
/// refused those not offered).
pub(super) fn named(mechanism: &str) -> bool {
    mechanism.parse::<BearerMechanism>().is_ok()
}

impl<S: MailStore, U: UserDb> Session<S, U> {
    pub(super) async fn bearer_start(&mut self, mechanism: &str, initial: Option<Vec<u8>>) {
        let Ok(mechanism) = mechanism.parse::<BearerMechanism>() else {
            self.answer(|core| core.login_rejected(ErrorKind::Permanent));
            return;
        };
        self.mechanism = mechanism.as_str();
        match initial {
            Some(message) => self.bearer_check(mechanism, message).await,
            None => {
                self.bearer = Some(BearerWait::Message(mechanism));
                self.answer(|core| core.sasl_challenge(b""));
            }
        }
    }

    pub(super) async fn bearer_response(&mut self, response: Vec<u8>) {
        match self.bearer.take() {
            Some(BearerWait::Message(mechanism)) => self.bearer_check(mechanism, response).await,
            // Counted when the token was refused; this only ends the exchange.
            Some(BearerWait::Dummy) | None => {
                self.answer(|core| core.login_rejected(ErrorKind::BadCredentials));
            }
        }
    }

    async fn bearer_check(&mut self, mechanism: BearerMechanism, message: Vec<u8>) {
        let Some(tokens) = self.shared.config.bearer_tokens.clone() else {
            self.answer(|core| core.login_rejected(ErrorKind::Permanent));
            return;
        };
        let request = match parse_bearer(mechanism, &message) {
            Ok(request) => request,
            Err(error) => {
                info!(peer = %self.peer, %error, "bearer token login refused");
                return self.finish_login(Ok(Verdict::Rejected), None).await;
            }
        };
        let claimed = request.user.clone();
        let login = tokens
            .login_name(&request.token, request.user.as_deref())
            .await;
        let login = match login {
            Ok(login) => login,
            Err(BearerError::Refused(reason)) => {
                return self.bearer_refused(&tokens, &reason, claimed).await;
            }
            Err(BearerError::Unavailable(reason)) => {
                let error = AuthError::TokenCheck(reason);
                return self.finish_login(Err(error), claimed).await;
            }
        };
        let auth = Arc::clone(&self.shared.auth);
        let name = login.clone();
        let record = blocking(move || auth.db().lookup(&name)).await;
        match record {
            Ok(Some(record)) => {
                let verdict = Verdict::Accepted {
                    user: record.name,
                    app_password: None,
                };
                self.finish_login(Ok(verdict), Some(login)).await
            }
            Ok(None) => {
                let reason = format!("its user {login:?} is not a user here");
                self.bearer_refused(&tokens, &reason, Some(login)).await
            }
            Err(error) => self.finish_login(Err(error), Some(login)).await,
        }
    }

    async fn bearer_refused(
        &mut self,
        tokens: &Arc<dyn crate::BearerTokens>,
        reason: &str,
        claimed: Option<String>,
    ) {
        info!(peer = %self.peer, mechanism = self.mechanism, reason, "bearer token refused");
        self.bearer_status = Some(bearer_error_status(
            tokens.openid_configuration().as_deref(),
        ));
        self.finish_login(Ok(Verdict::Rejected), claimed).await
    }

    /// A rejected login's answer, after the brake: a refused token's error status (the
    /// client's dummy response then gets `-ERR [AUTH]`), else `-ERR [AUTH]` at once.
    pub(super) fn answer_rejected(&mut self) {
        match self.bearer_status.take() {
            Some(status) => {
                self.bearer = Some(BearerWait::Dummy);
                self.answer(|core| core.sasl_challenge(&status));
            }
            None => {
                self.answer(|core| core.login_rejected(ErrorKind::BadCredentials));
            }
        }
    }
}
