//! Shared by the integration tests: an authenticator over a throwaway passwd-file, and the
//! client side of SCRAM-SHA-256 computed independently of the server code.

#![allow(dead_code)] // each test binary uses its own subset

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use postie_auth::{Authenticator, PasswdFile};
use sha2::{Digest, Sha256};

pub struct Fixture {
    _dir: tempfile::TempDir,
    pub auth: Authenticator<PasswdFile>,
    /// The passwd-file, for edits beside it (app passwords).
    pub path: std::path::PathBuf,
}

pub fn authenticator(passwd_file: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users");
    std::fs::write(&path, passwd_file).unwrap();
    Fixture {
        auth: Authenticator::new(PasswdFile::open(&path).unwrap()),
        path,
        _dir: dir,
    }
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

pub fn salted_password(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
    out
}

/// `{SCRAM-SHA-256}` entry, as Dovecot stores it.
pub fn scram_entry(password: &[u8], salt: &[u8], iterations: u32) -> String {
    let salted = salted_password(password, salt, iterations);
    let stored_key = Sha256::digest(hmac(&salted, b"Client Key"));
    let server_key = hmac(&salted, b"Server Key");
    format!(
        "{{SCRAM-SHA-256}}{iterations},{},{},{}",
        BASE64.encode(salt),
        BASE64.encode(stored_key),
        BASE64.encode(server_key)
    )
}

/// Parses the server-first message.
pub fn server_first_fields(server_first: &str) -> (String, Vec<u8>, u32) {
    let mut nonce = None;
    let mut salt = None;
    let mut iterations = None;
    for attribute in server_first.split(',') {
        let (key, value) = attribute.split_once('=').unwrap();
        match key {
            "r" => nonce = Some(value.to_string()),
            "s" => salt = Some(BASE64.decode(value).unwrap()),
            "i" => iterations = Some(value.parse().unwrap()),
            _ => panic!("unexpected attribute in {server_first}"),
        }
    }
    (nonce.unwrap(), salt.unwrap(), iterations.unwrap())
}

/// The client-final message and the server signature the client expects, RFC 5802 §3.
pub fn client_final(
    password: &[u8],
    client_first_bare: &str,
    server_first: &str,
    gs2_header: &str,
) -> (String, String) {
    let (nonce, salt, iterations) = server_first_fields(server_first);
    let without_proof = format!("c={},r={nonce}", BASE64.encode(gs2_header));
    let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
    let salted = salted_password(password, &salt, iterations);
    let client_key = hmac(&salted, b"Client Key");
    let stored_key = Sha256::digest(&client_key);
    let signature = hmac(&stored_key, auth_message.as_bytes());
    let proof: Vec<u8> = client_key
        .iter()
        .zip(signature)
        .map(|(k, s)| k ^ s)
        .collect();
    let server_key = hmac(&salted, b"Server Key");
    let server_signature = hmac(&server_key, auth_message.as_bytes());
    (
        format!("{without_proof},p={}", BASE64.encode(proof)),
        format!("v={}", BASE64.encode(server_signature)),
    )
}
