use std::fmt;
use std::str::FromStr;

use crate::AuthError;

/// A password scheme, named as Dovecot names it in `{SCHEME}data`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Scheme {
    Plain,
    Sha512Crypt,
    Sha256Crypt,
    BlfCrypt,
    #[default]
    Argon2id,
    Argon2i,
    Ssha256,
    Ssha512,
    Pbkdf2,
    ScramSha256,
}

impl Scheme {
    /// Every scheme, strongest-by-default first, for `--scheme` help texts.
    pub const ALL: [Scheme; 10] = [
        Scheme::Argon2id,
        Scheme::Argon2i,
        Scheme::BlfCrypt,
        Scheme::Sha512Crypt,
        Scheme::Sha256Crypt,
        Scheme::ScramSha256,
        Scheme::Pbkdf2,
        Scheme::Ssha512,
        Scheme::Ssha256,
        Scheme::Plain,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Plain => "PLAIN",
            Scheme::Sha512Crypt => "SHA512-CRYPT",
            Scheme::Sha256Crypt => "SHA256-CRYPT",
            Scheme::BlfCrypt => "BLF-CRYPT",
            Scheme::Argon2id => "ARGON2ID",
            Scheme::Argon2i => "ARGON2I",
            Scheme::Ssha256 => "SSHA256",
            Scheme::Ssha512 => "SSHA512",
            Scheme::Pbkdf2 => "PBKDF2",
            Scheme::ScramSha256 => "SCRAM-SHA-256",
        }
    }
}

impl FromStr for Scheme {
    type Err = AuthError;

    /// Case-insensitive, like Dovecot. `CLEARTEXT` is Dovecot's other name for `PLAIN`.
    /// `CRYPT` is not a scheme here: it names whatever the `$id$` of the hash says, so it is
    /// resolved by [`PasswordHash::parse`](crate::PasswordHash::parse) instead.
    fn from_str(name: &str) -> Result<Self, AuthError> {
        if name.eq_ignore_ascii_case("CLEARTEXT") {
            return Ok(Scheme::Plain);
        }
        Scheme::ALL
            .into_iter()
            .find(|scheme| scheme.as_str().eq_ignore_ascii_case(name))
            .ok_or_else(|| AuthError::UnknownScheme(name.to_string()))
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_case_insensitively() {
        for scheme in Scheme::ALL {
            assert_eq!(scheme.as_str().parse::<Scheme>().unwrap(), scheme);
            assert_eq!(
                scheme.as_str().to_lowercase().parse::<Scheme>().unwrap(),
                scheme
            );
        }
        assert_eq!("cleartext".parse::<Scheme>().unwrap(), Scheme::Plain);
        assert!("CRYPT".parse::<Scheme>().is_err());
        assert!("MD5".parse::<Scheme>().is_err());
        assert_eq!(Scheme::default(), Scheme::Argon2id);
    }
}
