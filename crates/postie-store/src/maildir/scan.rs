//! Listing the messages of a Maildir: one readdir of new/ and one of cur/, no stat, no read.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use super::error::{IoContext, MaildirError};
use super::layout::{Layout, Sub};
use super::name;

/// Where a message's file is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub sub: Sub,
    pub name: Vec<u8>,
}

impl Located {
    pub fn path(&self, layout: &Layout) -> PathBuf {
        layout.sub(self.sub).join(OsStr::from_bytes(&self.name))
    }

    /// Opens the message for reading. A symlink is refused rather than followed: whoever can
    /// write to the Maildir must not get another file served as a message. So is anything but
    /// a regular file (a directory, a FIFO, a device), which would fail or block mid-RETR;
    /// O_NONBLOCK keeps the open of a FIFO from waiting for a writer and changes nothing for
    /// regular files.
    pub fn open(&self, layout: &Layout) -> io::Result<File> {
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(self.path(layout))?;
        if !file.metadata()?.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "not a regular file",
            ));
        }
        Ok(file)
    }
}

/// The messages found, by base name. foldhash: SipHash's cost shows when a login lists
/// 100,000 names, and only local users can choose file names.
pub type Found = HashMap<Vec<u8>, Located, foldhash::fast::RandomState>;

/// Lists new/ before cur/: a message another client moves from new/ to cur/ meanwhile is then
/// seen in one or the other (the opposite order could miss it in both). A base name in both
/// directories counts once, from cur/.
pub fn scan(layout: &Layout) -> Result<Found, MaildirError> {
    let mut found = Found::default();
    for sub in [Sub::New, Sub::Cur] {
        let dir = layout.sub(sub);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).ctx("readdir", &dir),
        };
        for entry in entries {
            let entry = entry.ctx("readdir", &dir)?;
            let file_name = entry.file_name();
            let file_name = file_name.as_bytes();
            if !is_message_name(file_name) {
                continue;
            }
            // d_type answers this without a stat on the usual file systems. Only plain files
            // are messages; see `Located::open` for symlinks.
            if !entry.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            found.insert(
                name::base(file_name).to_vec(),
                Located {
                    sub,
                    name: file_name.to_vec(),
                },
            );
        }
    }
    Ok(found)
}

/// Dot files are not messages in any Maildir reader; a LF could not be written to the index;
/// an empty base name cannot identify a message.
fn is_message_name(file_name: &[u8]) -> bool {
    !file_name.starts_with(b".") && !file_name.contains(&b'\n') && !name::base(file_name).is_empty()
}
