//! TLS to the database: a store with the right CA connects, delivers and reads over TLS; a
//! wrong CA, a host name the certificate does not name, and a store without TLS are each
//! refused with an error that says why. On a real PostgreSQL 15 that takes TLS connections
//! only.

// The TLS tests use the TLS-only server alone of it.
#[allow(dead_code)]
mod cluster;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use cluster::TlsCluster;
use postie_store::View;
use postie_store::{Delivery, MailStore, Maildrop, MessageBody, Quota, Recipient};
use postie_store_pg::{DbTls, DbTlsError, PgOptions, PgStore, Transport};

fn server() -> &'static TlsCluster {
    static SERVER: OnceLock<TlsCluster> = OnceLock::new();
    SERVER.get_or_init(TlsCluster::start)
}

/// Options that give up on an unreachable database at once: these tests expect failures.
fn options() -> PgOptions {
    PgOptions {
        reconnect_within: Duration::ZERO,
        ..PgOptions::default()
    }
}

fn tls(pem: &str) -> Transport {
    Transport::Tls(DbTls::from_pem(pem.as_bytes()).expect("a usable CA"))
}

/// A CA that signed nothing the server has.
fn another_ca() -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.self_signed(&key).unwrap().pem()
}

#[tokio::test]
async fn with_the_servers_ca_mail_is_delivered_and_read_over_tls() {
    let server = server();
    let store = PgStore::with_transport(server.config(), options(), tls(server.ca_pem()));
    assert!(store.pool().is_tls());
    store.migrate().await.expect("migrating over TLS");
    let encrypted: bool = store
        .pool()
        .get()
        .await
        .unwrap()
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(encrypted, "the server sees a TLS connection");
    let results = store
        .deliver(Delivery {
            message: Arc::new(b"Subject: over TLS\r\n\r\nhello\r\n".to_vec()),
            recipients: vec![Recipient {
                user: "alice".into(),
                headers: b"Delivered-To: alice\r\n".to_vec(),
                quota: Quota::default(),
            }],
        })
        .await;
    results.into_iter().for_each(|r| r.expect("delivered"));
    let mut drop = store
        .open("alice", true, View::Normal)
        .await
        .expect("opening alice");
    let mut body = drop.open_message(0).await.expect("the message");
    let mut content = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match body.read(&mut buf).await.expect("reading") {
            0 => break,
            n => content.extend_from_slice(&buf[..n]),
        }
    }
    assert!(content.ends_with(b"\r\n\r\nhello\r\n"), "{content:?}");
    assert!(store.check_writable().await.is_ok());
}

#[tokio::test]
async fn a_server_certificate_from_another_ca_is_refused() {
    let mut config = server().config();
    config.password("pw-that-must-not-show");
    let store = PgStore::with_transport(config, options(), tls(&another_ca()));
    let error = store.migrate().await.unwrap_err().to_string();
    assert!(error.contains("TLS handshake"), "{error}");
    assert!(error.contains("UnknownIssuer"), "{error}");
    let writable = store.check_writable().await.unwrap_err();
    assert!(writable.contains("UnknownIssuer"), "{writable}");
    for said in [error, writable] {
        assert!(!said.contains("pw-that-must-not-show"), "{said}");
    }
}

#[tokio::test]
async fn a_host_name_the_certificate_does_not_name_is_refused() {
    let server = server();
    // The same server, reached as a name its certificate was not made for.
    let mut config = postie_store_pg::Config::new();
    config
        .host("db.invalid")
        .hostaddr([127, 0, 0, 1].into())
        .port(server.config().get_ports()[0])
        .user("postgres")
        .dbname("postgres");
    let store = PgStore::with_transport(config, options(), tls(server.ca_pem()));
    let error = store.migrate().await.unwrap_err().to_string();
    assert!(
        error.contains("not valid for name \"db.invalid\""),
        "{error}"
    );
}

#[tokio::test]
async fn without_tls_a_tls_only_server_refuses_the_connection() {
    let store = PgStore::new(server().config(), options());
    assert!(!store.pool().is_tls());
    let error = store.migrate().await.unwrap_err().to_string();
    assert!(error.contains("no pg_hba.conf entry"), "{error}");
    assert!(error.contains("no encryption"), "{error}");
}

#[test]
fn a_ca_file_without_a_certificate_is_named_as_such() {
    let error = DbTls::from_pem(b"not a certificate\n").unwrap_err();
    assert!(matches!(error, DbTlsError::NoCertificate), "{error}");
    assert!(error.to_string().contains("BEGIN CERTIFICATE"), "{error}");
    let error = DbTls::from_pem(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
        .unwrap_err();
    assert!(
        matches!(error, DbTlsError::BadCertificate { .. }),
        "{error}"
    );
}
