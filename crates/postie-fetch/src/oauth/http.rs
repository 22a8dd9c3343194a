//! The HTTPS requests of a sign-in: a discovery document read, forms posted to the token and
//! device endpoints. Blocking, like the rest of postie-fetch, over reqwest on a
//! current-thread runtime of its own; certificates checked against the system's roots (or
//! `SSL_CERT_FILE`, which rustls-native-certs reads instead); bounded time and size.

use std::sync::Arc;
use std::time::Duration;

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
        let found = rustls_native_certs::load_native_certs();
        let mut roots = rustls::RootCertStore::empty();
        roots.add_parsable_certificates(found.certs);
        if roots.is_empty() {
            return Err(unavailable("no CA certificates found on this system: install ca-certificates, or set SSL_CERT_FILE".into()));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| unavailable(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
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
            let mut response = request
                .send()
                .await
                .map_err(|e| unavailable(error_chain(&e)))?;
            let status = response.status();
            let mut body = Vec::new();
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|e| unavailable(error_chain(&e)))?
            {
                if body.len() + chunk.len() > MAX_ANSWER {
                    return Err(unavailable(format!(
                        "the answer exceeds {MAX_ANSWER} bytes"
                    )));
                }
                body.extend_from_slice(&chunk);
            }
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

/// reqwest's top error says little ("error sending request"); the causes say why.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
