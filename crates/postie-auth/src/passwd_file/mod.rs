//! Dovecot's passwd-file: the user database, re-read whenever the file changes, and the
//! in-place edits behind `postie user`.

mod edit;
pub(crate) mod parse;
mod user_name;

use std::fs::{self, File, Metadata};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

pub use edit::{list_users, remove_user, set_user};
pub use user_name::{validate_user_name, MAX_USER_NAME_LEN};

use crate::{AuthError, UserDb, UserRecord};
use parse::Users;

/// A passwd-file user database. Every lookup stats the file and re-reads it if it changed,
/// so edits take effect without a restart; a changed file that fails to load is logged and
/// the previous users stay in force.
#[derive(Debug)]
pub struct PasswdFile {
    path: PathBuf,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    seen: Observed,
    users: Users,
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
        let (stamp, users) = load(&path)?;
        Ok(PasswdFile {
            path,
            state: Mutex::new(State {
                seen: Observed::File(stamp),
                users,
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the file again now (SIGHUP), changed or not, and returns how many users it
    /// holds. On an error the users loaded before stay in force.
    pub fn reload(&self) -> Result<usize, AuthError> {
        let (stamp, users) = load(&self.path)?;
        let count = users.len();
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.seen = Observed::File(stamp);
        state.users = users;
        Ok(count)
    }

    fn refresh(&self, state: &mut State) {
        let observed = match fs::metadata(&self.path) {
            Ok(meta) => Observed::File(Stamp::of(&meta)),
            Err(_) => Observed::Unreadable,
        };
        if observed == state.seen {
            return;
        }
        match load(&self.path) {
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
}

/// Stamp and contents come from the same open file, so a concurrent replace cannot pair
/// new contents with an old stamp.
fn load(path: &Path) -> Result<(Stamp, Users), AuthError> {
    let io_err = |e| AuthError::io(path, e);
    let mut file = File::open(path).map_err(io_err)?;
    let stamp = Stamp::of(&file.metadata().map_err(io_err)?);
    let mut contents = Vec::new();
    file.read_to_end(&mut contents).map_err(io_err)?;
    Ok((stamp, parse::parse_file(path, &contents)?))
}

impl UserDb for PasswdFile {
    fn lookup(&self, user: &str) -> Result<Option<UserRecord>, AuthError> {
        // A panic elsewhere while holding the lock leaves the state consistent anyway: it is
        // only ever replaced whole.
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        self.refresh(&mut state);
        Ok(state.users.get(user).cloned())
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
