//! An open Maildir: the snapshot of one POP3 session, and access to its messages by base name,
//! whatever other clients rename meanwhile.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use postie_types::Uidl;

use super::error::{IoContext, MaildirError};
use super::layout::{Layout, Sub};
use super::lock::{self, Lock};
use super::name;
use super::pop_settings;
use super::scan::{scan, Located};
use super::snapshot_cache::{Shared, SnapshotCache, Stamp};
use super::sync::sync;
use crate::crlf::StoredForm;
use crate::{
    AfterRetrieval, Maildrop, MessageBody, MessageInfo, StoreError, Update, View, WireFile,
};

/// A session's view of a Maildir; an exclusive one holds the session lock until it is
/// committed or dropped.
#[derive(Debug)]
pub struct MaildirDrop {
    pub(super) layout: Layout,
    /// Shared with other sessions of an unchanged maildrop (see [`SnapshotCache`]).
    pub(super) messages: Arc<Vec<MessageInfo>>,
    /// Where each message's file was last seen, parallel to `messages`; copied on first change.
    pub(super) files: Arc<Vec<Located>>,
    /// What QUIT does to messages retrieved and not deleted.
    after_retrieval: AfterRetrieval,
    _session: Option<Lock>,
}

impl MaildirDrop {
    pub(super) fn open(
        layout: Layout,
        exclusive: bool,
        view: View,
        cache: &SnapshotCache,
    ) -> Result<Self, MaildirError> {
        layout.ensure()?;
        let settings = pop_settings::read(&layout)?;
        let after_retrieval = view.after_retrieval(&settings);
        let earliest = view.earliest(&settings, SystemTime::now());
        let session = if exclusive {
            let path = layout.session_lock();
            match lock::try_lock(&path).ctx("lock", &path)? {
                Some(lock) => Some(lock),
                None => return Err(MaildirError::InUse),
            }
        } else {
            None
        };
        // The cache holds what a normal session sees of the whole maildrop; a window is cut
        // out of it afterwards.
        let before = (view == View::Normal)
            .then(|| Stamp::read(&layout))
            .flatten();
        if let Some(shared) = before.as_ref().and_then(|stamp| cache.get(&layout, stamp)) {
            let shared = within(shared, earliest);
            return Ok(Self {
                layout,
                messages: shared.messages,
                files: shared.files,
                after_retrieval,
                _session: session,
            });
        }
        let read_at = SystemTime::now();
        let snapshot = sync(&layout, view == View::Recent)?;
        let (messages, files): (Vec<MessageInfo>, Vec<Located>) = snapshot
            .entries
            .into_iter()
            .map(|entry| {
                let info = MessageInfo {
                    size: entry.crlf_size,
                    uidl: Uidl::from_uid(entry.uid, snapshot.uidvalidity),
                    seen: name::flags(&entry.file.name).is_some_and(|f| f.contains(&b'S')),
                };
                (info, entry.file)
            })
            .unzip();
        let shared = Shared {
            messages: Arc::new(messages),
            files: Arc::new(files),
        };
        if view == View::Normal {
            cache.offer(&layout, before, read_at, &shared);
        }
        let shared = within(shared, earliest);
        Ok(Self {
            layout,
            messages: shared.messages,
            files: shared.files,
            after_retrieval,
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
        StoreError::Vanished(index + 1)
    }

    /// Opens message `index`, finding it again if another client renamed it.
    fn open_file(&mut self, index: usize) -> Result<File, StoreError> {
        self.check(index)?;
        let mut relocated = false;
        loop {
            match self.files[index].open(&self.layout) {
                Ok(file) => {
                    read_ahead(&file);
                    return Ok(file);
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

    /// Sets the Seen flag (`S`) of message `index`: a rename into cur/ with the flag.
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

    /// QUIT, blocking: Seen flags first (a flag that cannot be set is logged, not fatal: the
    /// message itself is intact), then the deletions.
    fn apply(mut self, update: Update) -> Result<(), StoreError> {
        if let Some(&bad) = update
            .deleted
            .iter()
            .chain(&update.retrieved)
            .find(|&&index| self.check(index).is_err())
        {
            return Err(MaildirError::NoSuchMessage(bad.saturating_add(1)).into());
        }
        for index in update.kept_retrievals() {
            if let Err(error) = self.mark_seen(index) {
                tracing::warn!(maildir = %self.layout.root.display(), %error, "cannot set the Seen flag");
            }
        }
        super::commit::commit(&mut self, &update.deleted, update.policy)?;
        if let Some(policy) = self.after_retrieval.as_policy() {
            let kept = update.kept_retrievals();
            super::commit::commit(&mut self, &kept, policy)?;
        }
        Ok(())
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
    type Body = MaildirBody;

    fn messages(&self) -> &[MessageInfo] {
        &self.messages
    }

    /// Opened inline, not on the blocking pool: an open of a file whose directory was just
    /// listed costs microseconds, a blocking-pool trip two thread switches (15% of RETR
    /// throughput on 1 MiB messages).
    async fn open_message(&mut self, index: usize) -> Result<MaildirBody, StoreError> {
        let file = self.open_file(index)?;
        let len = file
            .metadata()
            .map_err(|e| StoreError::Temporary(format!("reading a message's size: {e}")))?
            .len();
        // The name says how it was stored (recorded at delivery). A CRLF file's octets are its
        // CRLF form, so its length is the size the status line announces; a file of another
        // length was changed after delivery, and goes through the encoder as read.
        let size = self.messages[index].size;
        let as_stored = name::stored_form(&self.files[index].name)
            .filter(|form| {
                form.stuffing_as_stored()
                    .is_some_and(|stuffing| stuffing.last().is_none_or(|&last| last < size))
                    && len == size
            })
            .map(|form| (size, form));
        Ok(MaildirBody {
            file,
            as_stored,
            unread: len,
        })
    }

    async fn quit(self, update: Update) -> Result<(), StoreError> {
        tokio::task::spawn_blocking(move || self.apply(update))
            .await
            .unwrap_or_else(|e| Err(StoreError::Temporary(format!("applying QUIT: {e}"))))
    }
}

/// A message file being read. Reads are done inline on the caller's thread: the file was
/// read ahead into the page cache when it was opened, so each read is a memory copy.
#[derive(Debug)]
pub struct MaildirBody {
    file: File,
    /// Octets of the message and its form, when its name says it can be sent as stored.
    as_stored: Option<(u64, StoredForm)>,
    /// Octets not read yet of those the file had when it was opened.
    unread: u64,
}

impl MessageBody for MaildirBody {
    fn wire_file(&self) -> Option<WireFile<'_>> {
        let (len, form) = self.as_stored.as_ref()?;
        Some(WireFile {
            file: &self.file,
            len: *len,
            stuffing: form.stuffing_as_stored()?,
        })
    }

    /// A file that ends before the length it had when opened was truncated while being read:
    /// an error, so that the octets read so far are never taken for the whole message.
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.file.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(0) if self.unread > 0 && !buf.is_empty() => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "the message file lost its last {} octets while being read",
                            self.unread
                        ),
                    ))
                }
                Ok(n) => {
                    self.unread = self.unread.saturating_sub(n as u64);
                    return Ok(n);
                }
                result => return result,
            }
        }
    }
}

/// The messages of `shared` that arrived at `earliest` or later (all of them without a
/// limit); a message whose name does not say when it arrived is kept.
fn within(shared: Shared, earliest: Option<SystemTime>) -> Shared {
    let Some(earliest) = earliest else {
        return shared;
    };
    let (messages, files): (Vec<MessageInfo>, Vec<Located>) = shared
        .messages
        .iter()
        .zip(shared.files.iter())
        .filter(|(_, file)| pop_settings::arrival(&file.name).is_none_or(|at| at >= earliest))
        .map(|(info, file)| (info.clone(), file.clone()))
        .unzip();
    Shared {
        messages: Arc::new(messages),
        files: Arc::new(files),
    }
}

/// A message is read once, front to back, right after it is opened: have the kernel start
/// reading all of it now, so the reads that follow find it in the page cache. Only a hint;
/// failure changes nothing.
fn read_ahead(file: &File) {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor is valid for the life of `file`; fadvise does not touch memory.
    unsafe {
        libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_SEQUENTIAL);
        libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_WILLNEED);
    }
}
