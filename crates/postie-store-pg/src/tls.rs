//! TLS to the database: connections verified against one CA (`[postgres] ca_file`), the
//! server's certificate checked for the host name the URL gives (its IP SAN for an IP host).
//!
//! The TLS plumbing is tokio-postgres-rustls: it is the MakeTlsConnect for rustls 0.23 and
//! tokio-postgres 0.7 the workspace already has, and it adds SCRAM channel binding
//! (tls-server-end-point), which a hand-written connector would have to redo.

use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, Config, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

/// How a store's connections travel.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Transport {
    /// Unencrypted, as the URL says (`sslmode` is left alone and no TLS is offered): for
    /// loopback and trusted networks.
    #[default]
    Plain,
    /// TLS, always, verified against these CAs.
    Tls(DbTls),
}

/// The CAs a database server's certificate must chain to, and a connector that checks it.
#[derive(Clone)]
pub struct DbTls {
    roots: Vec<CertificateDer<'static>>,
    connector: MakeRustlsConnect,
}

/// Why a CA file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DbTlsError {
    #[error("it is not PEM ({0})")]
    Pem(std::io::Error),
    #[error("it holds no certificate (no -----BEGIN CERTIFICATE----- block)")]
    NoCertificate,
    #[error("certificate {index} in it is not usable as a CA: {reason}")]
    BadCertificate { index: usize, reason: String },
    #[error("rustls has no TLS version to offer: {0}")]
    Provider(rustls::Error),
}

impl DbTls {
    /// Trust the CA certificates of a PEM file's contents, and no others.
    pub fn from_pem(pem: &[u8]) -> Result<DbTls, DbTlsError> {
        let roots = rustls_pemfile::certs(&mut &pem[..])
            .collect::<Result<Vec<_>, _>>()
            .map_err(DbTlsError::Pem)?;
        if roots.is_empty() {
            return Err(DbTlsError::NoCertificate);
        }
        let mut store = rustls::RootCertStore::empty();
        for (index, root) in roots.iter().enumerate() {
            store
                .add(root.clone())
                .map_err(|e| DbTlsError::BadCertificate {
                    index: index + 1,
                    reason: e.to_string(),
                })?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(DbTlsError::Provider)?
            .with_root_certificates(store)
            .with_no_client_auth();
        Ok(DbTls {
            roots,
            connector: MakeRustlsConnect::new(config),
        })
    }
}

impl PartialEq for DbTls {
    fn eq(&self, other: &Self) -> bool {
        self.roots == other.roots
    }
}

impl Eq for DbTls {}

impl std::fmt::Debug for DbTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DbTls({} CA certificates)", self.roots.len())
    }
}

impl Transport {
    /// `config` as this transport needs it: with TLS, the server must take TLS
    /// (`sslmode=require`; the certificate and host name are always verified by rustls).
    pub(crate) fn prepare(&self, config: &mut Config) {
        if let Transport::Tls(_) = self {
            config.ssl_mode(SslMode::Require);
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, Transport::Tls(_))
    }

    /// A new connection; its connection task is spawned on the current runtime.
    pub(crate) async fn connect(&self, config: &Config) -> Result<Client, tokio_postgres::Error> {
        match self {
            Transport::Plain => {
                let (client, connection) = config.connect(NoTls).await?;
                tokio::spawn(watch(connection));
                Ok(client)
            }
            Transport::Tls(tls) => {
                let (client, connection) = config.connect(tls.connector.clone()).await?;
                tokio::spawn(watch(connection));
                Ok(client)
            }
        }
    }
}

async fn watch<F: std::future::Future<Output = Result<(), tokio_postgres::Error>>>(connection: F) {
    if let Err(e) = connection.await {
        tracing::warn!(error = %e, "a PostgreSQL connection ended");
    }
}
