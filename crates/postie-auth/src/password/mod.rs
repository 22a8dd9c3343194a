//! Stored passwords in Dovecot's `{SCHEME}data` form: parsing, checking and generating.

mod argon2;
mod bcrypt;
mod pbkdf2;
mod salted_sha;
mod sha_crypt;

use std::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::random;
use crate::scram_keys::{self, ScramKeys};
use crate::{AuthError, Scheme};
use postie_types::Secret;

/// Longer passwords are refused outright: SHA-crypt's cost grows with the square of the
/// password length, so an unbounded one would let a client burn CPU at will.
pub use postie_types::limits::MAX_PASSWORD_LEN;

/// A parsed stored password. `Debug` shows the scheme only.
#[derive(Clone)]
pub struct PasswordHash {
    scheme: Scheme,
    kind: Kind,
    /// SHA-256 of the stored text: what [`PasswordHash::stamp`] gives.
    stamp: [u8; 32],
}

#[derive(Clone)]
enum Kind {
    Plain(Secret),
    ShaCrypt(sha_crypt::ShaCrypt),
    Bcrypt(bcrypt::Bcrypt),
    Argon2(argon2::Argon2Hash),
    SaltedSha(salted_sha::SaltedSha),
    Pbkdf2(pbkdf2::DovecotPbkdf2),
    Scram(ScramKeys),
}

impl PasswordHash {
    /// Parses `{SCHEME}data`. Without a `{SCHEME}` prefix, or with `{CRYPT}`, the data is taken
    /// as a crypt(3) string (Dovecot's default scheme) and its `$id$` decides the scheme.
    pub fn parse(entry: &str) -> Result<Self, AuthError> {
        let mut hash = Self::parse_entry(entry)?;
        hash.stamp = Sha256::digest(entry.as_bytes()).into();
        Ok(hash)
    }

    /// Changes whenever the stored password does (a new salt even for the same password):
    /// what a sign-in remembers, to end its session when the password is changed.
    pub fn stamp(&self) -> [u8; 32] {
        self.stamp
    }

    fn parse_entry(entry: &str) -> Result<Self, AuthError> {
        let Some(rest) = entry.strip_prefix('{') else {
            return Self::parse_crypt(entry);
        };
        let (name, data) = rest
            .split_once('}')
            .ok_or_else(|| AuthError::MalformedHash("'{' without a closing '}'".into()))?;
        if name.eq_ignore_ascii_case("CRYPT") {
            return Self::parse_crypt(data);
        }
        Self::parse_data(name.parse()?, data)
    }

    fn parse_crypt(data: &str) -> Result<Self, AuthError> {
        let scheme = if data.starts_with("$6$") {
            Scheme::Sha512Crypt
        } else if data.starts_with("$5$") {
            Scheme::Sha256Crypt
        } else if ["$2y$", "$2b$", "$2a$"]
            .iter()
            .any(|id| data.starts_with(id))
        {
            Scheme::BlfCrypt
        } else if data.starts_with("$argon2id$") {
            Scheme::Argon2id
        } else if data.starts_with("$argon2i$") {
            Scheme::Argon2i
        } else {
            return Err(AuthError::MalformedHash(
                "no {SCHEME} prefix and not a supported crypt string ($6$, $5$, $2y$, $argon2id$, ...)"
                    .into(),
            ));
        };
        Self::parse_data(scheme, data)
    }

    fn parse_data(scheme: Scheme, data: &str) -> Result<Self, AuthError> {
        let kind = match scheme {
            Scheme::Plain => Ok(Kind::Plain(Secret::new(data.as_bytes().to_vec()))),
            Scheme::Sha512Crypt | Scheme::Sha256Crypt => {
                sha_crypt::ShaCrypt::parse(data, scheme == Scheme::Sha512Crypt).map(Kind::ShaCrypt)
            }
            Scheme::BlfCrypt => bcrypt::Bcrypt::parse(data).map(Kind::Bcrypt),
            Scheme::Argon2id | Scheme::Argon2i => {
                argon2::Argon2Hash::parse(data, scheme == Scheme::Argon2id).map(Kind::Argon2)
            }
            Scheme::Ssha256 | Scheme::Ssha512 => {
                salted_sha::SaltedSha::parse(data, scheme == Scheme::Ssha512).map(Kind::SaltedSha)
            }
            Scheme::Pbkdf2 => pbkdf2::DovecotPbkdf2::parse(data).map(Kind::Pbkdf2),
            Scheme::ScramSha256 => ScramKeys::parse_dovecot(data).map(Kind::Scram),
        }
        .map_err(|reason| AuthError::MalformedHash(format!("{scheme}: {reason}")))?;
        Ok(PasswordHash {
            scheme,
            kind,
            stamp: [0; 32],
        })
    }

    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// Whether `password` matches. Blocking: the slow schemes take tens of milliseconds on
    /// purpose.
    pub fn verify(&self, password: &[u8]) -> bool {
        if password.len() > MAX_PASSWORD_LEN {
            return false;
        }
        match &self.kind {
            // Digests first, so the comparison time does not reveal the stored length.
            Kind::Plain(stored) => Sha256::digest(stored.expose())
                .ct_eq(&Sha256::digest(password))
                .into(),
            Kind::ShaCrypt(hash) => hash.verify(password),
            Kind::Bcrypt(hash) => hash.verify(password),
            Kind::Argon2(hash) => hash.verify(password),
            Kind::SaltedSha(hash) => hash.verify(password),
            Kind::Pbkdf2(hash) => hash.verify(password),
            Kind::Scram(keys) => keys.matches_password(password),
        }
    }

    /// The cleartext, for the mechanisms that need it (APOP, SCRAM on the fly).
    pub(crate) fn plaintext(&self) -> Option<&[u8]> {
        match &self.kind {
            Kind::Plain(secret) => Some(secret.expose()),
            _ => None,
        }
    }

    pub(crate) fn scram_keys(&self) -> Option<&ScramKeys> {
        match &self.kind {
            Kind::Scram(keys) => Some(keys),
            _ => None,
        }
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordHash")
            .field("scheme", &self.scheme)
            .finish_non_exhaustive()
    }
}

/// Hashes `password` with a fresh random salt, giving `{SCHEME}data` ready for a passwd-file.
pub fn hash_password(password: &[u8], scheme: Scheme) -> Result<String, AuthError> {
    if password.len() > MAX_PASSWORD_LEN {
        return Err(AuthError::InvalidPassword("longer than 1024 bytes"));
    }
    let data = match scheme {
        Scheme::Plain => plain_data(password)?,
        Scheme::Sha512Crypt | Scheme::Sha256Crypt => {
            sha_crypt::generate(password, scheme == Scheme::Sha512Crypt)?
        }
        Scheme::BlfCrypt => bcrypt::generate(password)?,
        Scheme::Argon2id | Scheme::Argon2i => {
            argon2::generate(password, scheme == Scheme::Argon2id)?
        }
        Scheme::Ssha256 | Scheme::Ssha512 => {
            salted_sha::generate(password, scheme == Scheme::Ssha512)
        }
        Scheme::Pbkdf2 => pbkdf2::generate(password),
        Scheme::ScramSha256 => ScramKeys::derive(
            password,
            &random::bytes::<16>(),
            scram_keys::DEFAULT_ITERATIONS,
        )
        .to_dovecot(),
    };
    Ok(format!("{{{scheme}}}{data}"))
}

/// A cleartext password has to survive being a passwd-file field.
fn plain_data(password: &[u8]) -> Result<String, AuthError> {
    let text = std::str::from_utf8(password)
        .map_err(|_| AuthError::InvalidPassword("PLAIN passwords must be UTF-8"))?;
    if text.contains(':') || text.chars().any(char::is_control) {
        return Err(AuthError::InvalidPassword(
            "PLAIN passwords cannot hold ':' or control characters",
        ));
    }
    Ok(text.to_string())
}
