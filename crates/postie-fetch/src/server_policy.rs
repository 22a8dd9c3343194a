//! What a server announces in CAPA about mail and logins (RFC 2449): EXPIRE, the days it
//! keeps a message once downloaded (0: it deletes it, whatever the client says; NEVER), and
//! LOGIN-DELAY, the seconds it wants between logins. Shown by `--list`; a conflict with the
//! account's settings is a warning on every run; the daemon never polls an account sooner
//! than its server's LOGIN-DELAY.

use std::time::Duration;

use postie_proto::client::ServerCapabilities;

use crate::config::{Account, Retention};

/// The server's EXPIRE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expire {
    Never,
    Days(u32),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerPolicy {
    pub expire: Option<Expire>,
    pub login_delay: Option<Duration>,
}

/// The number at the start of a CAPA argument (`900`, `30 USER`).
fn leading_number(argument: &str) -> Option<u32> {
    argument.split_ascii_whitespace().next()?.parse().ok()
}

impl ServerPolicy {
    /// From the capabilities last read (after login, where the values are the user's own).
    /// An argument that is not a number or NEVER is ignored, as the RFC leaves no other.
    pub fn from_capabilities(capabilities: Option<&ServerCapabilities>) -> ServerPolicy {
        let Some(capabilities) = capabilities else {
            return ServerPolicy::default();
        };
        let expire = capabilities.expire.as_deref().and_then(|argument| {
            if argument
                .split_ascii_whitespace()
                .next()
                .is_some_and(|w| w.eq_ignore_ascii_case("never"))
            {
                Some(Expire::Never)
            } else {
                leading_number(argument).map(Expire::Days)
            }
        });
        let login_delay = capabilities
            .login_delay
            .as_deref()
            .and_then(leading_number)
            .filter(|&secs| secs > 0)
            .map(|secs| Duration::from_secs(u64::from(secs)));
        ServerPolicy {
            expire,
            login_delay,
        }
    }

    /// `EXPIRE 0, LOGIN-DELAY 900 s`, or `None` when the server announced neither.
    pub fn describe(&self) -> Option<String> {
        let mut parts = Vec::new();
        match self.expire {
            Some(Expire::Never) => parts.push("EXPIRE NEVER (keeps downloaded mail)".to_owned()),
            Some(Expire::Days(0)) => {
                parts.push("EXPIRE 0 (deletes each message once downloaded)".to_owned())
            }
            Some(Expire::Days(days)) => parts.push(format!(
                "EXPIRE {days} (deletes downloaded mail after {days} days)"
            )),
            None => {}
        }
        if let Some(delay) = self.login_delay {
            parts.push(format!(
                "LOGIN-DELAY {} s (no login sooner)",
                delay.as_secs()
            ));
        }
        (!parts.is_empty()).then(|| parts.join(", "))
    }

    /// Where the account asks for what the server says it will not do.
    pub fn warnings(&self, account: &Account) -> Vec<String> {
        let mut out = Vec::new();
        match (self.expire, account.retention) {
            (Some(Expire::Days(0)), Retention::Keep | Retention::KeepDays(_)) => out.push(
                "the server announces EXPIRE 0: it deletes each message once downloaded, so the account's keep (or delete_after_days) cannot keep mail there".to_owned(),
            ),
            (Some(Expire::Days(days)), Retention::KeepDays(wanted)) if days < wanted => {
                out.push(format!(
                    "the server announces EXPIRE {days}: it deletes downloaded mail after {days} days, sooner than delete_after_days = {wanted}"
                ))
            }
            _ => {}
        }
        if let (Some(delay), Some(interval)) = (self.login_delay, account.interval) {
            if interval < delay {
                out.push(format!(
                    "the server announces LOGIN-DELAY {} s, longer than interval = {} s: polls of this account wait for the server's delay",
                    delay.as_secs(),
                    interval.as_secs()
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(expire: Option<&str>, login_delay: Option<&str>) -> ServerPolicy {
        let capabilities = ServerCapabilities {
            expire: expire.map(str::to_owned),
            login_delay: login_delay.map(str::to_owned),
            ..ServerCapabilities::default()
        };
        ServerPolicy::from_capabilities(Some(&capabilities))
    }

    #[test]
    fn capa_arguments() {
        assert_eq!(policy(Some("0"), None).expire, Some(Expire::Days(0)));
        assert_eq!(policy(Some("30 USER"), None).expire, Some(Expire::Days(30)));
        assert_eq!(policy(Some("NEVER"), None).expire, Some(Expire::Never));
        assert_eq!(policy(Some("soon"), None).expire, None);
        assert_eq!(
            policy(None, Some("900 USER")).login_delay,
            Some(Duration::from_secs(900))
        );
        assert_eq!(policy(None, Some("0")).login_delay, None);
        assert_eq!(
            ServerPolicy::from_capabilities(None),
            ServerPolicy::default()
        );
        assert_eq!(ServerPolicy::default().describe(), None);
        assert_eq!(
            policy(Some("0"), Some("60")).describe().unwrap(),
            "EXPIRE 0 (deletes each message once downloaded), LOGIN-DELAY 60 s (no login sooner)"
        );
    }
}
