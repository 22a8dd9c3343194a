//! Fresh salts and nonces, all from the operating system's generator.

use rand::rngs::OsRng;
use rand::{Rng, RngCore};

/// The alphabet of crypt(3) salts, which Dovecot also uses for PBKDF2 salts.
const CRYPT_ALPHABET: &[u8; 64] =
    b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

pub(crate) fn bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    OsRng.fill_bytes(&mut out);
    out
}

pub(crate) fn crypt_salt(len: usize) -> String {
    (0..len)
        .map(|_| char::from(CRYPT_ALPHABET[OsRng.gen_range(0..CRYPT_ALPHABET.len())]))
        .collect()
}

/// Letters a to z, uniformly drawn.
pub(crate) fn lowercase_letters(len: usize) -> String {
    (0..len)
        .map(|_| char::from(b'a' + OsRng.gen_range(0..26u8)))
        .collect()
}

pub(crate) fn is_crypt_salt_char(c: u8) -> bool {
    CRYPT_ALPHABET.contains(&c)
}
