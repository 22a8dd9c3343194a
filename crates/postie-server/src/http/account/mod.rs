//! The users' account page under `/account/`, as Gmail's settings: POP download (which mail
//! POP3 lists, what happens to what a client downloaded), app passwords (made, listed with
//! their last use, revoked), two-step sign-in (TOTP), recent POP3 activity, how to set up a
//! mail client, sign-out.
//!
//! Signing in takes the account's own password, through the same brake (and the same
//! login records) as POP3. Passwords and cookies never cross a network in the clear
//! (`transport`); every form carries a token tied to the session (`pages`); every answer
//! forbids framing, inline scripts and styles, sniffing, referrers and caching.

mod backend;
mod cookies;
mod dates;
mod pages;
mod sessions;
mod transport;

use std::sync::Arc;

use axum::http::{header, HeaderName, HeaderValue};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use minijinja::Environment;
use postie_proto::proxy::ProxyNetworks;

pub use backend::{
    AccountBackend, AccountError, AccountFuture, AppPasswordList, PasswordChecked, Pop3LoginCheck,
};

use super::settings::MailSettings;
use crate::login_brake::LoginBrake;
use crate::recent_sessions::RecentSessions;
use sessions::Sessions;

/// What the page is built from; the binary makes one and hands it to the HTTP server.
pub struct AccountPage {
    backend: Arc<dyn AccountBackend>,
    brake: LoginBrake,
    recent: Arc<RecentSessions>,
    trusted_proxies: ProxyNetworks,
}

impl AccountPage {
    /// `brake` and `recent` are the POP3 server's ([`crate::RunningServer::login_brake`],
    /// [`crate::RunningServer::recent_sessions`]); `trusted_proxies` the reverse proxies
    /// whose `X-Forwarded-Proto` and `X-Forwarded-For` are believed.
    pub fn new(
        backend: Arc<dyn AccountBackend>,
        brake: LoginBrake,
        recent: Arc<RecentSessions>,
        trusted_proxies: ProxyNetworks,
    ) -> Self {
        AccountPage {
            backend,
            brake,
            recent,
            trusted_proxies,
        }
    }
}

/// What every handler shares.
pub(crate) struct Page {
    pub(crate) backend: Arc<dyn AccountBackend>,
    pub(crate) brake: LoginBrake,
    pub(crate) recent: Arc<RecentSessions>,
    pub(crate) trusted_proxies: ProxyNetworks,
    pub(crate) mail: Option<Arc<MailSettings>>,
    pub(crate) sessions: Sessions,
    pub(crate) templates: Environment<'static>,
}

pub(crate) fn router(page: AccountPage, mail: Option<Arc<MailSettings>>) -> Router {
    let page = Arc::new(Page {
        backend: page.backend,
        brake: page.brake,
        recent: page.recent,
        trusted_proxies: page.trusted_proxies,
        mail,
        sessions: Sessions::default(),
        templates: templates(),
    });
    Router::new()
        .route("/account", get(pages::to_slash))
        .route("/account/", get(pages::show))
        .route("/account/style.css", get(pages::style))
        .route("/account/sign-in", post(pages::sign_in))
        .route("/account/sign-out", post(pages::sign_out))
        .route("/account/pop-settings", post(pages::save_pop_settings))
        .route("/account/app-passwords", post(pages::add_app_password))
        .route(
            "/account/app-passwords/revoke",
            post(pages::revoke_app_password),
        )
        .route("/account/test-login", post(pages::test_login))
        .route("/account/two-step", post(pages::second_step))
        .route("/account/two-step/start", post(pages::start_two_step))
        .route("/account/two-step/confirm", post(pages::confirm_two_step))
        .route("/account/two-step/off", post(pages::turn_off_two_step))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(page)
}

fn templates() -> Environment<'static> {
    let mut env = Environment::new();
    for (name, text) in [
        ("layout.html", include_str!("templates/layout.html")),
        ("sign_in.html", include_str!("templates/sign_in.html")),
        ("account.html", include_str!("templates/account.html")),
        ("refused.html", include_str!("templates/refused.html")),
        ("two_step.html", include_str!("templates/two_step.html")),
    ] {
        // Checked by the page's tests: a template that does not parse fails them all.
        if let Err(error) = env.add_template(name, text) {
            tracing::error!(template = name, %error, "account page template does not parse");
        }
    }
    env
}

/// The same on every answer of the page.
const SECURITY_HEADERS: [(&str, &str); 5] = [
    (
        "content-security-policy",
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
    ("cross-origin-opener-policy", "same-origin"),
];

async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
