//! ARGON2ID and ARGON2I, stored as PHC strings (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`).

use argon2::password_hash::{PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::random;
use crate::AuthError;

#[derive(Clone)]
pub(super) struct Argon2Hash(String);

impl Argon2Hash {
    pub(super) fn parse(data: &str, argon2id: bool) -> Result<Self, String> {
        let phc = argon2::PasswordHash::new(data).map_err(|e| e.to_string())?;
        let expected = algorithm(argon2id);
        if phc.algorithm != expected.ident() {
            return Err(format!("expected a ${expected}$ string"));
        }
        if phc.salt.is_none() || phc.hash.is_none() {
            return Err("salt or hash missing".into());
        }
        Params::try_from(&phc).map_err(|e| e.to_string())?;
        Ok(Argon2Hash(data.to_string()))
    }

    /// The PHC string carries algorithm, version and cost, so a default `Argon2` can check it.
    pub(super) fn verify(&self, password: &[u8]) -> bool {
        argon2::PasswordHash::new(&self.0)
            .is_ok_and(|phc| Argon2::default().verify_password(password, &phc).is_ok())
    }
}

fn algorithm(argon2id: bool) -> Algorithm {
    if argon2id {
        Algorithm::Argon2id
    } else {
        Algorithm::Argon2i
    }
}

/// The argon2 crate's default cost (19 MiB, 2 passes), OWASP's recommendation.
pub(super) fn generate(password: &[u8], argon2id: bool) -> Result<String, AuthError> {
    let salt = SaltString::encode_b64(&random::bytes::<16>())
        .map_err(|e| AuthError::Hashing(e.to_string()))?;
    Argon2::new(algorithm(argon2id), Version::V0x13, Params::default())
        .hash_password(password, &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| AuthError::Hashing(e.to_string()))
}
