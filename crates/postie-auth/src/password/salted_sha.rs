//! SSHA256 and SSHA512: base64 of digest(password || salt) || salt.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

use crate::random;

#[derive(Clone)]
pub(super) struct SaltedSha {
    sha512: bool,
    digest: Vec<u8>,
    salt: Vec<u8>,
}

impl SaltedSha {
    pub(super) fn parse(data: &str, sha512: bool) -> Result<Self, String> {
        let mut decoded = BASE64.decode(data).map_err(|_| "not base64".to_string())?;
        let digest_len = digest_len(sha512);
        // As in Dovecot, the salt may have any length but must not be empty.
        if decoded.len() <= digest_len {
            return Err("too short to hold a digest and a salt".into());
        }
        let salt = decoded.split_off(digest_len);
        Ok(SaltedSha {
            sha512,
            digest: decoded,
            salt,
        })
    }

    pub(super) fn verify(&self, password: &[u8]) -> bool {
        digest(password, &self.salt, self.sha512)
            .ct_eq(&self.digest)
            .into()
    }
}

fn digest_len(sha512: bool) -> usize {
    if sha512 {
        64
    } else {
        32
    }
}

fn digest(password: &[u8], salt: &[u8], sha512: bool) -> Vec<u8> {
    if sha512 {
        Sha512::new()
            .chain_update(password)
            .chain_update(salt)
            .finalize()
            .to_vec()
    } else {
        Sha256::new()
            .chain_update(password)
            .chain_update(salt)
            .finalize()
            .to_vec()
    }
}

pub(super) fn generate(password: &[u8], sha512: bool) -> String {
    let salt = random::bytes::<16>();
    let mut stored = digest(password, &salt, sha512);
    stored.extend_from_slice(&salt);
    BASE64.encode(stored)
}
