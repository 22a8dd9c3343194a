//! BLF-CRYPT: bcrypt, `$2y$` as Dovecot writes it, `$2b$` and `$2a$` as other tools do.

use crate::AuthError;

/// bcrypt's own recommended default; Dovecot's 5 is far too cheap for today's hardware.
const COST: u32 = bcrypt::DEFAULT_COST;

/// Only costs the bcrypt crate accepts, so a stored hash can never fail at check time.
const COSTS: std::ops::RangeInclusive<u32> = 4..=31;

#[derive(Clone)]
pub(super) struct Bcrypt(String);

impl Bcrypt {
    /// `$2y$NN$` + 22 salt characters + 31 hash characters.
    pub(super) fn parse(data: &str) -> Result<Self, String> {
        let fields: Vec<&str> = data.split('$').collect();
        let ["", "2y" | "2b" | "2a", cost, rest] = fields[..] else {
            return Err("expected $2y$NN$<53 characters>".into());
        };
        let cost_ok = cost.len() == 2 && cost.parse::<u32>().is_ok_and(|c| COSTS.contains(&c));
        if !cost_ok {
            return Err(format!(
                "cost {cost:?} is not a two-digit number in 04..=31"
            ));
        }
        if rest.len() != 53
            || !rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/')
        {
            return Err("salt and hash must be 53 bcrypt base64 characters".into());
        }
        Ok(Bcrypt(data.to_string()))
    }

    pub(super) fn verify(&self, password: &[u8]) -> bool {
        bcrypt::verify(password, &self.0).unwrap_or(false)
    }
}

/// Refuses passwords bcrypt would silently cut at 72 bytes, so no one is misled about what
/// protects their account.
pub(super) fn generate(password: &[u8]) -> Result<String, AuthError> {
    match bcrypt::non_truncating_hash_with_result(password, COST) {
        Ok(parts) => Ok(parts.format_for_version(bcrypt::Version::TwoY)),
        Err(bcrypt::BcryptError::Truncation(_)) => Err(AuthError::InvalidPassword(
            "BLF-CRYPT only uses the first 72 bytes; choose a shorter password or another scheme",
        )),
        Err(e) => Err(AuthError::Hashing(e.to_string())),
    }
}
