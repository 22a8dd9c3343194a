//! Two-step sign-in for the account page: a TOTP secret (RFC 6238: HMAC-SHA-1, 30-second
//! steps, six digits, as every authenticator app reads an `otpauth://` QR code), and ten
//! one-time recovery codes kept as SHA-256 digests.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{random, AuthError};

const STEP_SECS: u64 = 30;
const DIGITS: u32 = 6;
/// Codes one step either side are taken: the phone's clock may be a little off.
const SKEW_STEPS: u64 = 1;
pub const RECOVERY_CODES: usize = 10;
const RECOVERY_CODE_LEN: usize = 10;

/// A TOTP secret: 160 random bits, as RFC 4226 recommends for HMAC-SHA-1.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret([u8; 20]);

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret(…)")
    }
}

impl TotpSecret {
    pub fn generate() -> Self {
        TotpSecret(random::bytes())
    }

    /// As stored: 40 hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(text: &str) -> Result<Self, AuthError> {
        let mut secret = [0u8; 20];
        hex::decode_to_slice(text, &mut secret)
            .map_err(|_| AuthError::UserDb("a two-step secret is not 40 hex digits".into()))?;
        Ok(TotpSecret(secret))
    }

    /// The secret's 20 bytes, as a database column keeps them.
    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, AuthError> {
        <[u8; 20]>::try_from(bytes)
            .map(TotpSecret)
            .map_err(|_| AuthError::UserDb("a two-step secret is not 20 bytes".into()))
    }

    /// As people type it into an app: RFC 4648 base32, no padding.
    pub fn base32(&self) -> String {
        const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        let mut out = String::new();
        let (mut buffer, mut bits) = (0u32, 0);
        for &byte in &self.0 {
            buffer = (buffer << 8) | u32::from(byte);
            bits += 8;
            while bits >= 5 {
                bits -= 5;
                out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
            }
        }
        if bits > 0 {
            out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
        }
        out
    }

    /// The URI an authenticator app reads from the QR code.
    pub fn otpauth_uri(&self, issuer: &str, account: &str) -> String {
        let issuer = uri_escape(issuer);
        format!(
            "otpauth://totp/{issuer}:{}?secret={}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
            uri_escape(account),
            self.base32()
        )
    }

    /// The code of time step `step`, `digits` long (RFC 4226's dynamic truncation).
    fn code(&self, step: u64, digits: u32) -> u32 {
        // HMAC takes keys of any length.
        let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(&self.0) else {
            return u32::MAX;
        };
        mac.update(&step.to_be_bytes());
        let hash = mac.finalize().into_bytes();
        let offset = usize::from(hash[19] & 0x0f);
        let binary = u32::from_be_bytes([
            hash[offset] & 0x7f,
            hash[offset + 1],
            hash[offset + 2],
            hash[offset + 3],
        ]);
        binary % 10u32.pow(digits)
    }

    /// The step whose code `code` is, among those around `now` and after `used` (a code
    /// logs in once: one seen over a shoulder cannot be typed again).
    pub fn matching_step(&self, code: &str, now: SystemTime, used: Option<u64>) -> Option<u64> {
        let code = code.trim().replace(' ', "");
        if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let current = step_at(now);
        (current.saturating_sub(SKEW_STEPS)..=current + SKEW_STEPS)
            .filter(|step| used.is_none_or(|used| *step > used))
            .find(|&step| {
                let expected = format!("{:06}", self.code(step, DIGITS));
                bool::from(expected.as_bytes().ct_eq(code.as_bytes()))
            })
    }
}

fn step_at(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs() / STEP_SECS)
}

fn uri_escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'@' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A recovery code's stored form.
pub fn recovery_digest(code: &str) -> [u8; 32] {
    let normalized: String = code
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_lowercase)
        .collect();
    Sha256::digest(normalized.as_bytes()).into()
}

/// Ten new recovery codes (ten letters each, about 47 bits), to show once.
pub fn new_recovery_codes() -> Vec<String> {
    (0..RECOVERY_CODES)
        .map(|_| random::lowercase_letters(RECOVERY_CODE_LEN))
        .collect()
}

/// A user's second step, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwoStep {
    pub secret: TotpSecret,
    /// The last time step whose code signed in.
    pub used_step: Option<u64>,
    /// The digests of the recovery codes not used yet.
    pub recovery: Vec<[u8; 32]>,
}

impl TwoStep {
    /// Takes `code` (a TOTP code or a recovery code) at `now`: whether it is right; `self`
    /// then records its use (the step, or the recovery code gone).
    pub fn take(&mut self, code: &str, now: SystemTime) -> bool {
        if let Some(step) = self.secret.matching_step(code, now, self.used_step) {
            self.used_step = Some(step);
            return true;
        }
        let digest = recovery_digest(code);
        let before = self.recovery.len();
        self.recovery
            .retain(|stored| !bool::from(stored.ct_eq(&digest)));
        self.recovery.len() != before
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc_6238_sha1_test_vectors() {
        let secret = TotpSecret(*b"12345678901234567890");
        for (time, code) in [
            (59u64, 94_287_082u32),
            (1_111_111_109, 7_081_804),
            (1_111_111_111, 14_050_471),
            (1_234_567_890, 89_005_924),
            (2_000_000_000, 69_279_037),
            (20_000_000_000, 65_353_130),
        ] {
            assert_eq!(secret.code(time / STEP_SECS, 8), code, "T = {time}");
        }
        assert_eq!(secret.base32(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    }

    #[test]
    fn codes_are_taken_once_with_a_step_of_skew() {
        let secret = TotpSecret::generate();
        let now = UNIX_EPOCH + Duration::from_secs(1_796_419_140);
        let step = step_at(now);
        let code = |s: u64| format!("{:06}", secret.code(s, DIGITS));
        assert_eq!(secret.matching_step(&code(step), now, None), Some(step));
        assert_eq!(
            secret.matching_step(&code(step - 1), now, None),
            Some(step - 1)
        );
        assert_eq!(secret.matching_step(&code(step - 2), now, None), None);
        let mut two_step = TwoStep {
            secret: secret.clone(),
            used_step: None,
            recovery: vec![recovery_digest("abcdefghij")],
        };
        assert!(two_step.take(&code(step), now));
        assert!(!two_step.take(&code(step), now), "a code logs in once");
        assert!(!two_step.take("12345", now));
        assert!(two_step.take("ABCDE FGHIJ", now));
        assert!(
            !two_step.take("abcdefghij", now),
            "a recovery code logs in once"
        );
        assert_eq!(TotpSecret::from_hex(&secret.to_hex()).unwrap(), secret);
    }
}
