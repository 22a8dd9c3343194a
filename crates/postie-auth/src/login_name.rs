//! The name a client logs in with may ask for a view of the maildrop before the user name,
//! as Gmail's POP3 has it: `recent:alice` is alice, seeing her last 30 days of mail whether
//! or not another client already downloaded it. The password checks look the user up
//! without the prefix; the session opens the view it names.

/// What a login name asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginName<'a> {
    /// The user name proper, what the database is asked for.
    pub user: &'a str,
    /// `recent:` was given.
    pub recent: bool,
}

const RECENT: &str = "recent:";

impl<'a> LoginName<'a> {
    /// Case-insensitive in the prefix, as Gmail is; a bare `recent:` names no user.
    pub fn parse(given: &'a str) -> Self {
        match given.get(..RECENT.len()) {
            Some(prefix) if prefix.eq_ignore_ascii_case(RECENT) && given.len() > RECENT.len() => {
                LoginName {
                    user: &given[RECENT.len()..],
                    recent: true,
                }
            }
            _ => LoginName {
                user: given,
                recent: false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recent_prefix_is_taken_off() {
        assert_eq!(
            LoginName::parse("recent:alice"),
            LoginName {
                user: "alice",
                recent: true
            }
        );
        assert!(LoginName::parse("Recent:alice").recent);
        for plain in ["alice", "recent:", "recentalice", "récent:alice", ""] {
            let name = LoginName::parse(plain);
            assert_eq!((name.user, name.recent), (plain, false), "{plain:?}");
        }
    }
}
