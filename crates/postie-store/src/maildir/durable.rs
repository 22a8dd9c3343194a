//! Making changes survive a crash: a rename or unlink is only durable once its directory is
//! fsynced, and a replaced file only once its new content is.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::error::{IoContext, MaildirError};

pub fn sync_dir(dir: &Path) -> Result<(), MaildirError> {
    File::open(dir).and_then(|d| d.sync_all()).ctx("fsync", dir)
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
