//! A run of one account: sessions until the server has nothing new. Some servers (Gmail)
//! list only a window of the mailbox per session, about 250 messages, and show the next
//! ones at the next login; a run that stopped after one session would leave the rest for
//! the next run, and a big mailbox would take days to come down. So after a session that
//! looks like a full window, postie logs in again, up to `max_sessions_per_run` sessions:
//! every message listed was new and stored, there were at least [`SMALLEST_WINDOW`] of
//! them, and no fewer than the session before listed (a shorter listing is the last
//! window). A daily run with a few new messages therefore logs in once; a server that lists
//! everything costs one more login only after a session of that many new messages, which
//! then lists nothing new. A server announcing LOGIN-DELAY is never logged into twice.

use crate::config::Account;
use crate::engine::{self, RunOptions, Summary};
use crate::error::FetchError;

/// Windows are hundreds of messages (Gmail: about 250); a listing shorter than this is
/// taken as the whole mailbox.
pub const SMALLEST_WINDOW: u64 = 25;

/// Fetches `account`: one session, then more while each brings only new mail.
pub fn fetch(account: &Account, opts: &RunOptions) -> Result<Summary, FetchError> {
    let mut total = engine::fetch(account, opts)?;
    let again = RunOptions {
        reset_state: false,
        ..opts.clone()
    };
    let mut previous_listed = 0;
    let mut last = total.clone();
    while total.sessions < account.max_sessions_per_run && full_window(&last, previous_listed) {
        previous_listed = last.listed;
        last = engine::fetch(account, &again)?;
        add(&mut total, &last);
    }
    Ok(total)
}

/// Whether the session looks like one window of a larger mailbox: the server may have
/// more that it did not list. `previous_listed` is what the session before listed (0 for
/// the first).
fn full_window(session: &Summary, previous_listed: u64) -> bool {
    session.listed >= SMALLEST_WINDOW.max(previous_listed)
        && session.fetched + session.headers_only == session.listed
        && session.problems.is_empty()
        && session.login_delay.is_none()
}

/// Adds a later session's counts to the run's.
fn add(total: &mut Summary, session: &Summary) {
    total.sessions += 1;
    total.listed = session.listed;
    total.fetched += session.fetched;
    total.bytes += session.bytes;
    total.headers_only += session.headers_only;
    total.deleted += session.deleted;
    total.kept = session.kept;
    total.skipped = session.skipped;
    total.left = session.left;
    total.recovered += session.recovered;
    total.completed += session.completed;
    total.problems.extend(session.problems.iter().cloned());
    total.subjects.extend(session.subjects.iter().cloned());
    total.elapsed += session.elapsed;
    for warning in &session.warnings {
        if !total.warnings.contains(warning) {
            total.warnings.push(warning.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_full_window_of_new_mail_calls_for_another_session() {
        let session = |listed, fetched, kept| Summary {
            listed,
            fetched,
            kept,
            sessions: 1,
            ..Summary::default()
        };
        assert!(full_window(&session(50, 50, 0), 0));
        assert!(full_window(&session(50, 50, 0), 50));
        assert!(!full_window(&session(0, 0, 0), 0));
        assert!(!full_window(&session(3, 3, 0), 0), "a few new messages");
        assert!(!full_window(&session(40, 40, 0), 50), "the last window");
        assert!(!full_window(&session(60, 10, 50), 0));
        let mut delayed = session(50, 50, 0);
        delayed.login_delay = Some(std::time::Duration::from_secs(900));
        assert!(!full_window(&delayed, 0));
        let mut total = session(50, 50, 0);
        add(&mut total, &session(20, 20, 0));
        assert_eq!((total.sessions, total.fetched, total.listed), (2, 70, 20));
    }
}
