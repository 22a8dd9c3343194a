//! Dovecot's passwd-file: the user database, re-read whenever the file changes, and the
//! in-place edits behind `postie user`.

mod app_password_uses;
mod app_passwords;
mod edit;
pub(crate) mod parse;
mod two_step;
mod user_name;

use std::collections::HashMap;
use std::fs::{self, File, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

pub use app_passwords::{
    add_app_password, app_passwords_path, list_app_passwords, remove_user_app_passwords,
    require_app_passwords, revoke_app_password,
};
pub use edit::{list_users, remove_user, set_user};
pub use two_step::{read_two_step, set_two_step, take_two_step_code, two_step_path};
pub use user_name::{validate_user_name, MAX_USER_NAME_LEN};

use crate::{AppPasswordUse, AuthError, UserDb, UserRecord};
use app_password_uses::UseKey;
use app_passwords::AppPasswordBook;
use parse::Users;

/// A passwd-file user database, with the app passwords kept beside it
/// ([`app_passwords_path`]). Every lookup stats both files and re-reads one that changed, so
/// edits take effect without a restart; a changed file that fails to load is logged and what
/// was loaded before stays in force.
#[derive(Debug)]
pub struct PasswdFile {
    path: PathBuf,
    app_passwords_path: PathBuf,
    state: Mutex<State>,
    /// Where the server writes app passwords' last uses, once told.
    uses: Option<UseLog>,
}

/// The server's record of app passwords' last uses, and what it wrote last, so that a use
/// adding nothing is not written again.
#[derive(Debug)]
struct UseLog {
    path: PathBuf,
    written: Mutex<Option<HashMap<UseKey, AppPasswordUse>>>,
}

#[derive(Debug)]
struct State {
    seen: Observed,
    users: Users,
    app_passwords_seen: Observed,
    app_passwords: AppPasswordBook,
}

/// What the last stat showed, so an unchanged file (or a still-broken one) costs one stat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Observed {
    Unreadable,
    File(Stamp),
}

/// Inode and size catch a rename over the file; the nanosecond times catch an in-place
/// rewrite of the same size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(meta: &Metadata) -> Self {
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

impl PasswdFile {
    /// Loads the file; fails on the first malformed line, naming file and line.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, AuthError> {
        let path = path.as_ref().to_path_buf();
        let (stamp, users) = load(&path, parse::parse_file)?;
        let app_passwords_path = app_passwords_path(&path);
        let (app_passwords_seen, app_passwords) = load_app_passwords(&app_passwords_path)?;
        Ok(PasswdFile {
            path,
            app_passwords_path,
            state: Mutex::new(State {
                seen: Observed::File(stamp),
                users,
                app_passwords_seen,
                app_passwords,
            }),
            uses: None,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records app passwords' last uses in `state_dir` (the server's; `postie user
    /// app-password list` reads them from there).
    pub fn recording_uses_in(mut self, state_dir: &Path) -> Self {
        self.uses = Some(UseLog {
            path: app_password_uses::path(state_dir),
            written: Mutex::new(None),
        });
        self
    }

    /// Reads the file again now (SIGHUP), changed or not, and returns how many users it
    /// holds. On an error the users loaded before stay in force.
    pub fn reload(&self) -> Result<usize, AuthError> {
        let (stamp, users) = load(&self.path, parse::parse_file)?;
        let (app_passwords_seen, app_passwords) = load_app_passwords(&self.app_passwords_path)?;
        let count = users.len();
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.seen = Observed::File(stamp);
        state.users = users;
        state.app_passwords_seen = app_passwords_seen;
        state.app_passwords = app_passwords;
        Ok(count)
    }

    fn refresh(&self, state: &mut State) {
        self.refresh_app_passwords(state);
        let observed = Observed::of(&self.path);
        if observed == state.seen {
            return;
        }
        match load(&self.path, parse::parse_file) {
            Ok((stamp, users)) => {
                tracing::info!("reloaded {} ({} users)", self.path.display(), users.len());
                state.seen = Observed::File(stamp);
                state.users = users;
            }
            Err(e) => {
                tracing::warn!("{e}; keeping the users loaded before");
                state.seen = observed;
            }
        }
    }

    /// The app-password file is optional: a missing one means nobody has any.
    fn refresh_app_passwords(&self, state: &mut State) {
        let observed = Observed::of(&self.app_passwords_path);
        if observed == state.app_passwords_seen {
            return;
        }
        match load_app_passwords(&self.app_passwords_path) {
            Ok((seen, book)) => {
                state.app_passwords_seen = seen;
                state.app_passwords = book;
            }
            Err(e) => {
                tracing::warn!("{e}; keeping the app passwords loaded before");
                state.app_passwords_seen = observed;
            }
        }
    }
}

impl Observed {
    fn of(path: &Path) -> Self {
        match fs::metadata(path) {
            Ok(meta) => Observed::File(Stamp::of(&meta)),
            Err(_) => Observed::Unreadable,
        }
    }
}

/// Stamp and contents come from the same open file, so a concurrent replace cannot pair
/// new contents with an old stamp.
fn load<T>(
    path: &Path,
    parse: impl FnOnce(&Path, &[u8]) -> Result<T, AuthError>,
) -> Result<(Stamp, T), AuthError> {
    let io_err = |e| AuthError::io(path, e);
    let mut file = File::open(path).map_err(io_err)?;
    let stamp = Stamp::of(&file.metadata().map_err(io_err)?);
    let mut contents = Vec::new();
    file.read_to_end(&mut contents).map_err(io_err)?;
    Ok((stamp, parse(path, &contents)?))
}

fn load_app_passwords(path: &Path) -> Result<(Observed, AppPasswordBook), AuthError> {
    match load(path, AppPasswordBook::parse) {
        Ok((stamp, book)) => Ok((Observed::File(stamp), book)),
        Err(AuthError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            Ok((Observed::Unreadable, AppPasswordBook::default()))
        }
        Err(e) => Err(e),
    }
}

impl UserDb for PasswdFile {
    fn lookup(&self, user: &str) -> Result<Option<UserRecord>, AuthError> {
        // A panic elsewhere while holding the lock leaves the state consistent anyway: it is
        // only ever replaced whole.
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        self.refresh(&mut state);
        let Some(mut record) = state.users.get(user).cloned() else {
            return Ok(None);
        };
        record.app_passwords = state.app_passwords.of_user(user);
        Ok(Some(record))
    }

    /// Writes the use into the state folder unless it adds nothing to the last one written
    /// (see [`AppPasswordUse::worth_recording_after`]). Without a state folder there is
    /// nowhere to write it, and nothing is done.
    fn record_app_password_use(
        &self,
        user: &str,
        label: &str,
        usage: &AppPasswordUse,
    ) -> Result<(), AuthError> {
        let Some(log) = &self.uses else {
            return Ok(());
        };
        let digest = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            self.refresh_app_passwords(&mut state);
            state.app_passwords.digest(user, label)
        };
        // Revoked since the login: nothing to show the use against.
        let Some(digest) = digest else {
            return Ok(());
        };
        let key = (user.to_owned(), digest.key());
        let mut written = log.written.lock().unwrap_or_else(PoisonError::into_inner);
        let written = match &mut *written {
            Some(written) => written,
            None => written.insert(app_password_uses::read(&log.path)?),
        };
        if !usage.worth_recording_after(written.get(&key)) {
            return Ok(());
        }
        app_password_uses::record(&log.path, user, &key.1, usage)?;
        written.insert(key, usage.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_follow_edits_and_survive_broken_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        fs::write(&path, "alice:{PLAIN}one\n").unwrap();
        let db = PasswdFile::open(&path).unwrap();
        assert!(db.lookup("alice").unwrap().unwrap().password.verify(b"one"));
        assert!(db.lookup("Alice").unwrap().is_none());
        assert!(db.lookup("bob").unwrap().is_none());

        // Same size as before: only the timestamps and inode tell.
        set_user(&path, "alice", "{PLAIN}two").unwrap();
        assert!(db.lookup("alice").unwrap().unwrap().password.verify(b"two"));

        fs::write(&path, "alice:{PLAIN}three\nbroken\n").unwrap();
        assert!(db.lookup("alice").unwrap().unwrap().password.verify(b"two"));

        fs::remove_file(&path).unwrap();
        assert!(db.lookup("alice").unwrap().unwrap().password.verify(b"two"));

        fs::write(&path, "bob:{PLAIN}b\n").unwrap();
        assert!(db.lookup("alice").unwrap().is_none());
        assert!(db.lookup("bob").unwrap().is_some());
    }

    #[test]
    fn open_reports_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        fs::write(&path, "# comment\nalice:{PLAIN}x\nbob:{NOPE}y\n").unwrap();
        let message = PasswdFile::open(&path).unwrap_err().to_string();
        assert!(
            message.starts_with(&format!("{}:3: ", path.display())),
            "{message}"
        );
        assert!(message.contains("NOPE"), "{message}");

        assert!(matches!(
            PasswdFile::open(dir.path().join("missing")),
            Err(AuthError::Io { .. })
        ));
    }
}
