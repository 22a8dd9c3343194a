//! An open Maildir: the snapshot of one POP3 session, and access to its messages by base name,
//! whatever other clients rename meanwhile.

use std::fs;
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use super::error::{IoContext, MaildirError};
use super::layout::{Layout, Sub};
use super::lock::{self, Lock};
use super::name;
use super::scan::{scan, Located};
use super::snapshot_cache::{Shared, SnapshotCache, Stamp};
use super::sync::sync;
use crate::{DeletePolicy, Maildrop, MessageInfo, StoreError};

/// A session's view of a Maildir; an exclusive one holds the session lock until it is
/// committed or dropped.
#[derive(Debug)]
pub struct MaildirDrop {
    pub(super) layout: Layout,
    /// Shared with other sessions of an unchanged maildrop (see [`SnapshotCache`]).
    pub(super) messages: Arc<Vec<MessageInfo>>,
    /// Where each message's file was last seen, parallel to `messages`; copied on first change.
    pub(super) files: Arc<Vec<Located>>,
    _session: Option<Lock>,
}

impl MaildirDrop {
    pub(super) fn open(
        layout: Layout,
        exclusive: bool,
        cache: &SnapshotCache,
    ) -> Result<Self, MaildirError> {
        layout.ensure()?;
        let session = if exclusive {
            let path = layout.session_lock();
            match lock::try_lock(&path).ctx("lock", &path)? {
                Some(lock) => Some(lock),
                None => return Err(MaildirError::InUse),
            }
        } else {
            None
        };
        let before = Stamp::read(&layout);
        if let Some(shared) = before.as_ref().and_then(|stamp| cache.get(&layout, stamp)) {
            return Ok(Self {
                layout,
                messages: shared.messages,
                files: shared.files,
                _session: session,
            });
        }
        let read_at = SystemTime::now();
        let snapshot = sync(&layout)?;
        let (messages, files): (Vec<MessageInfo>, Vec<Located>) = snapshot
            .entries
            .into_iter()
            .map(|entry| {
                let info = MessageInfo {
                    size: entry.crlf_size,
                    uidl: format!("{:08x}{:08x}", entry.uid, snapshot.uidvalidity),
                };
                (info, entry.file)
            })
            .unzip();
        let shared = Shared {
            messages: Arc::new(messages),
            files: Arc::new(files),
        };
        cache.offer(&layout, before, read_at, &shared);
        Ok(Self {
            layout,
            messages: shared.messages,
            files: shared.files,
            _session: session,
        })
    }

    pub(super) fn check(&self, index: usize) -> Result<(), MaildirError> {
        if index < self.files.len() {
            Ok(())
        } else {
            Err(MaildirError::NoSuchMessage(index.saturating_add(1)))
        }
    }

    pub(super) fn path(&self, index: usize) -> PathBuf {
        self.files[index].path(&self.layout)
    }

    /// Finds every message again by base name after a file was not where we last saw it.
    /// Messages no longer anywhere keep their old location, where they will not be found.
    pub(super) fn relocate(&mut self) -> Result<(), MaildirError> {
        let found = scan(&self.layout)?;
        for file in Arc::make_mut(&mut self.files).iter_mut() {
            if let Some(now) = found.get(name::base(&file.name)) {
                file.clone_from(now);
            }
        }
        Ok(())
    }

    fn vanished(index: usize) -> StoreError {
        StoreError::Vanished((index + 1).to_string())
    }

    fn try_mark_seen(&mut self, index: usize) -> io::Result<()> {
        let file = &self.files[index];
        let Some(seen) = name::with_flag(&file.name, b'S') else {
            return Ok(());
        };
        let seen = Located {
            sub: Sub::Cur,
            name: seen,
        };
        fs::rename(self.path(index), seen.path(&self.layout))?;
        Arc::make_mut(&mut self.files)[index] = seen;
        Ok(())
    }
}

impl Maildrop for MaildirDrop {
    fn messages(&self) -> &[MessageInfo] {
        &self.messages
    }

    fn open_message(&mut self, index: usize) -> Result<Box<dyn Read + Send>, StoreError> {
        self.check(index)?;
        let mut relocated = false;
        loop {
            match self.files[index].open(&self.layout) {
                Ok(file) => {
                    read_ahead(&file);
                    return Ok(Box::new(file));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound && !relocated => {
                    self.relocate()?;
                    relocated = true;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(Self::vanished(index)),
                Err(e) => return Err(MaildirError::io("open", &self.path(index), e).into()),
            }
        }
    }

    fn mark_seen(&mut self, index: usize) -> Result<(), StoreError> {
        self.check(index)?;
        let mut relocated = false;
        loop {
            match self.try_mark_seen(index) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound && !relocated => {
                    self.relocate()?;
                    relocated = true;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(Self::vanished(index)),
                Err(e) => return Err(MaildirError::io("rename", &self.path(index), e).into()),
            }
        }
    }

    fn commit(mut self, deleted: &[usize], policy: DeletePolicy) -> Result<(), StoreError> {
        Ok(super::commit::commit(&mut self, deleted, policy)?)
    }
}

/// A message is read once, front to back, right after it is opened: have the kernel start
/// reading all of it now, so the reads that follow find it in the page cache. Only a hint;
/// failure changes nothing.
fn read_ahead(file: &std::fs::File) {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor is valid for the life of `file`; fadvise does not touch memory.
    unsafe {
        libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_SEQUENTIAL);
        libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_WILLNEED);
    }
}
