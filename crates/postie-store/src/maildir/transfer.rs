//! Moving a maildrop between a Maildir and another store, keeping every UIDL: reading a
//! Maildir as postie's Maildir store numbers it ([`read_maildir`]), and writing one whose
//! index gives the UIDs another store had ([`MaildirWriter`]).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::durable::{replace_file, sync_dir};
use super::error::IoContext;
use super::index::{Index, Record};
use super::layout::{Layout, Sub};
use super::lock::{self, Lock};
use super::name;
use super::scan::{scan, Located};
use super::state::Locked;
use super::sync::sync;
use crate::crlf::CrlfCounter;
use crate::StoreError;

/// Where a message stands after the delete policies (see [`crate::DeletePolicy`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageState {
    /// Listed by POP3.
    Visible,
    /// Deleted by POP3 under the Hide policy: kept, counted, never listed again.
    Hidden,
    /// Deleted by POP3 under the Trash policy: in the user's trash, not counted.
    Trashed,
}

/// One message of a Maildir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaildirMessage {
    /// The uid postie's Maildir store gives it (its UIDL is `Uidl::from_uid(uid,
    /// uidvalidity)`); `None` for a message in the trash, which POP3 never lists.
    pub uid: Option<u32>,
    pub path: PathBuf,
    /// The Maildir `S` flag.
    pub seen: bool,
    pub state: MessageState,
}

/// A Maildir's messages as postie's Maildir store sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaildirContents {
    pub uidvalidity: u32,
    /// Above every uid ever given in this Maildir.
    pub next_uid: u32,
    /// The numbered messages in uid order, then the trash's in arrival order.
    pub messages: Vec<MaildirMessage>,
}

/// Reads the Maildir at `root` the way a login to postie's Maildir store would: messages no
/// index has numbered yet get their uids now (Dovecot's, from `dovecot-uidlist`, where it gave
/// one), and the index is saved, so that this Maildir served by postie lists exactly these
/// UIDLs. Blocking.
pub fn read_maildir(root: &Path) -> Result<MaildirContents, StoreError> {
    let layout = Layout {
        root: root.to_owned(),
    };
    if !layout.sub(Sub::Cur).is_dir() && !layout.sub(Sub::New).is_dir() {
        return Err(StoreError::Permanent(format!(
            "{} is not a Maildir (it has neither cur/ nor new/)",
            root.display()
        )));
    }
    sync(&layout, false)?;
    let locked = Locked::open(&layout)?;
    let mut found = scan(&layout)?;
    let mut messages = Vec::with_capacity(locked.index.records.len());
    for record in &locked.index.records {
        let Some(file) = found.remove(&record.base) else {
            continue;
        };
        messages.push(MaildirMessage {
            uid: Some(record.uid),
            path: file.path(&layout),
            seen: is_seen(&file),
            state: if record.hidden {
                MessageState::Hidden
            } else {
                MessageState::Visible
            },
        });
    }
    let trash = layout.trash();
    let mut trashed: Vec<Located> = scan(&trash)?.into_values().collect();
    trashed
        .sort_by_cached_key(|file| (name::arrival_key(name::base(&file.name)), file.name.clone()));
    messages.extend(trashed.into_iter().map(|file| MaildirMessage {
        uid: None,
        path: file.path(&trash),
        seen: is_seen(&file),
        state: MessageState::Trashed,
    }));
    Ok(MaildirContents {
        uidvalidity: locked.index.uidvalidity,
        next_uid: locked.index.next_uid,
        messages,
    })
}

fn is_seen(file: &Located) -> bool {
    name::flags(&file.name).is_some_and(|flags| flags.contains(&b'S'))
}

/// Writes messages into a new Maildir with the uids and uidvalidity another store gave them,
/// so that postie's Maildir store serves them under the same UIDLs. Messages go straight to
/// `cur/` (or `.Trash/cur/`), named as deliveries are (`,S=` and `,W=` included); the index
/// is written by [`MaildirWriter::finish`], under the index lock held from the start.
pub struct MaildirWriter {
    layout: Layout,
    index: Index,
    /// Directories that received messages and must be synced before the index is written.
    touched: Vec<PathBuf>,
    _lock: Lock,
}

/// A message being written by a [`MaildirWriter`], in `tmp/` until published.
pub struct MessageFile {
    file: File,
    tmp: PathBuf,
    unique: String,
    counter: CrlfCounter,
}

impl MessageFile {
    pub fn write(&mut self, piece: &[u8]) -> Result<(), StoreError> {
        self.counter.update(piece);
        Ok(self.file.write_all(piece).ctx("write", &self.tmp)?)
    }
}

impl MaildirWriter {
    /// Starts a Maildir at `root` (created if missing) whose index will have `uidvalidity`
    /// and hand out uids from `next_uid` on. Refuses a Maildir that already holds messages
    /// or an index: its UIDLs would clash with the ones written here.
    pub fn create(root: &Path, uidvalidity: u32, next_uid: u32) -> Result<Self, StoreError> {
        let layout = Layout {
            root: root.to_owned(),
        };
        layout.ensure()?;
        let lock_path = layout.index_lock();
        let lock = lock::lock(&lock_path).ctx("lock", &lock_path)?;
        let occupied = layout.index().exists()
            || !scan(&layout)?.is_empty()
            || !scan(&layout.trash())?.is_empty();
        if occupied {
            return Err(StoreError::Permanent(format!(
                "{} already holds messages or a postie-uidlist: name an empty or new folder",
                root.display()
            )));
        }
        Ok(MaildirWriter {
            layout,
            index: Index {
                uidvalidity,
                next_uid: next_uid.max(1),
                records: Vec::new(),
            },
            touched: Vec::new(),
            _lock: lock,
        })
    }

    /// A new message file in `tmp/`, to be filled with [`MessageFile::write`].
    pub fn start(&self) -> Result<MessageFile, StoreError> {
        let unique = name::unique();
        let tmp = self.layout.tmp().join(&unique);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .ctx("create", &tmp)?;
        Ok(MessageFile {
            file,
            tmp,
            unique,
            counter: CrlfCounter::new(),
        })
    }

    /// Makes `message` durable and moves it into place: `cur/` with uid `uid` for a visible
    /// or hidden message (which needs one, below the next uid and above the last one given
    /// here), `.Trash/cur/` for a trashed one.
    pub fn publish(
        &mut self,
        message: MessageFile,
        uid: Option<u32>,
        state: MessageState,
        seen: bool,
    ) -> Result<(), StoreError> {
        let placed = self.place(&message, uid, state, seen);
        if placed.is_err() {
            let _ = fs::remove_file(&message.tmp);
        }
        placed
    }

    fn place(
        &mut self,
        message: &MessageFile,
        uid: Option<u32>,
        state: MessageState,
        seen: bool,
    ) -> Result<(), StoreError> {
        let MessageFile {
            file,
            tmp,
            unique,
            counter,
        } = message;
        let base = name::delivered(
            unique,
            counter.raw_size(),
            counter.crlf_size(),
            counter.form(),
        );
        let flags = if seen { ":2,S" } else { ":2," };
        let record = match (state, uid) {
            (MessageState::Trashed, _) => None,
            (_, Some(uid)) => {
                let in_order = self.index.records.last().is_none_or(|r| r.uid < uid);
                if !in_order || uid >= self.index.next_uid {
                    return Err(StoreError::Permanent(format!(
                        "uid {uid} is out of order or not below the next uid {}",
                        self.index.next_uid
                    )));
                }
                Some(Record {
                    uid,
                    crlf_size: None,
                    hidden: state == MessageState::Hidden,
                    base: base.clone().into_bytes(),
                })
            }
            (_, None) => {
                return Err(StoreError::Permanent(
                    "a message POP3 lists needs a uid".into(),
                ))
            }
        };
        file.sync_all().ctx("fsync", tmp)?;
        let dir = if record.is_some() {
            self.layout.sub(Sub::Cur)
        } else {
            let trash = self.layout.trash();
            trash.ensure_folder()?;
            trash.sub(Sub::Cur)
        };
        let target = dir.join(format!("{base}{flags}"));
        fs::rename(tmp, &target).ctx("rename", tmp)?;
        if !self.touched.contains(&dir) {
            self.touched.push(dir);
        }
        self.index.records.extend(record);
        Ok(())
    }

    /// Syncs the directories written to, then writes the index and its backup.
    pub fn finish(self) -> Result<(), StoreError> {
        for dir in &self.touched {
            sync_dir(dir)?;
        }
        let bytes = self.index.serialize();
        replace_file(&self.layout.index(), &bytes)?;
        replace_file(&self.layout.index_backup(), &bytes)?;
        Ok(())
    }
}
