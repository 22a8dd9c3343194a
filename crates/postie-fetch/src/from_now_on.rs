//! `postie fetch --from-now-on NAME`: start with the mail that arrives from now on. Every
//! message on the server now is recorded in the journal as fetched, without downloading it,
//! and left on the server for good (whatever `keep` says: postie never read it, so it is not
//! postie's to delete). Needs UIDL: without it a message can only be known by its content.

use crate::config::Account;
use crate::engine::{self, RunOptions};
use crate::error::FetchError;
use crate::login;
use crate::state::State;

/// Records the messages on the server; returns how many were new to the journal.
pub fn from_now_on(account: &Account, opts: &RunOptions) -> Result<usize, FetchError> {
    let mut state = State::open(&opts.state_dir, &account.name)?;
    let (mut conn, _, stages) = engine::connect(account, &opts.state_dir)?;
    let listed = engine::listing(&mut conn, &stages);
    conn.session.quit();
    let _ = login::reply(&mut conn, "QUIT");
    conn.close();
    let Some(uidls) = listed?.0 else {
        return Err(FetchError::NoUidl(format!(
            "{}: the server does not support UIDL, so postie cannot recognise these messages later without downloading them; --from-now-on needs UIDL",
            account.name
        )));
    };
    let new: Vec<&str> = uidls
        .values()
        .map(String::as_str)
        .filter(|key| state.done(key).is_none())
        .collect();
    state.record_ignored(&new, opts.now)?;
    Ok(new.len())
}
