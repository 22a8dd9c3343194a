//! Making changes survive a crash: a rename or unlink is only durable once its directory is
//! fsynced, and a replaced file only once its new content is.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};

use super::error::{IoContext, MaildirError};

pub fn sync_dir(dir: &Path) -> Result<(), MaildirError> {
    fsync_dir(dir).ctx("fsync", dir)
}

fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir).and_then(|d| d.sync_all())
}

/// Replaces `path` with `content` all at once: readers see the old file or the new one, never
/// a mix, and after a crash one of the two is there whole. The caller holds the lock that
/// makes `<path>.tmp` ours.
pub fn replace_file(path: &Path, content: &[u8]) -> Result<(), MaildirError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = Path::new(&tmp);
    let written = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(tmp)
        .and_then(|mut file| {
            file.write_all(content)?;
            file.sync_all()
        })
        .ctx("write", tmp)
        .and_then(|()| fs::rename(tmp, path).ctx("rename", tmp));
    if written.is_err() {
        // Best effort: a stale tmp file is overwritten by the next attempt anyway.
        let _ = fs::remove_file(tmp);
    }
    written?;
    match path.parent() {
        Some(dir) => sync_dir(dir),
        None => Ok(()),
    }
}

/// Makes `dir`'s entries as they are now durable, sharing the fsync with concurrent callers
/// (group commit): a caller that arrives while an fsync of `dir` runs waits for it to end and
/// then for the next one, which one of the waiters runs for all of them. Every caller returns
/// only after an fsync that began after it was called, so what it renamed into `dir` before
/// calling is covered; N deliveries that meet cost about two directory syncs, not N.
pub fn sync_dir_shared(dir: &Path) -> Result<(), MaildirError> {
    let group = DirGroup::of(dir);
    let outcome = group.sync(dir);
    DirGroup::release(dir, group);
    outcome
}

/// The callers syncing one directory.
#[derive(Default)]
struct DirGroup {
    state: Mutex<GroupState>,
    ended: Condvar,
}

#[derive(Default)]
struct GroupState {
    /// fsyncs begun so far; the one running, if any, is number `started`.
    started: u64,
    /// fsyncs ended so far.
    ended: u64,
    running: bool,
    /// How the last ended fsync failed, if it did; kept as the error's kind and text, since
    /// every waiter reports it.
    failure: Option<(io::ErrorKind, String)>,
}

/// One group per directory synced at the moment; a group is dropped when its last caller
/// leaves, so the map holds only directories with deliveries in flight.
fn groups() -> &'static Mutex<HashMap<PathBuf, Arc<DirGroup>>> {
    static GROUPS: OnceLock<Mutex<HashMap<PathBuf, Arc<DirGroup>>>> = OnceLock::new();
    GROUPS.get_or_init(Default::default)
}

/// A poisoned lock only means another delivery panicked while holding it; the counters it
/// guards are still consistent (each is set in one statement).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl DirGroup {
    fn of(dir: &Path) -> Arc<DirGroup> {
        Arc::clone(lock(groups()).entry(dir.to_path_buf()).or_default())
    }

    fn release(dir: &Path, group: Arc<DirGroup>) {
        let mut map = lock(groups());
        // The map's reference and ours: nobody else is syncing this directory.
        if Arc::strong_count(&group) == 2 {
            map.remove(dir);
        }
    }

    fn sync(&self, dir: &Path) -> Result<(), MaildirError> {
        let mut state = lock(&self.state);
        // An fsync running now may have begun before our rename: only a later one covers it.
        let needed = state.started + 1;
        loop {
            if state.ended >= needed {
                return match &state.failure {
                    None => Ok(()),
                    Some((kind, text)) => {
                        Err(io::Error::new(*kind, text.clone())).ctx("fsync", dir)
                    }
                };
            }
            if !state.running {
                state.running = true;
                state.started += 1;
                let number = state.started;
                drop(state);
                let outcome = fsync_dir(dir);
                state = lock(&self.state);
                state.running = false;
                state.ended = number;
                state.failure = outcome.err().map(|e| (e.kind(), e.to_string()));
                self.ended.notify_all();
                continue;
            }
            state = self
                .ended
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}
