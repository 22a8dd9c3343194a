//! Mail storage for postie: the contract every store keeps, and two stores that keep it.
//!
//! The POP3 server sees a user's mail only through [`MailStore`] and [`Maildrop`]: at login
//! it opens a maildrop, a snapshot of sizes and UIDLs taken without reading a body; on RETR
//! and TOP it reads a message through a [`MessageBody`]; at QUIT it hands the session's
//! [`Update`] (deletions, seen marks, delete policy) to the store in one call, which a
//! database applies in one transaction. Delivery (LMTP, SMTP, `postie deliver`, the demo's
//! welcome messages) goes through [`MailStore::deliver`], one call for every recipient of a
//! message.
//!
//! # The contract is async, and says how a body is read
//! Every call returns a future, so a store whose data lies across a network awaits it
//! without holding a runtime thread. A store whose calls block on local files decides
//! itself what it does inline and what it sends to the blocking pool: the Maildir store opens
//! maildrops, delivers and applies QUIT on the blocking pool, and reads message files inline,
//! because it asks the kernel to read a message ahead when it opens it, so each read is a
//! page-cache copy cheaper than a thread switch (ARCHITECTURE.md has the figures).
//!
//! A body is read in pieces no larger than the caller's buffer; a store never holds more
//! than a bounded amount of a message in memory for a reader (a few chunks, whatever the
//! message's size). The contract suite ([`contract`], feature `contract-suite`) checks this
//! with an allocation counter while 64 MiB are read.
//!
//! # Every store passes one suite
//! A new store is this contract and `store_contract_tests!` (module `contract`): the suite that
//! [`MemoryStore`] and [`MaildirStore`] pass, unchanged.
//!
//! Sizes follow the one rule of [`crlf`]. UIDLs are [`Uidl`]s, validated where the store
//! makes them.

use std::future::Future;
use std::io::{self, Read};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use postie_types::Uidl;

#[cfg(feature = "contract-suite")]
pub mod contract;
pub mod crlf;
mod maildir;
mod memory;

pub use maildir::{
    read_maildir, MaildirBody, MaildirContents, MaildirDrop, MaildirMessage, MaildirStore,
    MaildirWriter, MessageFile, MessageState,
};
pub use memory::{MemoryBody, MemoryDrop, MemoryStore};

/// What happens to a message a POP3 client deleted, once its session ends with QUIT.
///
/// Every policy removes the message from POP3 for good: no later session lists it again. They
/// differ in what the user's other mail clients (IMAP, webmail) still see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeletePolicy {
    /// The message is gone for every client, and its space is freed.
    #[default]
    Expunge,
    /// The message moves to the user's trash, where other clients can still read or
    /// restore it; it no longer counts in the maildrop's [`Usage`].
    Trash,
    /// The message stays where it is for other clients, still counted in [`Usage`]; only
    /// POP3 no longer shows it.
    Hide,
}

/// What a user chose for POP3, as Gmail's "POP download" settings: kept by the store, set by
/// `postie user pop-settings` and the account page, applied by every session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PopSettings {
    /// "From now on": mail delivered before this is never listed to POP3 again (it stays
    /// stored). `None`: all mail.
    pub since: Option<SystemTime>,
    /// What happens at QUIT to a message a session retrieved and did not delete.
    pub after_retrieval: AfterRetrieval,
}

/// What happens at QUIT to a message a POP3 client retrieved (RETR) and did not delete; a
/// client's own DELE still applies as [`DeletePolicy`] says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AfterRetrieval {
    /// Stays listed (marked seen).
    #[default]
    Keep,
    /// Kept and counted, no longer listed except to a [`View::Recent`] session: as
    /// [`DeletePolicy::Hide`].
    Archive,
    /// Moved to the user's trash, as [`DeletePolicy::Trash`].
    Trash,
    /// Removed, as [`DeletePolicy::Expunge`].
    Delete,
}

impl AfterRetrieval {
    pub const ALL: [AfterRetrieval; 4] = [
        AfterRetrieval::Keep,
        AfterRetrieval::Archive,
        AfterRetrieval::Trash,
        AfterRetrieval::Delete,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AfterRetrieval::Keep => "keep",
            AfterRetrieval::Archive => "archive",
            AfterRetrieval::Trash => "trash",
            AfterRetrieval::Delete => "delete",
        }
    }

    /// The name [`as_str`](Self::as_str) gives, or `None`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|choice| choice.as_str() == name)
    }

    /// The deletion this choice amounts to, `None` for keep.
    pub fn as_policy(self) -> Option<DeletePolicy> {
        match self {
            AfterRetrieval::Keep => None,
            AfterRetrieval::Archive => Some(DeletePolicy::Hide),
            AfterRetrieval::Trash => Some(DeletePolicy::Trash),
            AfterRetrieval::Delete => Some(DeletePolicy::Expunge),
        }
    }
}

/// Which of a maildrop's messages a session sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum View {
    /// What POP3 lists: messages not deleted, hidden or archived, within the user's window.
    #[default]
    Normal,
    /// Gmail's `recent:` login: the last [`RECENT_DAYS`] of mail within the user's window,
    /// archived and hidden messages too, so that a second device gets every message; its
    /// retrievals change nothing but seen marks ([`PopSettings::after_retrieval`] is not
    /// applied), its deletions apply as any session's.
    Recent,
}

/// How far back a [`View::Recent`] session sees.
pub const RECENT_DAYS: u64 = 30;

impl View {
    /// The earliest delivery time this view lists under `settings`, at `now`.
    pub fn earliest(self, settings: &PopSettings, now: SystemTime) -> Option<SystemTime> {
        let recent = match self {
            View::Normal => None,
            View::Recent => now.checked_sub(Duration::from_secs(RECENT_DAYS * 86_400)),
        };
        match (settings.since, recent) {
            (Some(since), Some(recent)) => Some(since.max(recent)),
            (since, recent) => since.or(recent),
        }
    }

    /// What a retrieval that was not deleted becomes at QUIT.
    pub fn after_retrieval(self, settings: &PopSettings) -> AfterRetrieval {
        match self {
            View::Normal => settings.after_retrieval,
            View::Recent => AfterRetrieval::Keep,
        }
    }
}

/// One message as a POP3 session sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageInfo {
    /// Size in octets of the message with CRLF line endings, before byte-stuffing.
    pub size: u64,
    /// The persistent unique id, never given to another message of this maildrop.
    pub uidl: Uidl,
    /// A POP3 client has downloaded the message in full (RETR) in an earlier session that
    /// ended with QUIT; other mail clients show it as read.
    pub seen: bool,
}

/// What a session did, applied when it ends with QUIT, all together: a store that can
/// applies it atomically. A session that ends any other way applies nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Update {
    /// Messages the client deleted (0-based positions in the snapshot).
    pub deleted: Vec<usize>,
    /// Messages the client downloaded in full; those not deleted become [`MessageInfo::seen`].
    pub retrieved: Vec<usize>,
    pub policy: DeletePolicy,
}

impl Update {
    /// The messages retrieved and not deleted: those [`AfterRetrieval`] applies to.
    pub fn kept_retrievals(&self) -> Vec<usize> {
        let mut kept: Vec<usize> = self
            .retrieved
            .iter()
            .copied()
            .filter(|index| !self.deleted.contains(index))
            .collect();
        kept.sort_unstable();
        kept.dedup();
        kept
    }
}

/// What a maildrop holds, for quota checks at delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Octets of the messages as stored.
    pub bytes: u64,
    pub messages: u64,
}

/// A user's limits; 0 means no limit, as in Dovecot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Quota {
    /// Octets of all messages as stored.
    pub bytes: u64,
    pub messages: u64,
}

impl Quota {
    /// Whether adding one message of `size` octets to `usage` goes over this quota.
    pub fn exceeded_by(&self, usage: Usage, size: u64) -> bool {
        let bytes = self.bytes > 0 && usage.bytes.saturating_add(size) > self.bytes;
        let messages = self.messages > 0 && usage.messages.saturating_add(1) > self.messages;
        bytes || messages
    }

    pub fn is_unlimited(&self) -> bool {
        *self == Quota::default()
    }
}

/// A message to deliver, readable from its start as often as a store needs (a store may read
/// it once per recipient, or once for all). Raw bytes, LF or CRLF line endings.
pub trait MessageSource: Send + Sync + 'static {
    /// Octets of the message.
    fn len(&self) -> u64;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The message from its first byte; each reader keeps its own position. Blocking.
    fn reader(&self) -> io::Result<Box<dyn Read + Send + '_>>;
}

impl MessageSource for Vec<u8> {
    fn len(&self) -> u64 {
        self.as_slice().len() as u64
    }

    fn reader(&self) -> io::Result<Box<dyn Read + Send + '_>> {
        Ok(Box::new(self.as_slice()))
    }
}

/// One recipient of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// The maildrop's owner.
    pub user: String,
    /// This recipient's own lines on top of the shared message (trace headers such as
    /// `Return-Path`, `Delivered-To`, `Received`); may be empty.
    pub headers: Vec<u8>,
    /// Checked inside the delivery: over it, this recipient gets [`StoreError::OverQuota`].
    pub quota: Quota,
}

/// A message and everyone it goes to.
#[derive(Clone)]
pub struct Delivery {
    pub message: Arc<dyn MessageSource>,
    pub recipients: Vec<Recipient>,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("message_len", &self.message.len())
            .field("recipients", &self.recipients)
            .finish()
    }
}

/// Errors of the storage layer. The server maps `InUse` to `[IN-USE]`, `Permanent` to
/// `[SYS/PERM]` and the rest to `[SYS/TEMP]`; delivery maps `OverQuota` to the quota reply
/// and `Permanent` to a permanent failure, the rest to a temporary one.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("maildrop is in use by another session")]
    InUse,
    #[error("message {0} no longer exists in the maildrop")]
    Vanished(usize),
    #[error("temporary storage failure: {0}")]
    Temporary(String),
    #[error("permanent storage failure: {0}")]
    Permanent(String),
    #[error("quota exceeded: {0}")]
    OverQuota(String),
}

/// A store of maildrops, one per user.
pub trait MailStore: Send + Sync + 'static {
    type Maildrop: Maildrop;

    /// Opens `user`'s maildrop for a POP3 session: a snapshot of the messages present now, in
    /// delivery order, taken without reading message bodies, as `view` and the user's
    /// [`PopSettings`] select them. With `exclusive`, a second exclusive open of the same
    /// maildrop fails with [`StoreError::InUse`] while the first is alive (not yet ended
    /// with [`Maildrop::quit`] or dropped); delivery is never held up by it. A maildrop that
    /// does not exist yet opens empty.
    fn open(
        &self,
        user: &str,
        exclusive: bool,
        view: View,
    ) -> impl Future<Output = Result<Self::Maildrop, StoreError>> + Send;

    /// `user`'s POP3 settings; the defaults for a user who never chose.
    fn pop_settings(
        &self,
        user: &str,
    ) -> impl Future<Output = Result<PopSettings, StoreError>> + Send;

    /// Stores `user`'s POP3 settings, durably; sessions opened afterwards follow them.
    fn set_pop_settings(
        &self,
        user: &str,
        settings: PopSettings,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Delivers `delivery.message` to each recipient, its own headers on top: one result per
    /// recipient, in order. Ok means durable: the copy survives a crash, and the next
    /// snapshot of that maildrop lists it. A failed copy leaves nothing visible. Creates the
    /// maildrop if needed.
    fn deliver(
        &self,
        delivery: Delivery,
    ) -> impl Future<Output = Vec<Result<(), StoreError>>> + Send;

    /// What `user`'s maildrop holds now, hidden messages included (they still take space),
    /// without reading bodies. A maildrop that does not exist yet is empty.
    fn usage(&self, user: &str) -> impl Future<Output = Result<Usage, StoreError>> + Send;
}

/// An open maildrop: a fixed snapshot for one session.
pub trait Maildrop: Send + 'static {
    type Body: MessageBody;

    /// The snapshot, in order; message number n is `messages()[n - 1]`. Mail delivered
    /// after the open is not in it.
    fn messages(&self) -> &[MessageInfo];

    /// The content of message `index` (0-based) as stored, line endings as delivered.
    /// [`StoreError::Vanished`] when the message was removed since the snapshot (by another
    /// session); [`StoreError::Permanent`] for an index outside the snapshot.
    fn open_message(
        &mut self,
        index: usize,
    ) -> impl Future<Output = Result<Self::Body, StoreError>> + Send;

    /// Ends the session with QUIT: applies `update` durably and releases the maildrop, and
    /// does to each message retrieved and not deleted what the user's
    /// [`PopSettings::after_retrieval`] says (as read at open; nothing in a
    /// [`View::Recent`] session). Deletion is by unique id: a message changed meanwhile by
    /// another client is still found, and one already gone is not an error. An index outside
    /// the snapshot is refused before anything is changed.
    fn quit(self, update: Update) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// A message being read, front to back.
pub trait MessageBody: Send {
    /// Reads the next bytes into `buf`, at most `buf.len()`; 0 at the end of the message.
    /// An error mid-message means the rest cannot be had: the caller must not pretend the
    /// message ended. A body whose storage shrinks while it is read (a file truncated under a
    /// RETR) is such an error, never an early end.
    fn read(&mut self, buf: &mut [u8]) -> impl Future<Output = io::Result<usize>> + Send;

    /// The file holding the message, when the store knows without reading it (from what it
    /// recorded at delivery) that the octets as stored, with a `.` inserted at each of
    /// [`WireFile::stuffing`]'s offsets, are the message's wire form: CRLF line endings
    /// throughout, a final CRLF, and as many octets as the snapshot's [`MessageInfo::size`]
    /// before the insertions. A shell may then send the file as it is (`sendfile`) between
    /// those offsets, instead of calling [`read`](Self::read); `None` (the default) for every
    /// other message and store. The file may still be truncated or replaced meanwhile: a
    /// sender must check that it got `len` octets.
    fn wire_file(&self) -> Option<WireFile<'_>> {
        None
    }
}

/// A message file whose octets are its wire form but for dot-stuffing (see
/// [`MessageBody::wire_file`]).
#[derive(Debug, Clone, Copy)]
pub struct WireFile<'a> {
    pub file: &'a std::fs::File,
    /// Octets of the message, from offset 0.
    pub len: u64,
    /// Ascending offsets of the lines that start with `.`: a `.` goes out before each.
    pub stuffing: &'a [u64],
}

/// Entry points for the fuzz targets (crate postie-fuzz): the parsers of outside bytes.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    use crate::maildir::{dovecot::DovecotList, index::Index, name};

    /// Every Maildir file-name parser on one name; a serialized index parses back the same.
    pub fn maildir_name(file_name: &[u8]) {
        let _ = name::base(file_name);
        let _ = name::flags(file_name);
        let _ = name::with_flag(file_name, b'S');
        let _ = name::size_field(file_name, b'S');
        let _ = name::size_field(file_name, b'W');
        let _ = name::stored_form(file_name);
        let _ = name::arrival_key(file_name);
        let _ = name::in_cur(file_name);
    }

    pub fn postie_uidlist(bytes: &[u8]) {
        if let Ok(index) = Index::parse(bytes) {
            let again = Index::parse(&index.serialize()).expect("a serialized index parses");
            assert_eq!(again, index, "serialize/parse round trip");
        }
    }

    pub fn dovecot_uidlist(bytes: &[u8]) {
        let _ = DovecotList::parse(bytes);
    }
}
