//! The server's certificate and key: loaded from PEM files, and swappable while running so
//! that a renewed certificate (certbot, ACME clients) takes effect on SIGHUP without dropping
//! a single session.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Why a certificate and key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot read {path}: {source}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {problem}")]
    BadPem { path: PathBuf, problem: String },
    #[error("the TLS certificate and key do not fit together: {0}")]
    Tls(#[from] rustls::Error),
}

/// Hands every TLS handshake the certificate loaded last. Sessions already encrypted keep
/// the keys they agreed on; only new handshakes see a reload.
#[derive(Debug)]
pub struct ReloadableCert {
    cert_path: PathBuf,
    key_path: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ReloadableCert {
    /// Loads the chain and key, checking that they belong together.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Arc<Self>, CertError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = certified_key(cert_path, key_path, &provider)?;
        Ok(Arc::new(ReloadableCert {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            provider,
            current: RwLock::new(Arc::new(key)),
        }))
    }

    /// Reads the files again. On any error the certificate in use stays in use.
    pub fn reload(&self) -> Result<(), CertError> {
        let key = certified_key(&self.cert_path, &self.key_path, &self.provider)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(key);
        Ok(())
    }

    pub fn paths(&self) -> (&Path, &Path) {
        (&self.cert_path, &self.key_path)
    }

    /// A TLS 1.2/1.3 server configuration that asks this for its certificate.
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<rustls::ServerConfig>, CertError> {
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        // So that a session's keys can be handed to the kernel (kernel_tls.rs).
        config.enable_secret_extraction = true;
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for ReloadableCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self.current.read().unwrap_or_else(|e| e.into_inner()),
        ))
    }
}

fn certified_key(
    cert_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, CertError> {
    let certs = read_certs(cert_path)?;
    let key = read_key(key_path)?;
    Ok(CertifiedKey::from_der(certs, key, provider)?)
}

fn read_pem(path: &Path) -> Result<Vec<u8>, CertError> {
    std::fs::read(path).map_err(|source| CertError::ReadFile {
        path: path.to_owned(),
        source,
    })
}

/// The certificate chain of a PEM file (also for `postie check-config`).
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let pem = read_pem(path)?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| CertError::BadPem {
            path: path.to_owned(),
            problem: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(CertError::BadPem {
            path: path.to_owned(),
            problem: "no CERTIFICATE block found: expected a PEM certificate chain".into(),
        });
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, CertError> {
    let pem = read_pem(path)?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| CertError::BadPem {
            path: path.to_owned(),
            problem: e.to_string(),
        })?
        .ok_or_else(|| CertError::BadPem {
            path: path.to_owned(),
            problem:
                "no PRIVATE KEY block found: expected a PEM private key (PKCS#8, PKCS#1 or SEC1)"
                    .into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let generated = rcgen::generate_simple_self_signed(vec![name.into()]).unwrap();
        let cert = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(&cert, generated.cert.pem()).unwrap();
        std::fs::write(&key, generated.key_pair.serialize_pem()).unwrap();
        (cert, key)
    }

    fn current_der(cert: &ReloadableCert) -> Vec<u8> {
        cert.current.read().unwrap().cert[0].to_vec()
    }

    #[test]
    fn reload_swaps_and_a_broken_file_keeps_the_old() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = write_pair(dir.path(), "one");
        let loaded = ReloadableCert::load(&cert, &key).unwrap();
        let first = current_der(&loaded);

        let (cert2, key2) = write_pair(dir.path(), "two");
        std::fs::rename(&cert2, &cert).unwrap();
        std::fs::rename(&key2, &key).unwrap();
        loaded.reload().unwrap();
        let second = current_der(&loaded);
        assert_ne!(first, second);

        std::fs::write(&key, "not a key").unwrap();
        assert!(matches!(loaded.reload(), Err(CertError::BadPem { .. })));
        assert_eq!(current_der(&loaded), second);

        // A key from another pair does not fit the certificate.
        let (_, other_key) = write_pair(dir.path(), "three");
        std::fs::copy(&other_key, &key).unwrap();
        assert!(matches!(loaded.reload(), Err(CertError::Tls(_))));
        assert_eq!(current_der(&loaded), second);
    }
}
