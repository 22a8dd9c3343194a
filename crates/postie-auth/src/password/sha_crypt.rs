//! SHA256-CRYPT (`$5$`) and SHA512-CRYPT (`$6$`), Drepper's SHA-crypt as in glibc.

use sha_crypt::{Sha256Params, Sha512Params, ROUNDS_DEFAULT, ROUNDS_MAX, ROUNDS_MIN};
use subtle::ConstantTimeEq;

use crate::random;
use crate::AuthError;

const SALT_LEN: usize = 16;

#[derive(Clone)]
pub(super) struct ShaCrypt {
    sha512: bool,
    rounds: usize,
    salt: String,
    encoded: String,
}

impl ShaCrypt {
    /// `$6$[rounds=N$]salt$hash`.
    pub(super) fn parse(data: &str, sha512: bool) -> Result<Self, String> {
        let id = if sha512 { "$6$" } else { "$5$" };
        let rest = data
            .strip_prefix(id)
            .ok_or_else(|| format!("does not start with {id}"))?;
        let (rounds, rest) = match rest.strip_prefix("rounds=") {
            Some(rest) => {
                let (rounds, rest) = rest.split_once('$').ok_or("missing salt")?;
                let rounds: usize = rounds
                    .parse()
                    .map_err(|_| "rounds= is not a number".to_string())?;
                // glibc clamps out-of-range round counts rather than refusing them.
                (rounds.clamp(ROUNDS_MIN, ROUNDS_MAX), rest)
            }
            None => (ROUNDS_DEFAULT, rest),
        };
        let (salt, encoded) = rest.split_once('$').ok_or("missing hash")?;
        let expected_len = if sha512 { 86 } else { 43 };
        if encoded.len() != expected_len || !encoded.bytes().all(random::is_crypt_salt_char) {
            return Err(format!(
                "hash part must be {expected_len} crypt base64 characters"
            ));
        }
        Ok(ShaCrypt {
            sha512,
            rounds,
            salt: salt.to_string(),
            encoded: encoded.to_string(),
        })
    }

    pub(super) fn verify(&self, password: &[u8]) -> bool {
        match compute(password, &self.salt, self.rounds, self.sha512) {
            Some(computed) => computed.as_bytes().ct_eq(self.encoded.as_bytes()).into(),
            None => false,
        }
    }
}

fn compute(password: &[u8], salt: &str, rounds: usize, sha512: bool) -> Option<String> {
    if sha512 {
        let params = Sha512Params::new(rounds).ok()?;
        sha_crypt::sha512_crypt_b64(password, salt.as_bytes(), &params).ok()
    } else {
        let params = Sha256Params::new(rounds).ok()?;
        sha_crypt::sha256_crypt_b64(password, salt.as_bytes(), &params).ok()
    }
}

/// Default rounds, which crypt(3) writes without a `rounds=` field, as Dovecot does.
pub(super) fn generate(password: &[u8], sha512: bool) -> Result<String, AuthError> {
    let salt = random::crypt_salt(SALT_LEN);
    let encoded = compute(password, &salt, ROUNDS_DEFAULT, sha512)
        .ok_or_else(|| AuthError::Hashing("SHA-crypt failed".into()))?;
    let id = if sha512 { 6 } else { 5 };
    Ok(format!("${id}${salt}${encoded}"))
}
