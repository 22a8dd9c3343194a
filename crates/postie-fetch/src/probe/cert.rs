//! A certificate as the probe shows it: who it names, who signed it, when it is valid, its
//! fingerprint in the form `fingerprint =` takes.

use serde::Serialize;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::tls::format_fingerprint;

#[derive(Debug, Clone, Serialize)]
pub struct CertReport {
    pub subject: String,
    pub issuer: String,
    /// DNS names and IP addresses from the subjectAltName extension.
    pub names: Vec<String>,
    pub not_before: String,
    pub not_after: String,
    pub expired: bool,
    pub not_yet_valid: bool,
    pub sha256: String,
}

impl CertReport {
    pub fn from_der(der: &[u8], now: i64) -> CertReport {
        let sha256 = format_fingerprint(der);
        let Ok((_, cert)) = X509Certificate::from_der(der) else {
            return CertReport {
                subject: "(unparsable certificate)".into(),
                issuer: String::new(),
                names: Vec::new(),
                not_before: String::new(),
                not_after: String::new(),
                expired: false,
                not_yet_valid: false,
                sha256,
            };
        };
        let names = cert
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|san| {
                san.value
                    .general_names
                    .iter()
                    .filter_map(|name| match name {
                        GeneralName::DNSName(dns) => Some((*dns).to_owned()),
                        GeneralName::IPAddress(ip) => ip_text(ip),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let validity = cert.validity();
        CertReport {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            names,
            not_before: validity.not_before.to_string(),
            not_after: validity.not_after.to_string(),
            expired: validity.not_after.timestamp() < now,
            not_yet_valid: validity.not_before.timestamp() > now,
            sha256,
        }
    }
}

fn ip_text(bytes: &[u8]) -> Option<String> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes)
            .ok()
            .map(|b| std::net::Ipv4Addr::from(b).to_string()),
        16 => <[u8; 16]>::try_from(bytes)
            .ok()
            .map(|b| std::net::Ipv6Addr::from(b).to_string()),
        _ => None,
    }
}
