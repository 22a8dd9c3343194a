//! The page's two cookies: the session, and the sign-in form's token (a double-submit
//! token, so a form posted from elsewhere cannot sign a browser into an attacker's
//! account). Both `HttpOnly` and `SameSite=Strict`; over HTTPS also `Secure` and named with
//! the `__Host-` prefix, which browsers only accept from a secure origin for the whole host.

use axum::http::{header, HeaderMap, HeaderValue};

use super::sessions::AGE_LIMIT;
use super::transport::Transport;

pub(crate) const SESSION: &str = "postie-session";
pub(crate) const SIGN_IN: &str = "postie-sign-in";

/// The cookie's name over this transport.
fn name(base: &str, transport: Transport) -> String {
    match transport.https {
        true => format!("__Host-{base}"),
        false => base.to_owned(),
    }
}

/// The value of the cookie `base` the browser sent, under its name for this transport.
pub(crate) fn read(headers: &HeaderMap, base: &str, transport: Transport) -> Option<String> {
    let wanted = name(base, transport);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == wanted)
        .map(|(_, value)| value.to_owned())
}

/// A `Set-Cookie` value; `None` clears the cookie.
pub(crate) fn set(base: &str, value: Option<&str>, transport: Transport) -> HeaderValue {
    let max_age = match value {
        Some(_) => AGE_LIMIT.as_secs(),
        None => 0,
    };
    let secure = if transport.https { "; Secure" } else { "" };
    let text = format!(
        "{}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}",
        name(base, transport),
        value.unwrap_or("")
    );
    // Names and values are ASCII tokens and hex: always a valid header value.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}
