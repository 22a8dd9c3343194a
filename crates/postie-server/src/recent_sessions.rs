//! The last POP3 sessions of each user, for the account page's "recent activity": kept in
//! this process only (a restart forgets them; each front end knows its own), the last
//! [`KEPT_PER_USER`] per user.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

pub const KEPT_PER_USER: usize = 10;

/// One ended POP3 session of a user who logged in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentSession {
    pub ended: SystemTime,
    pub from: IpAddr,
    /// The app password's label, which names the client as the user named it; `None` for
    /// the account password or a token.
    pub app_password: Option<String>,
    /// The protocol and mechanism, e.g. `POP3 USER over TLS`.
    pub over: String,
    pub retrieved: u64,
    pub deleted: usize,
}

#[derive(Debug, Default)]
pub struct RecentSessions {
    by_user: Mutex<HashMap<String, VecDeque<RecentSession>>>,
}

impl RecentSessions {
    pub(crate) fn record(&self, user: &str, session: RecentSession) {
        let mut by_user = self.by_user.lock().unwrap_or_else(PoisonError::into_inner);
        let sessions = by_user.entry(user.to_owned()).or_default();
        if sessions.len() == KEPT_PER_USER {
            sessions.pop_front();
        }
        sessions.push_back(session);
    }

    /// `user`'s last sessions, the newest first.
    pub fn of(&self, user: &str) -> Vec<RecentSession> {
        let by_user = self.by_user.lock().unwrap_or_else(PoisonError::into_inner);
        by_user
            .get(user)
            .map(|sessions| sessions.iter().rev().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_ten_per_user_newest_first() {
        let recent = RecentSessions::default();
        for n in 0..12 {
            let session = RecentSession {
                ended: SystemTime::UNIX_EPOCH,
                from: IpAddr::from([127, 0, 0, 1]),
                app_password: None,
                over: "POP3 USER".into(),
                retrieved: n,
                deleted: 0,
            };
            recent.record("alice", session);
        }
        let kept = recent.of("alice");
        assert_eq!(kept.len(), KEPT_PER_USER);
        assert_eq!(kept[0].retrieved, 11);
        assert_eq!(kept[9].retrieved, 2);
        assert!(recent.of("bob").is_empty());
    }
}
