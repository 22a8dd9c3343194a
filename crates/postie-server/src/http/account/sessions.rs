//! Signed-in sessions, kept in this process: a random 256-bit id in the cookie, only its
//! SHA-256 here (what the server holds cannot be replayed as a cookie), ending after
//! [`IDLE_LIMIT`] without a request, [`AGE_LIMIT`] in all, at sign-out, or when the user's
//! password changes.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use postie_auth::TotpSecret;
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};

pub(crate) const IDLE_LIMIT: Duration = Duration::from_secs(15 * 60);
pub(crate) const AGE_LIMIT: Duration = Duration::from_secs(8 * 3600);
/// Sessions held at most: past it the oldest go, so a flood of sign-ins cannot fill memory.
const MAX_SESSIONS: usize = 10_000;

/// How far a session got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stage {
    /// The password was right; the second step's code is still to come.
    AwaitingCode,
    SignedIn,
}

/// A signed-in user (or one half-way, [`Stage::AwaitingCode`]).
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub(crate) user: String,
    pub(crate) stage: Stage,
    /// A second step being set up: the secret shown, not yet confirmed by a code.
    pub(crate) enrolling: Option<TotpSecret>,
    /// The synchronizer token every form of this session carries.
    pub(crate) csrf: String,
    /// The password's stamp at sign-in.
    pub(crate) stamp: [u8; 32],
    started: Instant,
    last_seen: Instant,
}

#[derive(Debug, Default)]
pub(crate) struct Sessions {
    by_digest: Mutex<HashMap<[u8; 32], Session>>,
}

/// 32 random bytes from the operating system, as hex.
pub(crate) fn random_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn digest(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

impl Sessions {
    /// Starts a session for `user`; returns the id for the cookie.
    pub(crate) fn start(
        &self,
        user: String,
        stamp: [u8; 32],
        stage: Stage,
        now: Instant,
    ) -> String {
        let id = random_token();
        let session = Session {
            user,
            stage,
            enrolling: None,
            csrf: random_token(),
            stamp,
            started: now,
            last_seen: now,
        };
        let mut sessions = self
            .by_digest
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        sessions.retain(|_, s| live(s, now));
        if sessions.len() >= MAX_SESSIONS {
            if let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.started)
                .map(|(d, _)| *d)
            {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(digest(&id), session);
        id
    }

    /// The live session `id` names, its idle time restarted.
    pub(crate) fn touch(&self, id: &str, now: Instant) -> Option<Session> {
        let key = digest(id);
        let mut sessions = self
            .by_digest
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let session = sessions.get_mut(&key)?;
        if !live(session, now) {
            sessions.remove(&key);
            return None;
        }
        session.last_seen = now;
        Some(session.clone())
    }

    /// Changes the live session `id`.
    pub(crate) fn update(&self, id: &str, change: impl FnOnce(&mut Session)) {
        let mut sessions = self
            .by_digest
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(session) = sessions.get_mut(&digest(id)) {
            change(session);
        }
    }

    pub(crate) fn end(&self, id: &str) {
        let mut sessions = self
            .by_digest
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        sessions.remove(&digest(id));
    }

    /// Ends every session of `user` (the password changed).
    pub(crate) fn end_user(&self, user: &str) {
        let mut sessions = self
            .by_digest
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        sessions.retain(|_, s| s.user != user);
    }
}

fn live(session: &Session, now: Instant) -> bool {
    now.saturating_duration_since(session.last_seen) < IDLE_LIMIT
        && now.saturating_duration_since(session.started) < AGE_LIMIT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_end_when_idle_too_long_old_or_signed_out() {
        let sessions = Sessions::default();
        let t0 = Instant::now();
        let id = sessions.start("alice".into(), [0; 32], Stage::SignedIn, t0);
        assert_eq!(id.len(), 64);
        let minute = Duration::from_secs(60);
        assert!(sessions.touch(&id, t0 + 14 * minute).is_some());
        assert!(sessions.touch(&id, t0 + 28 * minute).is_some());
        assert!(
            sessions.touch(&id, t0 + 44 * minute).is_none(),
            "15 minutes idle"
        );

        let id = sessions.start("alice".into(), [0; 32], Stage::SignedIn, t0);
        let mut now = t0;
        while now < t0 + AGE_LIMIT - 10 * minute {
            now += 10 * minute;
            assert!(sessions.touch(&id, now).is_some());
        }
        assert!(
            sessions.touch(&id, t0 + AGE_LIMIT).is_none(),
            "8 hours in all"
        );

        let id = sessions.start("alice".into(), [0; 32], Stage::SignedIn, t0);
        let other = sessions.start("bob".into(), [0; 32], Stage::SignedIn, t0);
        sessions.end_user("alice");
        assert!(sessions.touch(&id, t0).is_none());
        sessions.end(&other);
        assert!(sessions.touch(&other, t0).is_none());
    }
}
