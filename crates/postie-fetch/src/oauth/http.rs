//! The HTTPS requests of a sign-in: a discovery document read, forms posted to the token and
//! device endpoints. Blocking, like the rest of postie-fetch, over reqwest on a
//! current-thread runtime of its own, with the TLS and bounds of [`crate::https`].

use std::time::Duration;

use crate::https::{error_chain, read_body};

use super::OAuthError;

/// How long one request may take, connection included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest answer read.
const MAX_ANSWER: usize = 256 * 1024;

pub(crate) struct Http {
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
}

/// A token or device endpoint's answer: its JSON, or the OAuth error it gave (RFC 6749
/// section 5.2).
pub(crate) enum FormAnswer {
    Granted(serde_json::Value),
    Refused { error: String, description: String },
}

impl Http {
    pub(crate) fn new() -> Result<Http, OAuthError> {
        let unavailable = |reason: String| OAuthError::Unavailable {
            what: "starting the HTTPS client".into(),
            reason,
        };
        let tls = crate::https::tls_config().map_err(unavailable)?;
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .https_only(true)
            .timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| unavailable(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| unavailable(e.to_string()))?;
        Ok(Http { runtime, client })
    }

    pub(crate) fn get_json(&self, url: &str, what: &str) -> Result<serde_json::Value, OAuthError> {
        let (status, body) = self.send(self.client.get(url), what)?;
        if !status.is_success() {
            return Err(OAuthError::Unavailable {
                what: what.into(),
                reason: format!("it answered HTTP {status}"),
            });
        }
        parse(&body, what)
    }

    pub(crate) fn post_form(
        &self,
        url: &str,
        form: &[(&str, String)],
        what: &str,
    ) -> Result<FormAnswer, OAuthError> {
        let request = self
            .client
            .post(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .form(form);
        let (status, body) = self.send(request, what)?;
        if status.is_success() {
            return Ok(FormAnswer::Granted(parse(&body, what)?));
        }
        // Errors are JSON with "error" (400, or 401 for a client the server does not know);
        // anything else is the server failing.
        let error = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| {
                let error = v.get("error")?.as_str()?.to_owned();
                let description = v
                    .get("error_description")
                    .and_then(|d| d.as_str())
                    .map_or_else(String::new, |d| format!(": {d}"));
                Some((error, description))
            });
        match error {
            Some((error, description)) => Ok(FormAnswer::Refused { error, description }),
            None => Err(OAuthError::Unavailable {
                what: what.into(),
                reason: format!("it answered HTTP {status}"),
            }),
        }
    }

    fn send(
        &self,
        request: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<(reqwest::StatusCode, Vec<u8>), OAuthError> {
        let unavailable = |reason: String| OAuthError::Unavailable {
            what: what.into(),
            reason,
        };
        self.runtime.block_on(async {
            let response = request
                .send()
                .await
                .map_err(|e| unavailable(error_chain(&e)))?;
            let status = response.status();
            let body = read_body(response, MAX_ANSWER).await.map_err(unavailable)?;
            Ok((status, body))
        })
    }
}

fn parse(body: &[u8], what: &str) -> Result<serde_json::Value, OAuthError> {
    serde_json::from_slice(body).map_err(|e| OAuthError::BadAnswer {
        what: what.into(),
        reason: format!("not JSON ({e})"),
    })
}
