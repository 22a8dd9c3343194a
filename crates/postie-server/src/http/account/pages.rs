//! The page's handlers. Every POST but sign-in carries the session's synchronizer token
//! (`csrf`); sign-in carries the token of its own cookie. A request that may not see the
//! page (`transport`) gets 403 before anything else is read.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::extract::{Form, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use minijinja::{context, Value};
use postie_store::{AfterRetrieval, PopSettings};
use serde::Deserialize;
use subtle::ConstantTimeEq;
use tracing::{info, warn};

use super::backend::AccountError;
use super::cookies::{self, SESSION, SIGN_IN};
use super::sessions::{random_token, Session};
use super::transport::{self, Refusal, Transport};
use super::{dates, Page};
use crate::http::settings::{Security, UsernameForm};
use crate::http::Peer;

type Shared = State<Arc<Page>>;

/// A request allowed to see the page, with its session if it has a live one.
struct Visit {
    transport: Transport,
    session: Option<(String, Session)>,
}

impl Page {
    /// Who is asking, or the answer refusing them.
    async fn visit(&self, peer: Peer, headers: &HeaderMap) -> Result<Visit, Response> {
        let transport = match transport::judge(peer.0, headers, &self.trusted_proxies) {
            Ok(transport) => transport,
            Err(refusal) => return Err(self.refused(refusal)),
        };
        let Some(id) = cookies::read(headers, SESSION, transport) else {
            return Ok(Visit {
                transport,
                session: None,
            });
        };
        let Some(session) = self.sessions.touch(&id, Instant::now()) else {
            return Ok(Visit {
                transport,
                session: None,
            });
        };
        // A password changed since sign-in (or a user removed) ends every session of it.
        match self.backend.password_stamp(&session.user).await {
            Ok(Some(stamp)) if stamp == session.stamp => Ok(Visit {
                transport,
                session: Some((id, session)),
            }),
            Ok(_) => {
                self.sessions.end_user(&session.user);
                Ok(Visit {
                    transport,
                    session: None,
                })
            }
            Err(error) => Err(self.unavailable(&error)),
        }
    }

    fn render(&self, status: StatusCode, name: &str, values: Value) -> Response {
        match self
            .templates
            .get_template(name)
            .and_then(|template| template.render(values))
        {
            Ok(html) => (
                status,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                html,
            )
                .into_response(),
            Err(error) => {
                warn!(template = name, %error, "the account page could not be rendered");
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
        }
    }

    fn message(&self, status: StatusCode, heading: &str, text: &str, back: bool) -> Response {
        self.render(status, "refused.html", context! { heading, text, back })
    }

    fn refused(&self, refusal: Refusal) -> Response {
        let text = match refusal {
            Refusal::PlainHttp => "This page is only served over HTTPS. Open it with https:// at the address your provider gave you.",
            Refusal::UntrustedProxy => "This page was reached through a proxy the server does not trust.",
        };
        self.message(
            StatusCode::FORBIDDEN,
            "Not over this connection",
            text,
            false,
        )
    }

    fn unavailable(&self, error: &dyn std::fmt::Display) -> Response {
        warn!(%error, "the account page could not reach the users or the store");
        self.message(
            StatusCode::SERVICE_UNAVAILABLE,
            "Try again later",
            "Your account cannot be reached just now.",
            true,
        )
    }

    fn forged(&self) -> Response {
        self.message(
            StatusCode::FORBIDDEN,
            "The form expired",
            "The form was not sent from this page, or it is too old. Nothing was changed.",
            true,
        )
    }

    /// The sign-in form, with a fresh token in its cookie and in the form.
    fn sign_in_form(
        &self,
        transport: Transport,
        status: StatusCode,
        problem: Option<&str>,
    ) -> Response {
        let token = random_token();
        let mut response = self.render(status, "sign_in.html", context! { token, problem });
        response.headers_mut().append(
            header::SET_COOKIE,
            cookies::set(SIGN_IN, Some(&token), transport),
        );
        response
    }

    /// The page of a signed-in user, with what just happened.
    async fn account(&self, session: &Session, said: Said<'_>) -> Response {
        let user = session.user.as_str();
        let (settings, list) = match (
            self.backend.pop_settings(user).await,
            self.backend.app_passwords(user).await,
        ) {
            (Ok(settings), Ok(list)) => (settings, list),
            (Err(error), _) | (_, Err(error)) => return self.unavailable(&error),
        };
        let passwords: Vec<Value> = list
            .passwords
            .iter()
            .map(|info| {
                let used = info.last_use.as_ref();
                context! {
                    label => info.label,
                    created => dates::utc(info.created),
                    used => used.map(|u| dates::utc(u.at)),
                    from => used.map(|u| u.from.to_string()),
                    over => used.map(|u| u.over.clone()),
                }
            })
            .collect();
        let after_choices: Vec<Value> = AFTER_CHOICES
            .iter()
            .map(|(value, _, text)| context! { value, text })
            .collect();
        let mail = self.mail.as_deref();
        let servers: Vec<Value> = mail
            .map(|mail| mail.endpoints())
            .unwrap_or_default()
            .into_iter()
            .map(|(port, security)| {
                let security = match security {
                    Security::Tls => "SSL/TLS (implicit TLS)",
                    Security::StartTls => "STARTTLS",
                };
                context! { port, security }
            })
            .collect();
        let login = match (
            mail.map(|m| m.username),
            mail.and_then(|m| m.domains.first()),
        ) {
            (Some(UsernameForm::Address), Some(domain)) if !user.contains('@') => {
                format!("{user}@{domain}")
            }
            _ => user.to_owned(),
        };
        let (notice, problem, new_label, new_password) = match said {
            Said::Nothing => (None, None, None, None),
            Said::Notice(text) => (Some(text), None, None, None),
            Said::Problem(text) => (None, Some(text), None, None),
            Said::NewAppPassword { label, password } => (None, None, Some(label), Some(password)),
        };
        self.render(
            StatusCode::OK,
            "account.html",
            context! {
                user,
                csrf => session.csrf,
                notice,
                problem,
                since => settings.since.map(dates::utc),
                after_retrieval => after_value(settings.after_retrieval),
                after_choices,
                required => list.required,
                passwords,
                new_label,
                new_password,
                servers,
                host => mail.map(|m| m.host.clone()),
                login,
                smtp_host => mail.and_then(|m| m.smtp.as_ref()).map(|s| s.0.clone()),
                smtp_port => mail.and_then(|m| m.smtp.as_ref()).map(|s| s.1),
            },
        )
    }
}

/// What the account page says above its sections.
enum Said<'a> {
    Nothing,
    Notice(&'a str),
    Problem(String),
    NewAppPassword { label: &'a str, password: String },
}

const AFTER_CHOICES: [(&str, AfterRetrieval, &str); 4] = [
    (
        "keep",
        AfterRetrieval::Keep,
        "Keep it in the inbox (listed again next time)",
    ),
    (
        "archive",
        AfterRetrieval::Archive,
        "Archive it (kept, no longer listed)",
    ),
    ("trash", AfterRetrieval::Trash, "Move it to the trash"),
    ("delete", AfterRetrieval::Delete, "Delete it"),
];

fn after_value(after: AfterRetrieval) -> &'static str {
    AFTER_CHOICES
        .iter()
        .find(|(_, choice, _)| *choice == after)
        .map_or("keep", |(value, _, _)| value)
}

fn same_token(given: &str, expected: &str) -> bool {
    !expected.is_empty() && bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

pub(crate) async fn to_slash() -> Redirect {
    Redirect::permanent("/account/")
}

pub(crate) async fn style() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("account.css"),
    )
        .into_response()
}

pub(crate) async fn show(
    State(page): Shared,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
) -> Response {
    let visit = match page.visit(peer, &headers).await {
        Ok(visit) => visit,
        Err(refused) => return refused,
    };
    match &visit.session {
        Some((_, session)) => page.account(session, Said::Nothing).await,
        None => page.sign_in_form(visit.transport, StatusCode::OK, None),
    }
}

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
    info!(client = %transport.client, user = checked.user, "account page: signed in");
    let id = page
        .sessions
        .start(checked.user, checked.stamp, Instant::now());
    let mut response = Redirect::to("/account/").into_response();
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        cookies::set(SESSION, Some(&id), transport),
    );
    headers.append(header::SET_COOKIE, cookies::set(SIGN_IN, None, transport));
    response
}

#[derive(Deserialize)]
pub(crate) struct Plain {
    csrf: String,
}

/// A signed-in visit whose form carries the session's token, or the answer refusing it.
async fn signed_in_form(
    page: &Page,
    peer: Peer,
    headers: &HeaderMap,
    csrf: &str,
) -> Result<(Visit, String, Session), Response> {
    let visit = page.visit(peer, headers).await?;
    let Some((id, session)) = visit.session.clone() else {
        return Err(page.sign_in_form(
            visit.transport,
            StatusCode::UNAUTHORIZED,
            Some("Your session ended: sign in again."),
        ));
    };
    if !same_token(csrf, &session.csrf) {
        return Err(page.forged());
    }
    Ok((visit, id, session))
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
    page.account(&session, Said::Notice("Your POP settings are saved."))
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
            page.account(&session, Said::Notice("The app password is revoked."))
                .await
        }
        Err(AccountError::Refused(why)) => page.account(&session, Said::Problem(why)).await,
        Err(error) => page.unavailable(&error),
    }
}
