//! Turning two-step sign-in on (a secret shown, confirmed by a first code) and off.

use std::time::SystemTime;

use axum::extract::{Form, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Extension;
use postie_auth::{new_recovery_codes, recovery_digest, TotpSecret, TwoStep};
use tracing::info;

use super::{signed_in_form, CodeForm, Plain, Said, Shared};
use crate::http::Peer;

/// Shows a new secret to scan; nothing is stored until a code confirms it.
pub(crate) async fn start_two_step(
    State(page): Shared,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    Form(form): Form<Plain>,
) -> Response {
    let (_, id, mut session) = match signed_in_form(&page, peer, &headers, &form.csrf).await {
        Ok(signed_in) => signed_in,
        Err(refused) => return refused,
    };
    let secret = TotpSecret::generate();
    page.sessions
        .update(&id, |stored| stored.enrolling = Some(secret.clone()));
    session.enrolling = Some(secret);
    page.account(&session, Said::Nothing).await
}

/// Turns the second step on once a code from the app matches the secret shown.
pub(crate) async fn confirm_two_step(
    State(page): Shared,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    Form(form): Form<CodeForm>,
) -> Response {
    let (_, id, mut session) = match signed_in_form(&page, peer, &headers, &form.csrf).await {
        Ok(signed_in) => signed_in,
        Err(refused) => return refused,
    };
    let Some(secret) = session.enrolling.clone() else {
        return page
            .account(
                &session,
                Said::Problem("Set up two-step sign-in first.".into()),
            )
            .await;
    };
    let Some(step) = secret.matching_step(&form.code, SystemTime::now(), None) else {
        return page
            .account(
                &session,
                Said::Problem("That code does not match: try the next one the app shows.".into()),
            )
            .await;
    };
    let codes = new_recovery_codes();
    let two_step = TwoStep {
        secret,
        used_step: Some(step),
        recovery: codes.iter().map(|code| recovery_digest(code)).collect(),
    };
    if let Err(error) = page
        .backend
        .set_two_step(&session.user, Some(two_step))
        .await
    {
        return page.unavailable(&error);
    }
    page.sessions.update(&id, |stored| stored.enrolling = None);
    info!(
        user = session.user,
        "account page: two-step sign-in turned on"
    );
    session.enrolling = None;
    page.account(&session, Said::RecoveryCodes(codes)).await
}

pub(crate) async fn turn_off_two_step(
    State(page): Shared,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    Form(form): Form<Plain>,
) -> Response {
    let (_, _, session) = match signed_in_form(&page, peer, &headers, &form.csrf).await {
        Ok(signed_in) => signed_in,
        Err(refused) => return refused,
    };
    if let Err(error) = page.backend.set_two_step(&session.user, None).await {
        return page.unavailable(&error);
    }
    info!(
        user = session.user,
        "account page: two-step sign-in turned off"
    );
    page.account(
        &session,
        Said::Notice("Two-step sign-in is off; POP3 takes your account password again.".into()),
    )
    .await
}
