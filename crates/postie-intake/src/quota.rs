//! Quotas: the server-wide default from `[mail]`, overridden per user by Dovecot's
//! `userdb_quota_rule=*:storage=512M` extra field in the passwd-file.

use postie_store::Usage;

/// Limits for one user; 0 means no limit, as in Dovecot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Quota {
    /// Octets of all messages as stored.
    pub bytes: u64,
    pub messages: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuotaRuleError {
    #[error("quota rule {0:?}: expected *:storage=<size> or *:messages=<count>")]
    Syntax(String),
    #[error("quota rule {0:?}: the size is not a number with an optional unit (B, K, M, G, T)")]
    Size(String),
}

impl Quota {
    /// The quota of a user whose passwd-file line has these extra fields. Dovecot's
    /// `userdb_quota_rule` (and the bare `quota_rule`) for the mailbox `*` override the
    /// defaults limit by limit; rules for other mailboxes (`Trash:…`) concern folders postie
    /// does not deliver into, and are ignored.
    pub fn for_user(defaults: Quota, extra: &[String]) -> Result<Quota, QuotaRuleError> {
        let mut quota = defaults;
        for field in extra {
            let Some(rule) = field
                .strip_prefix("userdb_quota_rule=")
                .or_else(|| field.strip_prefix("quota_rule="))
            else {
                continue;
            };
            let (mailbox, limits) = rule
                .split_once(':')
                .ok_or_else(|| QuotaRuleError::Syntax(rule.to_owned()))?;
            if mailbox != "*" {
                continue;
            }
            for limit in limits.split(':') {
                match limit.split_once('=') {
                    Some(("storage" | "bytes", size)) => quota.bytes = parse_size(size)?,
                    Some(("messages", count)) => quota.messages = parse_size(count)?,
                    None if limit == "ignore" || limit == "noenforcing" => {
                        return Ok(Quota::default())
                    }
                    _ => return Err(QuotaRuleError::Syntax(rule.to_owned())),
                }
            }
        }
        Ok(quota)
    }

    /// Whether adding one message of `size` octets to `usage` goes over this quota.
    pub fn exceeded_by(&self, usage: Usage, size: u64) -> bool {
        let bytes = self.bytes > 0 && usage.bytes.saturating_add(size) > self.bytes;
        let messages = self.messages > 0 && usage.messages.saturating_add(1) > self.messages;
        bytes || messages
    }
}

/// Dovecot's sizes: a number with an optional unit B, K, M, G or T (powers of 1024, any case,
/// optionally followed by B as in `512MB`).
pub fn parse_size(text: &str) -> Result<u64, QuotaRuleError> {
    let bad = || QuotaRuleError::Size(text.to_owned());
    let upper = text.trim().to_ascii_uppercase();
    let digits_end = upper
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(upper.len());
    let (digits, unit) = upper.split_at(digits_end);
    let number: u64 = digits.parse().map_err(|_| bad())?;
    let shift = match unit
        .strip_suffix('B')
        .filter(|u| !u.is_empty())
        .unwrap_or(unit)
    {
        "" | "B" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return Err(bad()),
    };
    number.checked_mul(1u64 << shift).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn extra(fields: &[&str]) -> Vec<String> {
        fields.iter().map(|f| f.to_string()).collect()
    }

    #[test]
    fn sizes_with_units() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("1234"), Ok(1234));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("10k"), Ok(10 << 10));
        assert_eq!(parse_size("2GB"), Ok(2 << 30));
        assert_eq!(parse_size("7B"), Ok(7));
        assert!(parse_size("1.5G").is_err());
        assert!(parse_size("M").is_err());
        assert!(parse_size("99999999999T").is_err());
    }

    #[test]
    fn passwd_rules_override_defaults() {
        let defaults = Quota {
            bytes: 1000,
            messages: 5,
        };
        assert_eq!(Quota::for_user(defaults, &[]), Ok(defaults));
        assert_eq!(
            Quota::for_user(defaults, &extra(&["userdb_quota_rule=*:storage=512M"])),
            Ok(Quota {
                bytes: 512 << 20,
                messages: 5
            })
        );
        assert_eq!(
            Quota::for_user(
                defaults,
                &extra(&["home=/x", "quota_rule=*:storage=0:messages=10"])
            ),
            Ok(Quota {
                bytes: 0,
                messages: 10
            })
        );
        assert_eq!(
            Quota::for_user(defaults, &extra(&["userdb_quota_rule=Trash:storage=+10M"])),
            Ok(defaults)
        );
        assert!(Quota::for_user(defaults, &extra(&["userdb_quota_rule=*:storage=lots"])).is_err());
        assert!(Quota::for_user(defaults, &extra(&["userdb_quota_rule=nonsense"])).is_err());
    }

    #[test]
    fn limits() {
        let quota = Quota {
            bytes: 100,
            messages: 2,
        };
        let usage = |bytes, messages| Usage { bytes, messages };
        assert!(!quota.exceeded_by(usage(50, 0), 50));
        assert!(quota.exceeded_by(usage(50, 0), 51));
        assert!(quota.exceeded_by(usage(0, 2), 1));
        assert!(!Quota::default().exceeded_by(usage(u64::MAX, u64::MAX), u64::MAX));
    }

    proptest! {
        #[test]
        fn parsing_never_panics(text in "\\PC{0,20}") {
            let _ = parse_size(&text);
            let _ = Quota::for_user(Quota::default(), &[format!("userdb_quota_rule={text}")]);
        }
    }
}
