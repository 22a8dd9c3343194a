//! The operator's routes: `/healthz`, `/metrics`, Thunderbird's autoconfig and Outlook's
//! Autodiscover. Every answer carries `Cache-Control: no-store` (a layer in `mod.rs`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;

use super::gate::query_param;
use super::settings::MailSettings;
use super::{autoconfig, autodiscover, HealthCheck, HEALTH_CHECK_LIMIT};

const XML: &str = "application/xml; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

/// What the operator's routes answer from.
pub(crate) struct Operator {
    pub(crate) mail: Option<Arc<MailSettings>>,
    pub(crate) health: Option<HealthCheck>,
}

pub(crate) fn router(operator: Arc<Operator>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/mail/config-v1.1.xml", any(thunderbird))
        .route(
            "/.well-known/autoconfig/mail/config-v1.1.xml",
            any(thunderbird),
        )
        .fallback(outlook_or_not_found)
        .with_state(operator)
}

/// A plain-text error: the status and its reason.
pub(crate) fn error(status: StatusCode) -> Response {
    let text = format!(
        "{} {}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    );
    (status, [(header::CONTENT_TYPE, TEXT)], text).into_response()
}

fn method_not_allowed(allow: &'static str) -> Response {
    let mut response = error(StatusCode::METHOD_NOT_ALLOWED);
    response
        .headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static(allow));
    response
}

async fn healthz(State(operator): State<Arc<Operator>>) -> Response {
    if let Some(check) = &operator.health {
        let outcome = tokio::time::timeout(HEALTH_CHECK_LIMIT, check())
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {HEALTH_CHECK_LIMIT:?}")));
        if let Err(reason) = outcome {
            let text = format!("unhealthy: {}\n", reason.replace(['\r', '\n'], " "));
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::CONTENT_TYPE, TEXT)],
                text,
            )
                .into_response();
        }
    }
    ([(header::CONTENT_TYPE, TEXT)], "ok\n").into_response()
}

async fn metrics() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        postie_metrics::render(),
    )
        .into_response()
}

async fn thunderbird(
    State(operator): State<Arc<Operator>>,
    method: Method,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(mail) = &operator.mail else {
        return error(StatusCode::NOT_FOUND);
    };
    if method != Method::GET && method != Method::HEAD {
        return method_not_allowed("GET, HEAD");
    }
    let domain = match query_param(query.as_deref().unwrap_or_default(), "emailaddress") {
        Some(text) => match mail.address(&text) {
            Some(address) => address.domain.to_ascii_lowercase(),
            None => return error(StatusCode::NOT_FOUND),
        },
        None => match mail.domains.first() {
            Some(domain) => domain.clone(),
            None => mail.host.clone(),
        },
    };
    (
        [(header::CONTENT_TYPE, XML)],
        autoconfig::render(mail, &domain),
    )
        .into_response()
}

/// Outlook asks for `/autodiscover/autodiscover.xml` in any case; nothing else is here.
async fn outlook_or_not_found(
    State(operator): State<Arc<Operator>>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    if !uri
        .path()
        .eq_ignore_ascii_case("/autodiscover/autodiscover.xml")
    {
        return error(StatusCode::NOT_FOUND);
    }
    let Some(mail) = &operator.mail else {
        return error(StatusCode::NOT_FOUND);
    };
    if method != Method::POST {
        return method_not_allowed("POST");
    }
    let Some(text) = autodiscover::requested_address(&body) else {
        return error(StatusCode::BAD_REQUEST);
    };
    match mail.address(text) {
        Some(address) => (
            [(header::CONTENT_TYPE, XML)],
            autodiscover::render(mail, mail.login(&address)),
        )
            .into_response(),
        None => error(StatusCode::NOT_FOUND),
    }
}
