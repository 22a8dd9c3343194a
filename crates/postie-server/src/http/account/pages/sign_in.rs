//! Signing in (the password, then the second step's code when it is on) and out.

use std::time::Instant;

use axum::extract::{Form, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use serde::Deserialize;
use tracing::info;

use super::{same_token, signed_in_form, CodeForm, Plain, Shared};
use crate::http::account::cookies::{self, SESSION, SIGN_IN};
use crate::http::account::sessions::Stage;
use crate::http::Peer;

#[derive(Deserialize)]
pub(crate) struct SignIn {
    token: String,
    user: String,
    password: String,
}

pub(crate) async fn sign_in(
    State(page): Shared,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    Form(form): Form<SignIn>,
) -> Response {
    let visit = match page.visit(peer, &headers).await {
        Ok(visit) => visit,
        Err(refused) => return refused,
    };
    let transport = visit.transport;
    let expected = cookies::read(&headers, SIGN_IN, transport).unwrap_or_default();
    if !same_token(&form.token, &expected) {
        return page.forged();
    }
    let user = form.user.trim();
    let checked = match page
        .backend
        .check_password(user, form.password.as_bytes())
        .await
    {
        Ok(checked) => checked,
        Err(error) => return page.unavailable(&error),
    };
    // The brake holds right and wrong passwords alike, counted with POP3's.
    if let Err(error) = page
        .brake
        .hold(transport.client, user, checked.is_some())
        .await
    {
        return page.unavailable(&error);
    }
    let Some(checked) = checked else {
        info!(client = %transport.client, user, "account page: sign-in failed");
        return page.sign_in_form(
            transport,
            StatusCode::UNAUTHORIZED,
            Some("The user name or the password is wrong."),
        );
    };
    let stage = match page.backend.has_two_step(&checked.user).await {
        Ok(true) => Stage::AwaitingCode,
        Ok(false) => Stage::SignedIn,
        Err(error) => return page.unavailable(&error),
    };
    info!(client = %transport.client, user = checked.user, ?stage, "account page: password accepted");
    let id = page
        .sessions
        .start(checked.user, checked.stamp, stage, Instant::now());
    let mut response = Redirect::to("/account/").into_response();
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        cookies::set(SESSION, Some(&id), transport),
    );
    headers.append(header::SET_COOKIE, cookies::set(SIGN_IN, None, transport));
    response
}

pub(crate) async fn sign_out(
    State(page): Shared,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    Form(form): Form<Plain>,
) -> Response {
    let (visit, id, _) = match signed_in_form(&page, peer, &headers, &form.csrf).await {
        Ok(signed_in) => signed_in,
        Err(refused) => return refused,
    };
    page.sessions.end(&id);
    let mut response = Redirect::to("/account/").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        cookies::set(SESSION, None, visit.transport),
    );
    response
}

/// The second step of signing in: a code, through the same brake as the password.
pub(crate) async fn second_step(
    State(page): Shared,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    Form(form): Form<CodeForm>,
) -> Response {
    let visit = match page.visit(peer, &headers).await {
        Ok(visit) => visit,
        Err(refused) => return refused,
    };
    let transport = visit.transport;
    let Some((id, session)) = visit
        .session
        .filter(|(_, session)| session.stage == Stage::AwaitingCode)
    else {
        return page.sign_in_form(transport, StatusCode::UNAUTHORIZED, Some("Sign in first."));
    };
    if !same_token(&form.csrf, &session.csrf) {
        return page.forged();
    }
    let user = session.user.as_str();
    let right = match page.backend.take_two_step_code(user, &form.code).await {
        Ok(right) => right,
        Err(error) => return page.unavailable(&error),
    };
    if let Err(error) = page.brake.hold(transport.client, user, right).await {
        return page.unavailable(&error);
    }
    if !right {
        info!(client = %transport.client, user, "account page: second step failed");
        return page.code_form(
            &session,
            StatusCode::UNAUTHORIZED,
            Some("The code is wrong."),
        );
    }
    info!(client = %transport.client, user, "account page: signed in");
    // A new id once signed in: one learnt half-way is worth nothing.
    page.sessions.end(&id);
    let id = page.sessions.start(
        session.user.clone(),
        session.stamp,
        Stage::SignedIn,
        Instant::now(),
    );
    let mut response = Redirect::to("/account/").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        cookies::set(SESSION, Some(&id), transport),
    );
    response
}
