//! The app passwords of a passwd-file's users, in a file of their own beside it
//! (`<passwd-file>.app-passwords`), edited like the passwd-file: under its lock, through a
//! temporary file renamed over it, other lines kept byte for byte. Like the passwd-file, only
//! `postie user` writes it and the server only reads it: their last uses, which the server
//! writes, are kept in its `state_dir` (`app_password_uses.rs`).
//!
//! One line per app password, and one per user who requires them, fields separated by tabs
//! (labels cannot hold control characters, user names cannot hold whitespace):
//! `require` and the user; or `password`, the user, the label, `sha256:` and 64 hex digits,
//! and the time it was made in Unix seconds.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::app_password_uses;
use super::edit::edit;
use super::{list_users, validate_user_name};
use crate::app_password::{
    validate_label, AppPassword, AppPasswordDigest, AppPasswordInfo, AppPasswords,
};
use crate::AuthError;

const REQUIRE: &[u8] = b"require";
const PASSWORD: &[u8] = b"password";

/// Where the app passwords of the users in `passwd_file` are kept.
pub fn app_passwords_path(passwd_file: &Path) -> PathBuf {
    let mut name = OsString::from(passwd_file.as_os_str());
    name.push(".app-passwords");
    PathBuf::from(name)
}

/// The whole file, parsed: what logins check.
#[derive(Debug, Default)]
pub(crate) struct AppPasswordBook {
    by_user: HashMap<String, UserEntry>,
}

#[derive(Debug, Default)]
struct UserEntry {
    required: bool,
    passwords: Vec<Stored>,
}

#[derive(Debug)]
struct Stored {
    label: String,
    digest: AppPasswordDigest,
    created: SystemTime,
}

enum Line {
    Require {
        user: String,
    },
    Password {
        user: String,
        stored: Stored,
    },
    /// Blank or `#`.
    Comment,
}

impl AppPasswordBook {
    pub(crate) fn parse(path: &Path, contents: &[u8]) -> Result<Self, AuthError> {
        let mut book = AppPasswordBook::default();
        for (index, line) in contents.split(|&b| b == b'\n').enumerate() {
            let line = parse_line(line).map_err(|reason| AuthError::PasswdFile {
                path: path.to_path_buf(),
                line: index + 1,
                reason,
            })?;
            match line {
                Line::Require { user } => book.by_user.entry(user).or_default().required = true,
                Line::Password { user, stored } => {
                    book.by_user.entry(user).or_default().passwords.push(stored)
                }
                Line::Comment => {}
            }
        }
        Ok(book)
    }

    pub(crate) fn of_user(&self, user: &str) -> AppPasswords {
        let Some(entry) = self.by_user.get(user) else {
            return AppPasswords::default();
        };
        AppPasswords {
            required: entry.required,
            entries: entry
                .passwords
                .iter()
                .map(|stored| AppPassword {
                    label: stored.label.clone(),
                    digest: stored.digest,
                })
                .collect(),
        }
    }

    /// The digest of `user`'s app password `label`, which names it in the uses file.
    pub(crate) fn digest(&self, user: &str, label: &str) -> Option<AppPasswordDigest> {
        self.by_user
            .get(user)?
            .passwords
            .iter()
            .find(|stored| stored.label == label)
            .map(|stored| stored.digest)
    }
}

fn parse_line(line: &[u8]) -> Result<Line, String> {
    if line.iter().all(u8::is_ascii_whitespace) || line.starts_with(b"#") {
        return Ok(Line::Comment);
    }
    let line = std::str::from_utf8(line).map_err(|_| "not UTF-8".to_string())?;
    let fields: Vec<&str> = line.split('\t').collect();
    match fields.as_slice() {
        ["require", user] => Ok(Line::Require {
            user: (*user).to_owned(),
        }),
        ["password", user, label, digest, created] => Ok(Line::Password {
            user: (*user).to_owned(),
            stored: Stored {
                label: (*label).to_owned(),
                digest: AppPasswordDigest::parse(digest).map_err(|e| e.to_string())?,
                created: unix_time(created)?,
            },
        }),
        _ => Err(
            "expected `require<TAB>user` or `password<TAB>user<TAB>label<TAB>digest<TAB>created`"
                .into(),
        ),
    }
}

pub(super) fn unix_time(field: &str) -> Result<SystemTime, String> {
    field
        .parse::<u64>()
        .map(|seconds| UNIX_EPOCH + Duration::from_secs(seconds))
        .map_err(|_| format!("{field:?} is not a time in Unix seconds"))
}

pub(super) fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

fn password_line(user: &str, stored: &Stored) -> Vec<u8> {
    format!(
        "password\t{user}\t{}\t{}\t{}",
        stored.label,
        stored.digest,
        unix_seconds(stored.created)
    )
    .into_bytes()
}

/// Whether `line` is a line of `kind` for `user` (and, when given, `label`).
fn is_line(line: &[u8], kind: &[u8], user: &str, label: Option<&str>) -> bool {
    let mut fields = line.split(|&b| b == b'\t');
    fields.next() == Some(kind)
        && fields.next() == Some(user.as_bytes())
        && label.is_none_or(|label| fields.next() == Some(label.as_bytes()))
}

fn must_be_user(passwd_file: &Path, user: &str) -> Result<(), AuthError> {
    validate_user_name(user)?;
    if list_users(passwd_file)?.iter().any(|name| name == user) {
        Ok(())
    } else {
        Err(AuthError::NoSuchUser(user.to_owned()))
    }
}

/// Adds an app password for `user`, who must be in `passwd_file`; refuses a label in use.
pub fn add_app_password(
    passwd_file: &Path,
    user: &str,
    label: &str,
    digest: AppPasswordDigest,
    created: SystemTime,
) -> Result<(), AuthError> {
    must_be_user(passwd_file, user)?;
    validate_label(label)?;
    let stored = Stored {
        label: label.to_owned(),
        digest,
        created,
    };
    edit(&app_passwords_path(passwd_file), |lines| {
        if lines
            .iter()
            .any(|line| is_line(line, PASSWORD, user, Some(label)))
        {
            return (false, Err(exists(user, label)));
        }
        lines.push(password_line(user, &stored));
        (true, Ok(()))
    })?
}

/// Ends `user`'s app password `label` at once: the next login with it fails.
pub fn revoke_app_password(passwd_file: &Path, user: &str, label: &str) -> Result<(), AuthError> {
    validate_user_name(user)?;
    edit(&app_passwords_path(passwd_file), |lines| {
        let before = lines.len();
        lines.retain(|line| !is_line(line, PASSWORD, user, Some(label)));
        match lines.len() == before {
            true => (false, Err(no_such(user, label))),
            false => (true, Ok(())),
        }
    })?
}

/// Whether `user`'s own password is refused over POP3 (only app passwords log in).
pub fn require_app_passwords(passwd_file: &Path, user: &str, on: bool) -> Result<(), AuthError> {
    must_be_user(passwd_file, user)?;
    edit(&app_passwords_path(passwd_file), |lines| {
        let present = lines.iter().any(|line| is_line(line, REQUIRE, user, None));
        match (present, on) {
            (false, true) => {
                lines.push(format!("require\t{user}").into_bytes());
                (true, ())
            }
            (true, false) => {
                lines.retain(|line| !is_line(line, REQUIRE, user, None));
                (true, ())
            }
            _ => (false, ()),
        }
    })
}

/// Forgets every app password of `user` and the requirement, when the user is removed.
pub fn remove_user_app_passwords(passwd_file: &Path, user: &str) -> Result<(), AuthError> {
    let path = app_passwords_path(passwd_file);
    if !path.exists() {
        return Ok(());
    }
    edit(&path, |lines| {
        let before = lines.len();
        lines.retain(|line| {
            !is_line(line, REQUIRE, user, None) && !is_line(line, PASSWORD, user, None)
        });
        (lines.len() != before, ())
    })
}

/// Whether `user` requires app passwords, and each of theirs, in the file's order, with
/// their last uses from the server's `state_dir` when it is given.
pub fn list_app_passwords(
    passwd_file: &Path,
    user: &str,
    state_dir: Option<&Path>,
) -> Result<(bool, Vec<AppPasswordInfo>), AuthError> {
    must_be_user(passwd_file, user)?;
    let path = app_passwords_path(passwd_file);
    let contents = match fs::read(&path) {
        Ok(contents) => contents,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(AuthError::io(&path, e)),
    };
    let mut book = AppPasswordBook::parse(&path, &contents)?;
    let Some(entry) = book.by_user.remove(user) else {
        return Ok((false, Vec::new()));
    };
    let mut uses = match state_dir {
        Some(dir) => app_password_uses::read(&app_password_uses::path(dir))?,
        None => HashMap::new(),
    };
    let infos = entry
        .passwords
        .into_iter()
        .map(|stored| AppPasswordInfo {
            last_use: uses.remove(&(user.to_owned(), stored.digest.key())),
            label: stored.label,
            created: stored.created,
        })
        .collect();
    Ok((entry.required, infos))
}

fn exists(user: &str, label: &str) -> AuthError {
    AuthError::AppPasswordExists {
        user: user.to_owned(),
        label: label.to_owned(),
    }
}

fn no_such(user: &str, label: &str) -> AuthError {
    AuthError::NoSuchAppPassword {
        user: user.to_owned(),
        label: label.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passwd_file::set_user;
    use crate::NewAppPassword;

    #[test]
    fn edits_keep_other_lines_and_refuse_what_makes_no_sense() {
        let dir = tempfile::tempdir().unwrap();
        let users = dir.path().join("users");
        set_user(&users, "alice", "{PLAIN}a").unwrap();
        set_user(&users, "bob", "{PLAIN}b").unwrap();
        let path = app_passwords_path(&users);
        fs::write(&path, "# kept\n").unwrap();
        let created = UNIX_EPOCH + Duration::from_secs(1_700_000_000);

        let phone = NewAppPassword::generate();
        add_app_password(&users, "alice", "phone", phone.digest, created).unwrap();
        add_app_password(&users, "bob", "phone", phone.digest, created).unwrap();
        assert!(matches!(
            add_app_password(&users, "alice", "phone", phone.digest, created),
            Err(AuthError::AppPasswordExists { .. })
        ));
        assert!(matches!(
            add_app_password(&users, "carol", "phone", phone.digest, created),
            Err(AuthError::NoSuchUser(_))
        ));
        require_app_passwords(&users, "alice", true).unwrap();
        require_app_passwords(&users, "alice", true).unwrap();

        let (required, list) = list_app_passwords(&users, "alice", None).unwrap();
        assert!(required);
        assert_eq!(
            list,
            [AppPasswordInfo {
                label: "phone".into(),
                created,
                last_use: None,
            }]
        );
        let text = fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("# kept\npassword\talice\tphone\tsha256:"),
            "{text}"
        );

        revoke_app_password(&users, "alice", "phone").unwrap();
        assert!(matches!(
            revoke_app_password(&users, "alice", "phone"),
            Err(AuthError::NoSuchAppPassword { .. })
        ));
        require_app_passwords(&users, "alice", false).unwrap();
        assert_eq!(
            list_app_passwords(&users, "alice", None).unwrap(),
            (false, vec![])
        );
        assert_eq!(list_app_passwords(&users, "bob", None).unwrap().1.len(), 1);
        remove_user_app_passwords(&users, "bob").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "# kept\n");
    }

    #[test]
    fn broken_lines_are_named() {
        let path = Path::new("users.app-passwords");
        for bad in [
            "password\talice\tphone\n",
            "password\talice\tphone\tsha256:00\t1\n",
            "password\talice\tphone\tsha256:0000000000000000000000000000000000000000000000000000000000000000\t1\textra\n",
            "require\n",
            "password\talice\tphone\tsha256:0000000000000000000000000000000000000000000000000000000000000000\tsoon\n",
        ] {
            let error = AppPasswordBook::parse(path, bad.as_bytes()).unwrap_err();
            assert!(error.to_string().starts_with("users.app-passwords:1: "), "{error}");
        }
    }
}
