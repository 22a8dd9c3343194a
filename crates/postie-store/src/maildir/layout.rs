//! Where things are in one Maildir, and creating it the way Dovecot, Courier and mutt expect.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::durable::sync_dir;
use super::error::{IoContext, MaildirError};

/// The two directories messages live in: new/ until a session has seen them, then cur/.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sub {
    New,
    Cur,
}

#[derive(Debug, Clone)]
pub struct Layout {
    pub root: PathBuf,
}

impl Layout {
    pub fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub fn sub(&self, sub: Sub) -> PathBuf {
        self.root.join(match sub {
            Sub::New => "new",
            Sub::Cur => "cur",
        })
    }

    pub fn index(&self) -> PathBuf {
        self.root.join("postie-uidlist")
    }

    /// A second copy of the index, written after it: what repairs a damaged index without
    /// changing a UIDL.
    pub fn index_backup(&self) -> PathBuf {
        self.root.join("postie-uidlist.backup")
    }

    pub fn index_lock(&self) -> PathBuf {
        self.root.join("postie-uidlist.lock")
    }

    /// Held by a delivery with a quota from its usage check to its rename into new/, so
    /// that two deliveries cannot both take the last of the quota.
    pub fn quota_lock(&self) -> PathBuf {
        self.root.join("postie-quota.lock")
    }

    pub fn session_lock(&self) -> PathBuf {
        self.root.join("postie-pop3.lock")
    }

    pub fn dovecot_uidlist(&self) -> PathBuf {
        self.root.join(super::dovecot::FILE_NAME)
    }

    /// The Maildir++ folder deleted messages go to with [`crate::DeletePolicy::Trash`].
    pub fn trash(&self) -> Layout {
        Layout {
            root: self.root.join(".Trash"),
        }
    }

    /// Creates the Maildir (and its parents) if missing, private to the user, and makes the
    /// creation durable: a delivery into it must not vanish with its directory in a crash.
    pub fn ensure(&self) -> Result<(), MaildirError> {
        let mut created = make_dir(&self.root, true)?;
        for dir in [self.tmp(), self.sub(Sub::New), self.sub(Sub::Cur)] {
            created |= make_dir(&dir, false)?;
        }
        if created {
            sync_dir(&self.root)?;
            if let Some(parent) = self.root.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent)?;
            }
        }
        Ok(())
    }

    /// [`Self::ensure`] for a Maildir++ subfolder, which Dovecot recognises by its
    /// `maildirfolder` file.
    pub fn ensure_folder(&self) -> Result<(), MaildirError> {
        self.ensure()?;
        let marker = self.root.join("maildirfolder");
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&marker)
        {
            Ok(_) => sync_dir(&self.root),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(e).ctx("create", &marker),
        }
    }
}

/// Whether the directory was created now.
fn make_dir(dir: &Path, parents: bool) -> Result<bool, MaildirError> {
    if parents && fs::metadata(dir).is_ok_and(|m| m.is_dir()) {
        return Ok(false);
    }
    match DirBuilder::new().recursive(parents).mode(0o700).create(dir) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e).ctx("mkdir", dir),
    }
}
