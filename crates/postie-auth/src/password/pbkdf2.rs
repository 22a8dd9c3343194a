//! Dovecot's PBKDF2 scheme: `$1$<salt>$<rounds>$<hex key>`, PBKDF2-HMAC-SHA1 with a 20-byte
//! key and the salt used as its literal characters (Dovecot's password-scheme-pbkdf2.c).

use sha1::Sha1;
use subtle::ConstantTimeEq;

use crate::random;

const KEY_LEN: usize = 20;
const SALT_LEN: usize = 16;
/// Dovecot's default, kept so generated hashes look like Dovecot's own.
const ROUNDS: u32 = 5000;

#[derive(Clone)]
pub(super) struct DovecotPbkdf2 {
    salt: String,
    rounds: u32,
    key: [u8; KEY_LEN],
}

impl DovecotPbkdf2 {
    pub(super) fn parse(data: &str) -> Result<Self, String> {
        let fields: Vec<&str> = data.split('$').collect();
        let ["", "1", salt, rounds, key] = fields[..] else {
            return Err("expected $1$<salt>$<rounds>$<hex>".into());
        };
        let rounds = rounds
            .parse()
            .ok()
            .filter(|&n| n > 0)
            .ok_or("rounds is not a positive number")?;
        let key = hex::decode(key)
            .ok()
            .and_then(|key| <[u8; KEY_LEN]>::try_from(key).ok())
            .ok_or("key is not 40 hex digits")?;
        Ok(DovecotPbkdf2 {
            salt: salt.to_string(),
            rounds,
            key,
        })
    }

    pub(super) fn verify(&self, password: &[u8]) -> bool {
        derive(password, &self.salt, self.rounds)
            .ct_eq(&self.key)
            .into()
    }
}

fn derive(password: &[u8], salt: &str, rounds: u32) -> [u8; KEY_LEN] {
    let mut key = [0u8; KEY_LEN];
    pbkdf2::pbkdf2_hmac::<Sha1>(password, salt.as_bytes(), rounds, &mut key);
    key
}

pub(super) fn generate(password: &[u8]) -> String {
    let salt = random::crypt_salt(SALT_LEN);
    let key = derive(password, &salt, ROUNDS);
    format!("$1${salt}${ROUNDS}${}", hex::encode(key))
}
