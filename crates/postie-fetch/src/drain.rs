//! A run of one account: sessions until the server has nothing new. Some servers (Gmail)
//! list only a window of the mailbox per session, about 250 messages, and show the next
//! ones at the next login; a run that stopped after one session would leave the rest for
//! the next run, and a big mailbox would take days to come down. So after a session in
//! which every message listed was new and stored, postie logs in again, up to
//! `max_sessions_per_run` sessions, and stops at the first session that brings nothing
//! new. A server that lists everything costs at most one more login, and only after a
//! session that fetched every message it listed (a delete-after-fetch account with new
//! mail); a server announcing LOGIN-DELAY is never logged into twice.

use crate::config::Account;
use crate::engine::{self, RunOptions, Summary};
use crate::error::FetchError;

/// Fetches `account`: one session, then more while each brings only new mail.
pub fn fetch(account: &Account, opts: &RunOptions) -> Result<Summary, FetchError> {
    let mut total = engine::fetch(account, opts)?;
    let again = RunOptions {
        reset_state: false,
        ..opts.clone()
    };
    let mut last = total.clone();
    while total.sessions < account.max_sessions_per_run && brought_only_new_mail(&last) {
        last = engine::fetch(account, &again)?;
        add(&mut total, &last);
    }
    Ok(total)
}

/// Whether the session listed messages and every one of them was new and stored: the
/// server may have more that it did not list.
fn brought_only_new_mail(session: &Summary) -> bool {
    session.listed > 0
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
    fn only_a_session_of_new_mail_calls_for_another() {
        let session = |listed, fetched, kept| Summary {
            listed,
            fetched,
            kept,
            sessions: 1,
            ..Summary::default()
        };
        assert!(brought_only_new_mail(&session(50, 50, 0)));
        assert!(!brought_only_new_mail(&session(0, 0, 0)));
        assert!(!brought_only_new_mail(&session(60, 10, 50)));
        let mut delayed = session(50, 50, 0);
        delayed.login_delay = Some(std::time::Duration::from_secs(900));
        assert!(!brought_only_new_mail(&delayed));
        let mut total = session(50, 50, 0);
        add(&mut total, &session(20, 20, 0));
        assert_eq!((total.sessions, total.fetched, total.listed), (2, 70, 20));
    }
}
