//! What postie fetch's HTTPS requests share (autoconfig and Autodiscover in discovery, the
//! endpoints of an OAuth sign-in): TLS checked against the system's roots (or the file
//! `SSL_CERT_FILE` names, which rustls-native-certs reads instead), answers read up to a
//! bound, and errors told with their causes.

use std::sync::Arc;

/// The TLS settings of every request: the system's roots, postie's ring provider.
pub(crate) fn tls_config() -> Result<rustls::ClientConfig, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        return Err("no CA certificates found on this system: install ca-certificates, or set SSL_CERT_FILE".into());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The answer's body, refused past `max` octets.
pub(crate) async fn read_body(
    mut response: reqwest::Response,
    max: usize,
) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| error_chain(&e))? {
        if body.len() + chunk.len() > max {
            return Err(format!("the answer exceeds {max} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// reqwest's top error says little ("error sending request"); the causes say why.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
