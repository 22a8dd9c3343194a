//! The page's handlers. Every POST but sign-in carries the session's synchronizer token
//! (`csrf`); sign-in carries the token of its own cookie. A request that may not see the
//! page (`transport`) gets 403 before anything else is read.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use minijinja::{context, Value};
use postie_auth::TotpSecret;
use postie_store::AfterRetrieval;
use serde::Deserialize;
use subtle::ConstantTimeEq;
use tracing::warn;

use super::cookies::{self, SESSION, SIGN_IN};
use super::sessions::{random_token, Session, Stage};
use super::transport::{self, Refusal, Transport};
use super::{dates, Page};
use crate::http::settings::{Security, UsernameForm};
use crate::http::Peer;

mod settings;
mod sign_in;
mod two_step;

pub(crate) use settings::{add_app_password, revoke_app_password, save_pop_settings, test_login};
pub(crate) use sign_in::{second_step, sign_in, sign_out};
pub(crate) use two_step::{confirm_two_step, start_two_step, turn_off_two_step};

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

    /// The second step's form.
    fn code_form(&self, session: &Session, status: StatusCode, problem: Option<&str>) -> Response {
        let csrf = session.csrf.as_str();
        self.render(status, "two_step.html", context! { csrf, problem })
    }

    /// The page of a signed-in user, with what just happened.
    async fn account(&self, session: &Session, said: Said<'_>) -> Response {
        let user = session.user.as_str();
        let (settings, list, two_step_on) = match (
            self.backend.pop_settings(user).await,
            self.backend.app_passwords(user).await,
            self.backend.has_two_step(user).await,
        ) {
            (Ok(settings), Ok(list), Ok(on)) => (settings, list, on),
            (Err(error), _, _) | (_, Err(error), _) | (_, _, Err(error)) => {
                return self.unavailable(&error)
            }
        };
        let issuer = self
            .mail
            .as_deref()
            .map_or("postie", |mail| mail.host.as_str());
        let enrolling_secret = session.enrolling.as_ref().map(TotpSecret::base32);
        let enrolling_qr = session
            .enrolling
            .as_ref()
            .and_then(|secret| qr_svg(&secret.otpauth_uri(issuer, user)));
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
        let activity: Vec<Value> = self
            .recent
            .of(user)
            .iter()
            .map(|session| {
                context! {
                    ended => dates::utc(session.ended),
                    from => session.from.to_string(),
                    app_password => session.app_password,
                    over => session.over,
                    retrieved => session.retrieved,
                    deleted => session.deleted,
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
        let (mut notice, mut problem, mut new_label, mut new_password) = (None, None, None, None);
        let mut recovery_codes = None;
        match said {
            Said::Nothing => {}
            Said::Notice(text) => notice = Some(text),
            Said::Problem(text) => problem = Some(text),
            Said::NewAppPassword { label, password } => {
                new_label = Some(label);
                new_password = Some(password);
            }
            Said::RecoveryCodes(codes) => recovery_codes = Some(codes),
        }
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
                two_step_on,
                enrolling_secret,
                enrolling_qr,
                recovery_codes,
                activity,
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
    Notice(String),
    Problem(String),
    NewAppPassword {
        label: &'a str,
        password: String,
    },
    /// Two-step sign-in just turned on: its recovery codes, shown once.
    RecoveryCodes(Vec<String>),
}

/// The QR code of `uri` as an SVG element for the page (without its XML declaration).
fn qr_svg(uri: &str) -> Option<String> {
    let code = qrcode::QrCode::new(uri.as_bytes()).ok()?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .build();
    let start = svg.find("<svg")?;
    Some(svg[start..].to_owned())
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
        include_str!("../account.css"),
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
        Some((_, session)) if session.stage == Stage::AwaitingCode => {
            page.code_form(session, StatusCode::OK, None)
        }
        Some((_, session)) => page.account(session, Said::Nothing).await,
        None => page.sign_in_form(visit.transport, StatusCode::OK, None),
    }
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
    let Some((id, session)) = visit
        .session
        .clone()
        .filter(|(_, session)| session.stage == Stage::SignedIn)
    else {
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

#[derive(Deserialize)]
pub(crate) struct CodeForm {
    csrf: String,
    code: String,
}
