//! Validated values at postie's edges, shared by the protocol core, authentication and
//! storage: once built, they need no re-checking.

#![forbid(unsafe_code)]

pub mod limits;
mod secret;
mod utc_time;

use std::fmt;
use std::num::NonZeroU32;

pub use secret::Secret;
pub use utc_time::UtcTime;

/// A message number as a client names it: 1-based and non-zero. Whether it lies within the
/// session's snapshot is checked against the snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct MsgNum(NonZeroU32);

impl MsgNum {
    /// Parses the decimal digits of a message number; no sign, no leading space, non-zero.
    pub fn parse(text: &[u8]) -> Option<MsgNum> {
        parse_decimal(text)
            .and_then(|n| u32::try_from(n).ok())
            .and_then(NonZeroU32::new)
            .map(MsgNum)
    }

    pub fn from_index(index: usize) -> Option<MsgNum> {
        u32::try_from(index + 1)
            .ok()
            .and_then(NonZeroU32::new)
            .map(MsgNum)
    }

    pub fn get(self) -> u32 {
        self.0.get()
    }

    /// The 0-based position in the snapshot.
    pub fn index(self) -> usize {
        self.0.get() as usize - 1
    }
}

impl fmt::Display for MsgNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Parses a non-negative decimal number of at most 19 digits.
pub fn parse_decimal(text: &[u8]) -> Option<u64> {
    if text.is_empty() || text.len() > 19 || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(text.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

/// A unique-id listing token: 1 to 70 octets in 0x21..=0x7E (RFC 1939 section 7).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Uidl(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UidlError {
    #[error("a UIDL must be 1 to 70 octets long, this one has {0}")]
    Length(usize),
    #[error("a UIDL may hold only printable ASCII without spaces (0x21-0x7E)")]
    Character,
}

impl Uidl {
    pub fn new(text: impl Into<String>) -> Result<Uidl, UidlError> {
        let text = text.into();
        if text.is_empty() || text.len() > 70 {
            return Err(UidlError::Length(text.len()));
        }
        if !text.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err(UidlError::Character);
        }
        Ok(Uidl(text))
    }

    /// The UIDL of message `uid` in a maildrop of `uidvalidity`, in Dovecot's default
    /// `pop3_uidl_format = %08Xu%08Xv` (lowercase, as Dovecot prints it), which every postie
    /// store uses so that clients keep their UIDLs when mail moves between stores.
    pub fn from_uid(uid: u32, uidvalidity: u32) -> Uidl {
        Uidl(format!("{uid:08x}{uidvalidity:08x}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Uidl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A login name: UTF-8 (RFC 6856), 1 to 255 octets, no control characters, no spaces.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserNameError {
    #[error("a user name must be 1 to 255 octets long")]
    Length,
    #[error("a user name must be UTF-8")]
    NotUtf8,
    #[error("a user name may not hold spaces or control characters")]
    Character,
}

impl UserName {
    pub fn parse(bytes: &[u8]) -> Result<UserName, UserNameError> {
        if bytes.is_empty() || bytes.len() > 255 {
            return Err(UserNameError::Length);
        }
        let text = std::str::from_utf8(bytes).map_err(|_| UserNameError::NotUtf8)?;
        if text.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(UserNameError::Character);
        }
        Ok(UserName(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_numbers() {
        assert_eq!(MsgNum::parse(b"1").map(MsgNum::index), Some(0));
        assert_eq!(
            MsgNum::parse(b"4294967295").map(MsgNum::get),
            Some(u32::MAX)
        );
        for bad in [
            &b"0"[..],
            b"",
            b"-1",
            b"+1",
            b" 1",
            b"1a",
            b"4294967296",
            b"99999999999999999999",
        ] {
            assert_eq!(MsgNum::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn uidl_bounds() {
        assert!(Uidl::new("a").is_ok());
        assert!(Uidl::new("~".repeat(70)).is_ok());
        assert_eq!(Uidl::new(""), Err(UidlError::Length(0)));
        assert_eq!(Uidl::new("x".repeat(71)), Err(UidlError::Length(71)));
        assert_eq!(Uidl::new("a b"), Err(UidlError::Character));
        assert_eq!(Uidl::new("é"), Err(UidlError::Character));
        assert_eq!(Uidl::from_uid(3, 0x6b08c998).as_str(), "000000036b08c998");
        assert_eq!(Uidl::from_uid(u32::MAX, u32::MAX).as_str().len(), 16);
    }

    #[test]
    fn user_names() {
        assert_eq!(UserName::parse("jösé".as_bytes()).unwrap().as_str(), "jösé");
        assert_eq!(UserName::parse(b"a\0b"), Err(UserNameError::Character));
        assert_eq!(UserName::parse(b"a b"), Err(UserNameError::Character));
        assert_eq!(UserName::parse(b"\xff"), Err(UserNameError::NotUtf8));
        assert_eq!(UserName::parse(b""), Err(UserNameError::Length));
    }
}
