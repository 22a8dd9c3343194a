//! `postie probe` against good and broken servers: each problem gets its verdict and hint.

mod common;
mod fetch_support;

use std::process::Command;

use common::{TestServer, BIN};
use fetch_support::*;

fn probe(args: &[&str]) -> (i32, String) {
    let output = Command::new(BIN)
        .arg("probe")
        .args(args)
        .args(["--timeout", "3"])
        .env("PW", "wonderland")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.code().unwrap_or(-1), text)
}

fn json(args: &[&str]) -> (i32, serde_json::Value) {
    let mut all = args.to_vec();
    all.push("--json");
    let (code, text) = probe(&all);
    (
        code,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")),
    )
}

/// A certificate made by rcgen with these names and validity years.
fn certificate(names: &[&str], from: i32, to: i32) -> (String, String) {
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    params.not_before = rcgen::date_time_ymd(from, 1, 1);
    params.not_after = rcgen::date_time_ymd(to, 1, 1);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

#[test]
fn a_good_server_with_login_as_json() {
    let server = TestServer::start();
    server.add_message("alice", b"Subject: x\n\ny\n");
    let fp = fingerprint(&server.cert_pem);
    let url = format!("pop3://127.0.0.1:{}", server.plain.port());
    let (code, report) = json(&[
        &url,
        "--user",
        "alice",
        "--password-env",
        "PW",
        "--fingerprint",
        &fp,
    ]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["verdict"]["ok"], true, "{report}");
    assert_eq!(report["tls"]["chain"][0]["sha256"], fp.as_str());
    assert_eq!(report["tls"]["name_matches"], true);
    assert!(report["capa_before_tls"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c == "STLS"));
    assert!(report["capa_after_tls"].is_array());
    assert!(report["capa_after_login"].is_array());
    assert_eq!(report["stat"]["messages"], 1);
    assert_eq!(report["login"]["ok"], true);

    let (code, text) = probe(&[&format!("pop3s://127.0.0.1:{}", server.tls.port())]);
    assert_eq!(code, 69, "self-signed against the system roots: {text}");
    assert!(text.contains("pin this one with fingerprint"), "{text}");
}

#[test]
fn an_expired_certificate() {
    let (cert, key) = certificate(&["localhost", "127.0.0.1"], 2000, 2001);
    let addr = tls_greeter(cert.clone(), key);
    let url = format!("pop3s://127.0.0.1:{}", addr.port());
    let (code, text) = probe(&[&url, "--fingerprint", &fingerprint(&cert)]);
    assert_eq!(code, 69, "{text}");
    assert!(text.contains("(EXPIRED)"), "{text}");
    assert!(text.contains("expired on"), "{text}");
    let (code, text) = probe(&[&url]);
    assert_eq!(code, 69, "{text}");
    assert!(text.contains("expired on"), "{text}");
}

#[test]
fn a_certificate_for_another_host() {
    let (cert, key) = certificate(&["mail.example.org"], 2020, 4000);
    let addr = tls_greeter(cert, key);
    let (code, report) = json(&[&format!("pop3s://127.0.0.1:{}", addr.port())]);
    assert_eq!(code, 69, "{report}");
    assert_eq!(report["tls"]["name_matches"], false);
    let hints = report["hints"].to_string();
    assert!(
        hints.contains("the certificate is for mail.example.org, not 127.0.0.1"),
        "{hints}"
    );
}

#[test]
fn tls_spoken_to_a_plain_port_and_plain_to_a_tls_port() {
    let server = TestServer::start();
    let (code, text) = probe(&[&format!("pop3s://127.0.0.1:{}", server.plain.port())]);
    assert_eq!(code, 69, "{text}");
    assert!(
        text.contains("it is a plain port, not implicit TLS"),
        "{text}"
    );
    let (code, text) = probe(&[&format!("pop3://127.0.0.1:{}", server.tls.port())]);
    assert_ne!(code, 0, "{text}");
    assert!(text.contains("it probably expects TLS at once"), "{text}");
}
