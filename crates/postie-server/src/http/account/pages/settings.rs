//! The settings sections' forms: POP download, app passwords, "test the login".

use std::time::SystemTime;

use axum::extract::{Form, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Extension;
use postie_store::PopSettings;
use serde::Deserialize;
use tracing::info;

use super::{signed_in_form, Said, Shared, AFTER_CHOICES};
use crate::http::account::backend::{AccountError, Pop3LoginCheck};
use crate::http::Peer;

#[derive(Deserialize)]
pub(crate) struct PopForm {
    csrf: String,
    window: String,
    after_retrieval: String,
}

pub(crate) async fn save_pop_settings(
    State(page): Shared,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    Form(form): Form<PopForm>,
) -> Response {
    let (_, _, session) = match signed_in_form(&page, peer, &headers, &form.csrf).await {
        Ok(signed_in) => signed_in,
        Err(refused) => return refused,
    };
    let user = session.user.as_str();
    let mut settings = match page.backend.pop_settings(user).await {
        Ok(settings) => settings,
        Err(error) => return page.unavailable(&error),
    };
    let Some((_, after, _)) = AFTER_CHOICES
        .iter()
        .find(|(v, _, _)| *v == form.after_retrieval)
    else {
        return page
            .account(
                &session,
                Said::Problem("Choose what happens to downloaded mail.".into()),
            )
            .await;
    };
    settings = PopSettings {
        since: match form.window.as_str() {
            "all" => None,
            "from-now-on" => Some(SystemTime::now()),
            "keep" => settings.since,
            _ => {
                return page
                    .account(
                        &session,
                        Said::Problem("Choose which mail POP3 lists.".into()),
                    )
                    .await
            }
        },
        after_retrieval: *after,
    };
    if let Err(error) = page.backend.set_pop_settings(user, settings).await {
        return page.unavailable(&error);
    }
    info!(user, "account page: POP settings saved");
    page.account(
        &session,
        Said::Notice("Your POP settings are saved.".into()),
    )
    .await
}

#[derive(Deserialize)]
pub(crate) struct LabelForm {
    csrf: String,
    label: String,
}

pub(crate) async fn add_app_password(
    State(page): Shared,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    Form(form): Form<LabelForm>,
) -> Response {
    let (_, _, session) = match signed_in_form(&page, peer, &headers, &form.csrf).await {
        Ok(signed_in) => signed_in,
        Err(refused) => return refused,
    };
    let label = form.label.trim();
    match page.backend.add_app_password(&session.user, label).await {
        Ok(password) => {
            info!(
                user = session.user,
                app_password = label,
                "account page: app password created"
            );
            page.account(&session, Said::NewAppPassword { label, password })
                .await
        }
        Err(AccountError::Refused(why)) => page.account(&session, Said::Problem(why)).await,
        Err(error) => page.unavailable(&error),
    }
}

pub(crate) async fn revoke_app_password(
    State(page): Shared,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    Form(form): Form<LabelForm>,
) -> Response {
    let (_, _, session) = match signed_in_form(&page, peer, &headers, &form.csrf).await {
        Ok(signed_in) => signed_in,
        Err(refused) => return refused,
    };
    match page
        .backend
        .revoke_app_password(&session.user, &form.label)
        .await
    {
        Ok(()) => {
            info!(
                user = session.user,
                app_password = form.label,
                "account page: app password revoked"
            );
            page.account(
                &session,
                Said::Notice("The app password is revoked.".into()),
            )
            .await
        }
        Err(AccountError::Refused(why)) => page.account(&session, Said::Problem(why)).await,
        Err(error) => page.unavailable(&error),
    }
}

#[derive(Deserialize)]
pub(crate) struct PasswordForm {
    csrf: String,
    password: String,
}

/// "Test the login": what POP3 would answer the password a mail client is given, through
/// the same Authenticator and the same brake (a wrong one counts as a failure).
pub(crate) async fn test_login(
    State(page): Shared,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    Form(form): Form<PasswordForm>,
) -> Response {
    let (visit, _, session) = match signed_in_form(&page, peer, &headers, &form.csrf).await {
        Ok(signed_in) => signed_in,
        Err(refused) => return refused,
    };
    let user = session.user.as_str();
    let check = match page
        .backend
        .check_pop3_login(user, form.password.as_bytes())
        .await
    {
        Ok(check) => check,
        Err(error) => return page.unavailable(&error),
    };
    let accepted = matches!(check, Pop3LoginCheck::Accepted { .. });
    if let Err(error) = page
        .brake
        .hold(visit.transport.client, user, accepted)
        .await
    {
        return page.unavailable(&error);
    }
    let said = match check {
        Pop3LoginCheck::Accepted {
            app_password: Some(label),
        } => Said::Notice(format!(
            "POP3 accepts this password: it is your app password \u{201c}{label}\u{201d}."
        )),
        Pop3LoginCheck::Accepted { app_password: None } => {
            Said::Notice("POP3 accepts this password: it is your account password.".into())
        }
        Pop3LoginCheck::AppPasswordRequired => Said::Problem(
            "This is your account password, but POP3 takes app passwords only: make one above."
                .into(),
        ),
        Pop3LoginCheck::Rejected => {
            Said::Problem("POP3 would refuse this password: it is none of yours.".into())
        }
    };
    page.account(&session, said).await
}
