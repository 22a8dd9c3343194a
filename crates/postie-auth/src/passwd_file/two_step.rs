//! The second steps of a passwd-file's users, in a file of their own beside it
//! (`<passwd-file>.two-step`), edited like the app passwords' file: under its lock, through a
//! temporary file renamed over it. Unlike that file, the server writes it too (each code
//! taken, so that it logs in once), always under the lock.
//!
//! One line per user, fields separated by tabs: the user, the TOTP secret in 40 hex digits,
//! the last time step that signed in (or `-`), and the SHA-256 digests of the unused recovery
//! codes in hex, separated by commas.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::edit::edit;
use super::validate_user_name;
use crate::two_step::{TotpSecret, TwoStep};
use crate::AuthError;

/// Where the second steps of the users in `passwd_file` are kept.
pub fn two_step_path(passwd_file: &Path) -> PathBuf {
    let mut name = OsString::from(passwd_file.as_os_str());
    name.push(".two-step");
    PathBuf::from(name)
}

fn is_users(line: &[u8], user: &str) -> bool {
    line.split(|&b| b == b'\t').next() == Some(user.as_bytes())
}

fn parse(line: &[u8]) -> Result<TwoStep, AuthError> {
    let bad = || AuthError::UserDb("a malformed line in the two-step file".into());
    let text = std::str::from_utf8(line).map_err(|_| bad())?;
    let mut fields = text.split('\t').skip(1);
    let (Some(secret), Some(used), Some(recovery), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(bad());
    };
    let used_step = match used {
        "-" => None,
        step => Some(step.parse().map_err(|_| bad())?),
    };
    let recovery = recovery
        .split(',')
        .filter(|d| !d.is_empty())
        .map(|digest| {
            let mut bytes = [0u8; 32];
            hex::decode_to_slice(digest, &mut bytes).map_err(|_| bad())?;
            Ok(bytes)
        })
        .collect::<Result<_, AuthError>>()?;
    Ok(TwoStep {
        secret: TotpSecret::from_hex(secret)?,
        used_step,
        recovery,
    })
}

fn line(user: &str, two_step: &TwoStep) -> Vec<u8> {
    let used = two_step
        .used_step
        .map_or_else(|| "-".to_owned(), |step| step.to_string());
    let recovery: Vec<String> = two_step.recovery.iter().map(hex::encode).collect();
    format!(
        "{user}\t{}\t{used}\t{}",
        two_step.secret.to_hex(),
        recovery.join(",")
    )
    .into_bytes()
}

/// `user`'s second step, if it is on. Read without the lock (writers rename a whole new file
/// into place), so a server whose folder is read-only to it can still read it.
pub fn read_two_step(passwd_file: &Path, user: &str) -> Result<Option<TwoStep>, AuthError> {
    validate_user_name(user)?;
    let path = two_step_path(passwd_file);
    let contents = match fs::read(&path) {
        Ok(contents) => contents,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(AuthError::io(&path, e)),
    };
    contents
        .split(|&b| b == b'\n')
        .find(|line| is_users(line, user))
        .map(parse)
        .transpose()
}

/// Turns `user`'s second step on (replacing any) or, with `None`, off.
pub fn set_two_step(
    passwd_file: &Path,
    user: &str,
    two_step: Option<&TwoStep>,
) -> Result<(), AuthError> {
    validate_user_name(user)?;
    edit(&two_step_path(passwd_file), |lines| {
        let before = lines.len();
        lines.retain(|l| !is_users(l, user));
        let removed = lines.len() != before;
        if let Some(two_step) = two_step {
            lines.push(line(user, two_step));
        }
        (removed || two_step.is_some(), ())
    })
}

/// Takes `code` for `user` at `now`, under the file's lock: whether it was right (and is now
/// used up). A user without a second step gets `false`.
pub fn take_two_step_code(
    passwd_file: &Path,
    user: &str,
    code: &str,
    now: SystemTime,
) -> Result<bool, AuthError> {
    validate_user_name(user)?;
    edit(&two_step_path(passwd_file), |lines| {
        let Some(index) = lines.iter().position(|l| is_users(l, user)) else {
            return (false, Ok(false));
        };
        let mut two_step = match parse(&lines[index]) {
            Ok(two_step) => two_step,
            Err(error) => return (false, Err(error)),
        };
        if !two_step.take(code, now) {
            return (false, Ok(false));
        }
        lines[index] = line(user, &two_step);
        (true, Ok(true))
    })?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::two_step::recovery_digest;

    #[test]
    fn on_taken_once_and_off() {
        let dir = tempfile::tempdir().unwrap();
        let passwd = dir.path().join("users");
        assert_eq!(read_two_step(&passwd, "alice").unwrap(), None);
        let two_step = TwoStep {
            secret: TotpSecret::generate(),
            used_step: None,
            recovery: vec![recovery_digest("abcdefghij"), recovery_digest("klmnopqrst")],
        };
        set_two_step(&passwd, "alice", Some(&two_step)).unwrap();
        set_two_step(&passwd, "bob", Some(&two_step)).unwrap();
        assert_eq!(
            read_two_step(&passwd, "alice").unwrap(),
            Some(two_step.clone())
        );
        let now = SystemTime::now();
        assert!(take_two_step_code(&passwd, "alice", "abcdefghij", now).unwrap());
        assert!(!take_two_step_code(&passwd, "alice", "abcdefghij", now).unwrap());
        assert_eq!(
            read_two_step(&passwd, "alice")
                .unwrap()
                .unwrap()
                .recovery
                .len(),
            1
        );
        assert_eq!(
            read_two_step(&passwd, "bob")
                .unwrap()
                .unwrap()
                .recovery
                .len(),
            2
        );
        set_two_step(&passwd, "alice", None).unwrap();
        assert_eq!(read_two_step(&passwd, "alice").unwrap(), None);
        assert!(!take_two_step_code(&passwd, "alice", "klmnopqrst", now).unwrap());
    }
}
