//! Certificate trust for the client: the system's CA roots (Debian's ca-certificates, read by
//! rustls-native-certs), a private CA file, a pinned SHA-256 fingerprint, or (only when asked
//! for) nothing. One verifier serves all four and records what it saw, so errors and
//! `postie probe` can show the chain and why it was refused.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

use crate::error::FetchError;

/// How the server's certificate is judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// The system's roots.
    System,
    /// Only the CAs in this PEM file.
    CaFile(PathBuf),
    /// Exactly the certificate with this SHA-256 fingerprint, whoever issued it.
    Pinned([u8; 32]),
    /// Anything. Only when the configuration says `insecure = true`.
    Insecure,
}

impl Trust {
    pub(crate) fn from_options(
        ca_file: Option<PathBuf>,
        fingerprint: Option<&str>,
        insecure: bool,
    ) -> Result<Trust, String> {
        match (ca_file, fingerprint, insecure) {
            (None, None, false) => Ok(Trust::System),
            (Some(file), None, false) => Ok(Trust::CaFile(file)),
            (None, Some(pin), false) => parse_fingerprint(pin).map(Trust::Pinned),
            (None, None, true) => Ok(Trust::Insecure),
            _ => Err("set at most one of ca_file, fingerprint and insecure".into()),
        }
    }
}

/// Parses `sha256:` followed by 64 hex digits, colons allowed (as `openssl x509 -fingerprint`
/// prints them).
pub fn parse_fingerprint(text: &str) -> Result<[u8; 32], String> {
    let hex_digits: String = text
        .strip_prefix("sha256:")
        .or_else(|| text.strip_prefix("SHA256:"))
        .ok_or_else(|| format!("fingerprint {text:?} must start with sha256:"))?
        .chars()
        .filter(|&c| c != ':')
        .collect();
    let bytes = hex::decode(&hex_digits)
        .map_err(|_| format!("fingerprint {text:?}: expected 64 hex digits after sha256:"))?;
    <[u8; 32]>::try_from(bytes)
        .map_err(|_| format!("fingerprint {text:?}: expected 64 hex digits after sha256:"))
}

/// `sha256:AB:CD:…`, the form `fingerprint =` takes.
pub fn format_fingerprint(der: &[u8]) -> String {
    let digest = Sha256::digest(der);
    let pairs: Vec<String> = digest.iter().map(|b| format!("{b:02X}")).collect();
    format!("sha256:{}", pairs.join(":"))
}

/// What the verifier saw during the last handshake.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    pub chain: Vec<CertificateDer<'static>>,
    /// `None` when the certificate was accepted.
    pub problem: Option<String>,
    pub name_matches: Option<bool>,
}

#[derive(Debug)]
enum Judge {
    WebPki(Arc<WebPkiServerVerifier>),
    Pinned([u8; 32]),
    Insecure,
}

/// The one verifier. With `tolerant`, it records a refusal but lets the handshake go on
/// (for `postie probe`, which then reports it and sends no password).
#[derive(Debug)]
struct Verifier {
    judge: Judge,
    provider: Arc<CryptoProvider>,
    seen: Arc<Mutex<Seen>>,
    tolerant: bool,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let name_matches = rustls::server::ParsedCertificate::try_from(end_entity)
            .ok()
            .map(|cert| rustls::client::verify_server_name(&cert, server_name).is_ok());
        let result = match &self.judge {
            Judge::WebPki(webpki) => webpki
                .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
                .map_err(|e| describe_error(&e, server_name)),
            Judge::Pinned(pin) => {
                let actual: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
                if &actual == pin {
                    Ok(ServerCertVerified::assertion())
                } else {
                    Err(format!(
                        "the certificate's fingerprint is {}, not the pinned {}: the server changed its certificate, or someone is in between; if the change is expected, pin the new fingerprint",
                        format_fingerprint(end_entity.as_ref()),
                        format_pin(pin)
                    ))
                }
            }
            Judge::Insecure => Ok(ServerCertVerified::assertion()),
        };
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.chain = std::iter::once(end_entity)
            .chain(intermediates)
            .map(|c| c.clone().into_owned())
            .collect();
        seen.name_matches = name_matches;
        seen.problem = result.as_ref().err().cloned();
        match result {
            Ok(verified) => Ok(verified),
            Err(_) if self.tolerant => Ok(ServerCertVerified::assertion()),
            Err(problem) => Err(rustls::Error::General(problem)),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn format_pin(pin: &[u8; 32]) -> String {
    let pairs: Vec<String> = pin.iter().map(|b| format!("{b:02X}")).collect();
    format!("sha256:{}", pairs.join(":"))
}

/// A certificate error in words, with what to do about it.
fn describe_error(error: &rustls::Error, server_name: &ServerName<'_>) -> String {
    use rustls::CertificateError as E;
    let name = server_name.to_str();
    match error {
        rustls::Error::InvalidCertificate(cert) => match cert {
            E::Expired | E::ExpiredContext { .. } => {
                "the certificate has expired: the server's administrator must renew it".into()
            }
            E::NotValidYet | E::NotValidYetContext { .. } => {
                "the certificate is not valid yet: check this computer's clock".into()
            }
            E::NotValidForName | E::NotValidForNameContext { .. } => format!(
                "the certificate is not valid for {name}: connect with a name it lists (see `postie probe`), or the server is misconfigured"
            ),
            E::UnknownIssuer => "the certificate is not signed by a trusted CA (self-signed or a private CA): set ca_file to that CA, or pin it with fingerprint = \"sha256:…\" (postie probe prints it)".into(),
            E::Revoked => "the certificate has been revoked".into(),
            other => format!("the certificate is not acceptable: {other:?}"),
        },
        other => other.to_string(),
    }
}

/// A client configuration for `trust`, and the record of what its verifier sees.
pub fn client_config(
    trust: &Trust,
    tolerant: bool,
) -> Result<(Arc<rustls::ClientConfig>, Arc<Mutex<Seen>>), FetchError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let judge = match trust {
        Trust::System => Judge::WebPki(webpki_verifier(system_roots()?, &provider)?),
        Trust::CaFile(path) => Judge::WebPki(webpki_verifier(file_roots(path)?, &provider)?),
        Trust::Pinned(pin) => Judge::Pinned(*pin),
        Trust::Insecure => Judge::Insecure,
    };
    let seen = Arc::new(Mutex::new(Seen::default()));
    let verifier = Verifier {
        judge,
        provider: Arc::clone(&provider),
        seen: Arc::clone(&seen),
        tolerant,
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| FetchError::Tls {
            host: String::new(),
            reason: e.to_string(),
        })?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok((Arc::new(config), seen))
}

fn webpki_verifier(
    roots: rustls::RootCertStore,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, FetchError> {
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider))
        .build()
        .map_err(|e| FetchError::Tls {
            host: String::new(),
            reason: format!("cannot use the CA certificates: {e}"),
        })
}

fn system_roots() -> Result<rustls::RootCertStore, FetchError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        return Err(FetchError::Tls {
            host: String::new(),
            reason: "no CA certificates found on this system: install the ca-certificates package, set SSL_CERT_FILE, or set ca_file or fingerprint for the account".into(),
        });
    }
    Ok(roots)
}

fn file_roots(path: &std::path::Path) -> Result<rustls::RootCertStore, FetchError> {
    let bad = |reason: String| FetchError::Config {
        path: path.to_owned(),
        message: format!("ca_file: {reason}"),
    };
    let pem = std::fs::read(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        let cert = cert.map_err(|e| bad(format!("not a PEM file: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| bad(format!("unusable CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(bad("no CERTIFICATE block in it".into()));
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints() {
        let text = format_fingerprint(b"x");
        assert_eq!(
            parse_fingerprint(&text).unwrap(),
            <[u8; 32]>::from(Sha256::digest(b"x"))
        );
        assert!(parse_fingerprint("md5:00").is_err());
        assert!(parse_fingerprint("sha256:zz").is_err());
        assert!(Trust::from_options(None, Some("sha256:00"), true).is_err());
    }
}
