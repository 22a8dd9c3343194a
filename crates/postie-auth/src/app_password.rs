//! App passwords: generated passwords a user gives each mail client instead of the account's
//! own password, as Gmail, iCloud and Fastmail have them. Each has a label, can be revoked on
//! its own, and, once the user requires them, is the only password POP3 takes.
//!
//! They are stored as SHA-256 digests, not with the slow schemes of [`crate::PasswordHash`]:
//! a generated password carries 75 bits of randomness, far beyond what a slow hash protects,
//! and a fast digest lets a login compare against every app password of a user without paying
//! a deliberately slow hash for each.

use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{random, AuthError};

/// Letters in a generated app password: 26^16, about 75 bits.
const GENERATED_LEN: usize = 16;
/// Longest label: enough to name a device, short enough for a log line.
pub const MAX_LABEL_LEN: usize = 64;
/// A use within this long of the last recorded one, from the same place over the same
/// mechanism, is not written again: a phone polling every minute would otherwise cost a
/// write per login.
pub const USE_RECORD_INTERVAL: Duration = Duration::from_secs(60);

/// What the user database knows of one user's app passwords at login.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppPasswords {
    /// The account's own password is refused over POP3; only app passwords log in.
    pub required: bool,
    pub entries: Vec<AppPassword>,
}

/// One app password as a login checks it.
#[derive(Clone, PartialEq, Eq)]
pub struct AppPassword {
    pub label: String,
    pub digest: AppPasswordDigest,
}

impl fmt::Debug for AppPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppPassword")
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

impl AppPasswords {
    /// The label of the app password `password` is, if any. Every entry is compared in
    /// constant time, so the time taken does not tell how much of a guess matched.
    pub fn matching(&self, password: &[u8]) -> Option<&str> {
        let digest = AppPasswordDigest::of(password);
        let mut found = None;
        for entry in &self.entries {
            if bool::from(entry.digest.0.ct_eq(&digest.0)) && found.is_none() {
                found = Some(entry.label.as_str());
            }
        }
        found
    }
}

/// The stored form of an app password: SHA-256 of its letters, spaces left out (so the
/// grouped form a user may copy, `abcd efgh ijkl mnop`, is the same password).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AppPasswordDigest([u8; 32]);

impl AppPasswordDigest {
    const PREFIX: &'static str = "sha256:";

    pub fn of(password: &[u8]) -> Self {
        let mut hasher = Sha256::new();
        for part in password.split(|&b| b == b' ') {
            hasher.update(part);
        }
        AppPasswordDigest(hasher.finalize().into())
    }

    /// A short name for this password that reveals nothing usable: the first 8 octets of the
    /// digest, in hex.
    pub fn key(&self) -> String {
        hex::encode(&self.0[..8])
    }

    /// Reads the stored text form, `sha256:` and 64 hex digits.
    pub fn parse(stored: &str) -> Result<Self, AuthError> {
        let malformed = || AuthError::MalformedHash(format!("app password digest {stored:?}"));
        let hex_digits = stored.strip_prefix(Self::PREFIX).ok_or_else(malformed)?;
        let mut digest = [0u8; 32];
        hex::decode_to_slice(hex_digits, &mut digest).map_err(|_| malformed())?;
        Ok(AppPasswordDigest(digest))
    }
}

impl fmt::Display for AppPasswordDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", Self::PREFIX, hex::encode(self.0))
    }
}

impl fmt::Debug for AppPasswordDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AppPasswordDigest(..)")
    }
}

/// A new app password: its letters, shown to the user once, and what is stored.
pub struct NewAppPassword {
    pub password: String,
    pub digest: AppPasswordDigest,
}

impl NewAppPassword {
    /// Sixteen random lowercase letters: typeable on a phone, nothing to confuse.
    pub fn generate() -> Self {
        let letters = random::lowercase_letters(GENERATED_LEN);
        let digest = AppPasswordDigest::of(letters.as_bytes());
        NewAppPassword {
            password: letters,
            digest,
        }
    }
}

/// Checks a label for an app password: what the user names the client by.
pub fn validate_label(label: &str) -> Result<(), AuthError> {
    let reason = if label.trim().is_empty() {
        "it is empty"
    } else if label.len() > MAX_LABEL_LEN {
        "it is longer than 64 bytes"
    } else if label.chars().any(char::is_control) {
        "it holds control characters"
    } else if label != label.trim() {
        "it starts or ends with spaces"
    } else {
        return Ok(());
    };
    Err(AuthError::InvalidLabel {
        label: label.to_owned(),
        reason,
    })
}

/// One login by an app password: when, from where, over what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppPasswordUse {
    pub at: SystemTime,
    pub from: IpAddr,
    /// The protocol and mechanism, e.g. `POP3 PLAIN over TLS`.
    pub over: String,
}

impl AppPasswordUse {
    /// Whether `self` is worth writing down after `last`: a new place or mechanism, or the
    /// interval passed.
    pub fn worth_recording_after(&self, last: Option<&AppPasswordUse>) -> bool {
        match last {
            None => true,
            Some(last) => {
                last.from != self.from
                    || last.over != self.over
                    || self
                        .at
                        .duration_since(last.at)
                        .is_ok_and(|since| since >= USE_RECORD_INTERVAL)
            }
        }
    }
}

/// One app password as `list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppPasswordInfo {
    pub label: String,
    pub created: SystemTime,
    pub last_use: Option<AppPasswordUse>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_match_with_or_without_spaces() {
        let new = NewAppPassword::generate();
        assert_eq!(new.password.len(), 16);
        assert!(new.password.bytes().all(|b| b.is_ascii_lowercase()));
        let set = AppPasswords {
            required: false,
            entries: vec![AppPassword {
                label: "phone".into(),
                digest: new.digest,
            }],
        };
        assert_eq!(set.matching(new.password.as_bytes()), Some("phone"));
        let grouped = format!(
            "{} {} {} {}",
            &new.password[..4],
            &new.password[4..8],
            &new.password[8..12],
            &new.password[12..]
        );
        assert_eq!(set.matching(grouped.as_bytes()), Some("phone"));
        assert_eq!(set.matching(b"something else"), None);
        assert_ne!(NewAppPassword::generate().password, new.password);
    }

    #[test]
    fn digests_round_trip_and_bad_ones_are_refused() {
        let digest = AppPasswordDigest::of(b"abc");
        assert_eq!(
            AppPasswordDigest::parse(&digest.to_string()).unwrap(),
            digest
        );
        for bad in [
            "",
            "sha256:",
            "sha256:zz",
            "md5:00",
            &digest.to_string()[1..],
        ] {
            assert!(AppPasswordDigest::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn labels() {
        validate_label("phone").unwrap();
        validate_label("Alice's laptop (Thunderbird)").unwrap();
        for bad in ["", "  ", " phone", "a\nb", &"x".repeat(65)] {
            assert!(validate_label(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn uses_are_recorded_when_something_changed_or_a_minute_passed() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let last = AppPasswordUse {
            at,
            from: "192.0.2.1".parse().unwrap(),
            over: "POP3 PLAIN".into(),
        };
        let soon = AppPasswordUse {
            at: at + Duration::from_secs(5),
            ..last.clone()
        };
        assert!(soon.worth_recording_after(None));
        assert!(!soon.worth_recording_after(Some(&last)));
        let elsewhere = AppPasswordUse {
            from: "192.0.2.2".parse().unwrap(),
            ..soon.clone()
        };
        assert!(elsewhere.worth_recording_after(Some(&last)));
        let later = AppPasswordUse {
            at: at + USE_RECORD_INTERVAL,
            ..last.clone()
        };
        assert!(later.worth_recording_after(Some(&last)));
    }
}
