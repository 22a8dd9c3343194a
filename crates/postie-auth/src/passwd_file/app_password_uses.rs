//! The last use of each app password of a passwd-file's users, written by the server into
//! its `state_dir` (`app-password-uses`): the passwd-file's folder is the operator's and may
//! be read-only to the server (systemd's `ProtectSystem=strict` makes `/etc` so), while the
//! state folder is the server's own. One line per app password, tabs between the fields: the
//! user, the password's key ([`AppPasswordDigest::key`], so a new password under a revoked
//! one's label starts unused), the time in Unix seconds, the address, the mechanism.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::app_passwords::{unix_seconds, unix_time};
use super::edit::edit;
use crate::{AppPasswordUse, AuthError};

/// The user and the password's key.
pub(crate) type UseKey = (String, String);

pub(crate) fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("app-password-uses")
}

/// Every use recorded; a missing file has none, a line that does not parse is skipped (it
/// is only a record of the past, never a reason to refuse a login or a listing).
pub(crate) fn read(path: &Path) -> Result<HashMap<UseKey, AppPasswordUse>, AuthError> {
    let contents = match fs::read(path) {
        Ok(contents) => contents,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(e) => return Err(AuthError::io(path, e)),
    };
    Ok(contents
        .split(|&b| b == b'\n')
        .filter_map(parse_line)
        .collect())
}

fn parse_line(line: &[u8]) -> Option<(UseKey, AppPasswordUse)> {
    let line = std::str::from_utf8(line).ok()?;
    let [user, key, at, from, over] = line.split('\t').collect::<Vec<_>>()[..] else {
        return None;
    };
    let usage = AppPasswordUse {
        at: unix_time(at).ok()?,
        from: from.parse::<IpAddr>().ok()?,
        over: over.to_owned(),
    };
    Some(((user.to_owned(), key.to_owned()), usage))
}

/// Writes `usage` as the last use of `user`'s password `key`, creating the state folder and
/// the file as needed.
pub(crate) fn record(
    path: &Path,
    user: &str,
    key: &str,
    usage: &AppPasswordUse,
) -> Result<(), AuthError> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| AuthError::io(dir, e))?;
    }
    let line = format!(
        "{user}\t{key}\t{}\t{}\t{}",
        unix_seconds(usage.at),
        usage.from,
        usage.over.replace(['\t', '\n'], " ")
    )
    .into_bytes();
    let prefix = format!("{user}\t{key}\t").into_bytes();
    edit(path, |lines| {
        match lines.iter_mut().find(|old| old.starts_with(&prefix)) {
            Some(old) => *old = line,
            None => lines.push(line),
        }
        (true, ())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn uses_are_replaced_per_password_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = path(&dir.path().join("state"));
        assert!(read(&path).unwrap().is_empty());
        let usage = |secs, over: &str| AppPasswordUse {
            at: UNIX_EPOCH + Duration::from_secs(secs),
            from: "2001:db8::1".parse().unwrap(),
            over: over.into(),
        };
        record(&path, "alice", "k1", &usage(10, "POP3 USER")).unwrap();
        record(&path, "alice", "k2", &usage(20, "POP3 PLAIN")).unwrap();
        record(&path, "alice", "k1", &usage(30, "POP3 LOGIN\tover TLS")).unwrap();
        let uses = read(&path).unwrap();
        assert_eq!(uses.len(), 2);
        assert_eq!(
            uses[&("alice".into(), "k1".into())],
            usage(30, "POP3 LOGIN over TLS")
        );
        assert_eq!(
            uses[&("alice".into(), "k2".into())],
            usage(20, "POP3 PLAIN")
        );
    }
}
