//! Lock files in the Maildir, locked with flock(2): the kernel drops the lock when the file is
//! closed, so a crashed session never leaves a maildrop locked.
//!
//! flock locks belong to an open file description, so two sessions of one process exclude each
//! other just as two processes do. Delivery never takes a lock.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// A held lock; dropping it unlocks.
#[derive(Debug)]
pub struct Lock {
    // Only kept open: closing the file releases the lock.
    _file: File,
}

/// Waits for the lock: used for the index, which is only held for the length of a sync.
pub fn lock(path: &Path) -> io::Result<Lock> {
    let file = open(path)?;
    loop {
        match flock(&file, libc::LOCK_EX) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            result => return result.map(|()| Lock { _file: file }),
        }
    }
}

/// Takes the lock if it is free: `Ok(None)` when another session holds it.
pub fn try_lock(path: &Path) -> io::Result<Option<Lock>> {
    let file = open(path)?;
    match flock(&file, libc::LOCK_EX | libc::LOCK_NB) {
        Ok(()) => Ok(Some(Lock { _file: file })),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(e),
    }
}

/// Opens (creating) a lock file. On a read-only filesystem an existing lock file is opened
/// read-only, which flock accepts: a Maildir that cannot change can still be read.
fn open(path: &Path) -> io::Result<File> {
    let writable = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path);
    match writable {
        Err(e) if e.raw_os_error() == Some(libc::EROFS) => File::open(path),
        result => result,
    }
}

fn flock(file: &File, operation: libc::c_int) -> io::Result<()> {
    // SAFETY: the descriptor belongs to `file`, which outlives the call.
    if unsafe { libc::flock(file.as_raw_fd(), operation) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
