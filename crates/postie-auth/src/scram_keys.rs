//! SCRAM-SHA-256 key material (RFC 5802 section 3), shared by the `{SCRAM-SHA-256}` password
//! scheme and the SASL mechanism.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Iterations used when postie derives keys itself; RFC 7677 asks for at least 4096.
pub(crate) const DEFAULT_ITERATIONS: u32 = 4096;

pub(crate) const KEY_LEN: usize = 32;

#[derive(Clone)]
pub(crate) struct ScramKeys {
    pub(crate) iterations: u32,
    pub(crate) salt: Vec<u8>,
    pub(crate) stored_key: [u8; KEY_LEN],
    pub(crate) server_key: [u8; KEY_LEN],
}

impl ScramKeys {
    pub(crate) fn derive(password: &[u8], salt: &[u8], iterations: u32) -> Self {
        let mut salted = [0u8; KEY_LEN];
        pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut salted);
        let client_key = hmac_sha256(&salted, &[b"Client Key"]);
        let server_key = hmac_sha256(&salted, &[b"Server Key"]);
        ScramKeys {
            iterations,
            salt: salt.to_vec(),
            stored_key: Sha256::digest(client_key).into(),
            server_key,
        }
    }

    /// Dovecot's stored form: `<iterations>,<b64 salt>,<b64 StoredKey>,<b64 ServerKey>`.
    pub(crate) fn parse_dovecot(data: &str) -> Result<Self, String> {
        let fields: Vec<&str> = data.split(',').collect();
        let [iterations, salt, stored_key, server_key] = fields[..] else {
            return Err(format!(
                "SCRAM-SHA-256 needs 4 comma-separated fields, found {}",
                fields.len()
            ));
        };
        let iterations: u32 = iterations
            .parse()
            .ok()
            .filter(|&n| n > 0)
            .ok_or("SCRAM-SHA-256 iteration count is not a positive number")?;
        let salt = BASE64
            .decode(salt)
            .ok()
            .filter(|salt| !salt.is_empty())
            .ok_or("SCRAM-SHA-256 salt is not non-empty base64")?;
        Ok(ScramKeys {
            iterations,
            salt,
            stored_key: decode_key(stored_key).ok_or("SCRAM-SHA-256 StoredKey is malformed")?,
            server_key: decode_key(server_key).ok_or("SCRAM-SHA-256 ServerKey is malformed")?,
        })
    }

    pub(crate) fn to_dovecot(&self) -> String {
        format!(
            "{},{},{},{}",
            self.iterations,
            BASE64.encode(&self.salt),
            BASE64.encode(self.stored_key),
            BASE64.encode(self.server_key)
        )
    }

    /// Whether `password` yields these keys, i.e. the `{SCRAM-SHA-256}` scheme's check.
    pub(crate) fn matches_password(&self, password: &[u8]) -> bool {
        let derived = ScramKeys::derive(password, &self.salt, self.iterations);
        let stored = derived.stored_key.ct_eq(&self.stored_key);
        let server = derived.server_key.ct_eq(&self.server_key);
        (stored & server).into()
    }
}

fn decode_key(b64: &str) -> Option<[u8; KEY_LEN]> {
    BASE64.decode(b64).ok()?.try_into().ok()
}

pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; KEY_LEN] {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dovecot_form_round_trips() {
        let keys = ScramKeys::derive(b"pencil", b"salt", 4096);
        let parsed = ScramKeys::parse_dovecot(&keys.to_dovecot()).unwrap();
        assert_eq!(parsed.to_dovecot(), keys.to_dovecot());
        assert!(parsed.matches_password(b"pencil"));
        assert!(!parsed.matches_password(b"pencil!"));
    }

    #[test]
    fn malformed_dovecot_forms_are_errors() {
        for bad in [
            "",
            "4096",
            "0,c2FsdA==,AAAA,AAAA",
            "x,c2FsdA==,AAAA,AAAA",
            "4096,,AAAA,AAAA",
            "4096,c2FsdA==,AAAA,AAAA",
            "4096,c2FsdA==,AAAA,AAAA,extra",
        ] {
            assert!(ScramKeys::parse_dovecot(bad).is_err(), "{bad:?}");
        }
    }
}
