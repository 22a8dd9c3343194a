//! Headers first, bodies later. A message over `max_size` is stored as a stub, its header
//! only, with a marker field on top (`X-Postie-Stub: account=NAME; uidl=UIDL; size=N`) so
//! that the stub can be found again wherever a mail program moved it between new/ and cur/.
//! `postie fetch --get NAME UIDL…`, or a run after `max_size` was raised, replaces the stub
//! with the whole message in the same place: the message is written to tmp/ and made durable,
//! `intent KEY stub TMPNAME` is journaled, tmp/ is renamed over the stub (atomic: a reader
//! sees the stub or the message, never neither), then `done KEY` (whole). A run killed after
//! the intent finishes the rename or finds it made, so a message is completed exactly once.
//! Only a Maildir can have a file replaced this way; other destinations keep their stubs.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use postie_proto::client::ClientEvent;
use postie_types::MsgNum;

use crate::config::Account;
use crate::conn::Connection;
use crate::dest::maildir::{sync_dir, unique_name};
use crate::dest::{DeliverTo, ToLf};
use crate::engine::{self, Action, Planned, RunOptions};
use crate::error::{FetchError, LocalContext};
use crate::state::{Done, State};

/// The marker field a stub begins with.
pub fn marker(account: &str, key: &str, size: u64) -> Vec<u8> {
    format!("X-Postie-Stub: account={account}; uidl={key}; size={size}\r\n").into_bytes()
}

/// The start of a stub's first line, up to the size (which only informs the reader).
fn marker_prefix(account: &str, key: &str) -> Vec<u8> {
    format!("X-Postie-Stub: account={account}; uidl={key};").into_bytes()
}

/// The Maildirs whose stubs can be completed: the account's `deliver_to` and those its rules
/// deliver to, when they are Maildirs.
fn stub_maildirs(account: &Account) -> Vec<&Path> {
    let mut out: Vec<&Path> = Vec::new();
    let destinations = std::iter::once(&account.deliver_to)
        .chain(account.rules.iter().flat_map(|rule| rule.destinations()));
    for destination in destinations {
        if let DeliverTo::Maildir(path) | DeliverTo::MaildirFolder(path) = destination {
            if !out.contains(&path.as_path()) {
                out.push(path);
            }
        }
    }
    out
}

/// The Maildir holding the stub of `key`, and the stub's file.
fn locate<'a>(
    maildirs: &[&'a Path],
    account: &str,
    key: &str,
) -> Result<Option<(&'a Path, PathBuf)>, FetchError> {
    for maildir in maildirs {
        if let Some(stub) = find_stub(maildir, account, key)? {
            return Ok(Some((maildir, stub)));
        }
    }
    Ok(None)
}

/// The file of the stub of `key`, in new/ or cur/.
fn find_stub(maildir: &Path, account: &str, key: &str) -> Result<Option<PathBuf>, FetchError> {
    let prefix = marker_prefix(account, key);
    for sub in ["new", "cur"] {
        let dir = maildir.join(sub);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).local("read", &dir),
        };
        for entry in entries {
            let path = entry.local("read", &dir)?.path();
            let mut start = Vec::with_capacity(prefix.len());
            // A file that vanished or cannot be read is not the stub looked for.
            let Ok(file) = File::open(&path) else {
                continue;
            };
            if file
                .take(prefix.len() as u64)
                .read_to_end(&mut start)
                .is_ok()
                && start == prefix
            {
                return Ok(Some(path));
            }
        }
    }
    Ok(None)
}

/// Renames the whole message over the stub, durably.
fn replace(tmp: &Path, stub: &Path) -> Result<(), FetchError> {
    fs::rename(tmp, stub).local("rename", tmp)?;
    sync_dir(stub.parent().unwrap_or(Path::new(".")))
}

/// Resolves the completions an interrupted run had journaled: each tmp/ file still there is
/// renamed over its stub; one gone was renamed already. Returns how many were completed.
pub fn recover(state: &mut State, account: &Account, now: u64) -> Result<u64, FetchError> {
    let maildirs = stub_maildirs(account);
    let mut completed = 0;
    for (key, receipt) in state.pending_intents() {
        let Some(name) = receipt.strip_prefix("stub ") else {
            continue;
        };
        // The whole message waits in the tmp/ of the stub's own Maildir, if anywhere.
        let waiting = maildirs
            .iter()
            .map(|maildir| (maildir, maildir.join("tmp").join(name)))
            .find(|(_, tmp)| tmp.exists());
        if let Some((maildir, tmp)) = waiting {
            match find_stub(maildir, &account.name, &key)? {
                Some(stub) => replace(&tmp, &stub)?,
                None => {
                    // The stub was deleted meanwhile: nothing to complete.
                    let _ = fs::remove_file(&tmp);
                    state.forget_intent(&key);
                    continue;
                }
            }
        }
        state.record_done(
            &key,
            Done {
                at: now,
                partial: false,
            },
        )?;
        completed += 1;
    }
    Ok(completed)
}

/// A file in tmp/ removed unless it was renamed.
struct TmpFile(PathBuf);

impl Drop for TmpFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// What became of one stub.
enum Outcome {
    Completed,
    /// No Maildir holds it any more (the user deleted it).
    StubGone,
    /// The run goes on without it.
    Problem(String),
}

/// Downloads message `msg` and puts it in place of its stub.
fn complete(
    conn: &mut Connection,
    state: &mut State,
    account: &Account,
    maildirs: &[&Path],
    msg: MsgNum,
    key: &str,
    now: u64,
) -> Result<Outcome, FetchError> {
    let Some((maildir, stub)) = locate(maildirs, &account.name, key)? else {
        return Ok(Outcome::StubGone);
    };
    let name = unique_name();
    let tmp = TmpFile(maildir.join("tmp").join(&name));
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp.0)
        .local("create", &tmp.0)?;
    let mut writer = ToLf::new(BufWriter::with_capacity(128 * 1024, file));
    conn.session.retr(msg);
    loop {
        match conn.event("downloading a message to complete its stub")? {
            ClientEvent::MessageStart { status, .. } if !status.ok => {
                return Ok(Outcome::Problem(format!(
                    "message {key}: the server would not send it: {status}"
                )));
            }
            ClientEvent::MessageStart { .. } if account.received_header => {
                let host = conn.target().host.clone();
                let fields = crate::trace::fields(&host, &account.name, Some(key), now);
                writer.write_all(&fields).local("write", &tmp.0)?;
            }
            ClientEvent::MessageStart { .. } => {}
            ClientEvent::MessageData(data) => writer.write_all(&data).local("write", &tmp.0)?,
            ClientEvent::MessageEnd { .. } => break,
            other => {
                return Err(FetchError::Protocol {
                    host: conn.target().host.clone(),
                    source: postie_proto::client::ClientError::Unsolicited(format!("{other:?}")),
                })
            }
        }
    }
    let file = writer
        .finish()
        .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
        .local("write", &tmp.0)?;
    file.sync_all().local("fsync", &tmp.0)?;
    state.record_intent(key, &format!("stub {name}"))?;
    // Renamed: the guard's removal finds nothing.
    replace(&tmp.0, &stub)?;
    state.record_done(
        key,
        Done {
            at: now,
            partial: false,
        },
    )?;
    Ok(Outcome::Completed)
}

/// What completing stubs did.
#[derive(Debug, Default)]
pub struct Completed {
    pub completed: u64,
    /// Stubs that could not be completed, and why.
    pub problems: Vec<String>,
}

/// Completes, during a fetch, the stubs whose messages fit `max_size` now (it was raised or
/// removed). Other destinations than a Maildir keep their stubs, and a stub the user deleted
/// stays deleted.
pub fn complete_fitting(
    conn: &mut Connection,
    state: &mut State,
    account: &Account,
    planned: &[Planned],
    now: u64,
) -> Result<Completed, FetchError> {
    let mut outcome = Completed::default();
    let maildirs = stub_maildirs(account);
    if maildirs.is_empty() {
        return Ok(outcome);
    }
    for p in planned {
        let Some(key) = &p.key else { continue };
        let is_stub = p.action == Action::Keep
            && state.done(key).is_some_and(|d| d.partial)
            && !state.ignored(key);
        if !is_stub || account.max_size.is_some_and(|max| p.size > max) {
            continue;
        }
        match complete(conn, state, account, &maildirs, p.msg, key, now)? {
            Outcome::Completed => outcome.completed += 1,
            Outcome::StubGone => {}
            Outcome::Problem(problem) => outcome.problems.push(problem),
        }
    }
    Ok(outcome)
}

/// `postie fetch --get NAME UIDL…`: the whole messages in place of their stubs.
pub fn get(
    account: &Account,
    opts: &RunOptions,
    uidls: &[String],
) -> Result<Completed, FetchError> {
    let maildirs = stub_maildirs(account);
    if maildirs.is_empty() {
        return Err(FetchError::Usage(format!(
            "{}: deliver_to is {} and no rule delivers to a Maildir; only stubs in a Maildir can be replaced by the whole message (an mbox would have to be rewritten, an MDA or LMTP server cannot take a message back). Raise max_size for new mail, or download the message with another client",
            account.name, account.deliver_to
        )));
    }
    let mut state = State::open(&opts.state_dir, &account.name)?;
    let mut outcome = Completed {
        completed: recover(&mut state, account, opts.now)?,
        problems: Vec::new(),
    };
    let (mut conn, _, stages) = engine::connect(account, &opts.state_dir)?;
    let (listed, _) = engine::listing(&mut conn, &stages)?;
    let listed = listed.unwrap_or_default();
    for uidl in uidls {
        let Some((&msg, _)) = listed.iter().find(|(_, u)| *u == uidl) else {
            outcome.problems.push(format!(
                "{uidl}: no such message on the server (postie fetch --list {} shows each UIDL)",
                account.name
            ));
            continue;
        };
        if !state.done(uidl).is_some_and(|d| d.partial) || state.ignored(uidl) {
            outcome.problems.push(format!(
                "{uidl}: not a stub (never fetched, fetched whole, or left alone by --from-now-on); nothing to complete"
            ));
            continue;
        }
        match complete(&mut conn, &mut state, account, &maildirs, msg, uidl, opts.now)? {
            Outcome::Completed => outcome.completed += 1,
            Outcome::StubGone => outcome.problems.push(format!(
                "{uidl}: its stub is in none of the account's Maildirs any more (deleted?); nothing replaced"
            )),
            Outcome::Problem(problem) => outcome.problems.push(problem),
        }
    }
    conn.session.quit();
    let _ = crate::login::reply(&mut conn, "QUIT");
    conn.close();
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stub_is_found_by_its_marker_wherever_it_was_moved() {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["new", "cur", "tmp"] {
            fs::create_dir(dir.path().join(sub)).unwrap();
        }
        let mut stub = marker("work", "u1", 900);
        stub.extend_from_slice(b"Subject: big\r\n\r\n");
        fs::write(dir.path().join("cur/1.x:2,S"), &stub).unwrap();
        fs::write(dir.path().join("new/2.x"), marker("work", "u10", 5)).unwrap();
        fs::write(dir.path().join("new/3.x"), b"Subject: other\n\n").unwrap();
        assert_eq!(
            find_stub(dir.path(), "work", "u1").unwrap(),
            Some(dir.path().join("cur/1.x:2,S"))
        );
        assert_eq!(find_stub(dir.path(), "home", "u1").unwrap(), None);
        assert_eq!(find_stub(dir.path(), "work", "u2").unwrap(), None);
    }
}
