//! Quotas: the server-wide default from `[mail]`, overridden per user by Dovecot's
//! `userdb_quota_rule=*:storage=512M` extra field in the passwd-file. The store enforces
//! them, inside the delivery.

use postie_store::Quota;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuotaRuleError {
    #[error("quota rule {0:?}: expected *:storage=<size> or *:messages=<count>")]
    Syntax(String),
    #[error("quota rule {0:?}: the size is not a number with an optional unit (B, K, M, G, T)")]
    Size(String),
}

/// The quota of a user whose passwd-file line has these extra fields. Dovecot's
/// `userdb_quota_rule` (and the bare `quota_rule`) for the mailbox `*` override the defaults
/// limit by limit; rules for other mailboxes (`Trash:…`) concern folders postie does not
/// deliver into, and are ignored.
pub fn quota_for_user(defaults: Quota, extra: &[String]) -> Result<Quota, QuotaRuleError> {
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
                None if limit == "ignore" || limit == "noenforcing" => return Ok(Quota::default()),
                _ => return Err(QuotaRuleError::Syntax(rule.to_owned())),
            }
        }
    }
    Ok(quota)
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
        assert_eq!(quota_for_user(defaults, &[]), Ok(defaults));
        assert_eq!(
            quota_for_user(defaults, &extra(&["userdb_quota_rule=*:storage=512M"])),
            Ok(Quota {
                bytes: 512 << 20,
                messages: 5
            })
        );
        assert_eq!(
            quota_for_user(
                defaults,
                &extra(&["home=/x", "quota_rule=*:storage=0:messages=10"])
            ),
            Ok(Quota {
                bytes: 0,
                messages: 10
            })
        );
        assert_eq!(
            quota_for_user(defaults, &extra(&["userdb_quota_rule=Trash:storage=+10M"])),
            Ok(defaults)
        );
        assert!(quota_for_user(defaults, &extra(&["userdb_quota_rule=*:storage=lots"])).is_err());
        assert!(quota_for_user(defaults, &extra(&["userdb_quota_rule=nonsense"])).is_err());
    }

    proptest! {
        #[test]
        fn parsing_never_panics(text in "\\PC{0,20}") {
            let _ = parse_size(&text);
            let _ = quota_for_user(Quota::default(), &[format!("userdb_quota_rule={text}")]);
        }
    }
}
