//! Which local user an envelope address names.
//!
//! `user@domain` and `user+tag@domain` name the login `user`. Over SMTP the domain must be one
//! of ours (anything else would make postie an open relay); over LMTP and for `postie deliver`
//! the MTA in front has already decided the address is local, so any domain is taken, as
//! Dovecot's LMTP does with `%n`.

use postie_proto::smtp::{split_address, DeliveryError};

/// How an address reached postie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    Lmtp,
    Smtp,
    Local,
}

/// The login name an address names, before any user lookup: the local part without its
/// `+tag`. Errors when the address cannot be ours.
pub fn login_name(address: &[u8], door: Door, domains: &[String]) -> Result<String, DeliveryError> {
    let (local, domain) = split_address(address);
    if let Some(domain) = domain {
        let ours = domains
            .iter()
            .any(|d| d.as_bytes().eq_ignore_ascii_case(domain));
        if door == Door::Smtp && !ours {
            return Err(DeliveryError::RelayDenied);
        }
    }
    let local = std::str::from_utf8(local).map_err(|_| DeliveryError::UnknownUser)?;
    let user = local.split('+').next().unwrap_or(local);
    if user.is_empty() {
        return Err(DeliveryError::UnknownUser);
    }
    Ok(user.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domains() -> Vec<String> {
        vec!["example.org".into()]
    }

    #[test]
    fn local_parts_and_tags() {
        let name = |a: &[u8], door| login_name(a, door, &domains());
        assert_eq!(name(b"alice@example.org", Door::Smtp), Ok("alice".into()));
        assert_eq!(
            name(b"alice+news@EXAMPLE.org", Door::Smtp),
            Ok("alice".into())
        );
        assert_eq!(
            name(b"alice@other.net", Door::Smtp),
            Err(DeliveryError::RelayDenied)
        );
        assert_eq!(name(b"alice@other.net", Door::Lmtp), Ok("alice".into()));
        assert_eq!(name(b"postmaster", Door::Smtp), Ok("postmaster".into()));
        assert_eq!(
            name(b"+x@example.org", Door::Lmtp),
            Err(DeliveryError::UnknownUser)
        );
        assert_eq!(
            name(b"\xff@example.org", Door::Lmtp),
            Err(DeliveryError::UnknownUser)
        );
    }
}
