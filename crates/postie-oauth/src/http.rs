//! The HTTPS client that asks the identity provider: rustls with postie's ring provider,
//! trusting `ca_file` or the system's roots, with bounded time and answer size.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::CONTENT_TYPE;

use crate::{OAuthError, TokenError};

/// How long one request to the provider may take, connection included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest answer read (a discovery document, a JWKS, an introspection answer).
const MAX_ANSWER: usize = 1024 * 1024;

pub(crate) fn client(ca_file: Option<&Path>) -> Result<reqwest::Client, OAuthError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let ca_error = |reason: String| OAuthError::CaFile {
                path: path.to_owned(),
                reason,
            };
            let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                let cert = cert.map_err(|e| ca_error(e.to_string()))?;
                roots.add(cert).map_err(|e| ca_error(e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(ca_error("no certificate in it".into()));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            if found.certs.is_empty() {
                let reason = found.errors.first().map(|e| e.to_string());
                return Err(OAuthError::SystemRoots(
                    reason.unwrap_or_else(|| "none found".into()),
                ));
            }
            roots.add_parsable_certificates(found.certs);
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| OAuthError::Client(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .https_only(true)
        .timeout(REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| OAuthError::Client(e.to_string()))
}

/// Sends `request` and reads its JSON answer, which must be 200 OK.
pub(crate) async fn json(
    request: reqwest::RequestBuilder,
    what: &str,
) -> Result<serde_json::Value, TokenError> {
    let unavailable = |reason: String| TokenError::Unavailable(format!("{what}: {reason}"));
    let mut response = request
        .send()
        .await
        .map_err(|e| unavailable(error_chain(&e)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(unavailable(format!("answered HTTP {status}")));
    }
    let json_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    if !json_type {
        return Err(unavailable("the answer is not JSON".into()));
    }
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
    serde_json::from_slice(&body).map_err(|e| unavailable(format!("invalid JSON: {e}")))
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
