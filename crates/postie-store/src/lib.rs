//! Mail storage for postie.
//!
//! The POP3 server sees a user's mail only through [`MailStore`] and [`Maildrop`]: it opens a
//! maildrop at login (a snapshot of sizes and UIDLs, no bodies read), streams message contents
//! on RETR/TOP, and at QUIT commits the deletions. Delivery (LMTP, SMTP, `postie deliver`, the
//! demo's welcome messages) goes through [`MailStore::deliver`].
//!
//! Calls are blocking (file I/O); async callers run them on a blocking thread.
//!
//! Two stores implement the traits: [`MaildirStore`], Maildirs that Dovecot, Courier and mutt
//! share, with Dovecot's UIDLs; and [`MemoryStore`], for tests of the server. Sizes follow the
//! one rule of [`crlf`].

use std::io::Read;

pub mod crlf;
mod maildir;
mod memory;

pub use maildir::{MaildirDrop, MaildirStore};
pub use memory::{MemoryDrop, MemoryStore};

/// What a deleted message becomes at commit time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeletePolicy {
    /// Remove the file.
    #[default]
    Expunge,
    /// Move it to the Maildir++ folder `.Trash`.
    Trash,
    /// Keep the file, never show it to POP3 again.
    Hide,
}

/// One message as a POP3 session sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageInfo {
    /// Size in octets of the message with CRLF line endings, before byte-stuffing.
    pub size: u64,
    /// The persistent unique id: 1–70 octets in 0x21..=0x7E.
    pub uidl: String,
}

/// What a maildrop holds, for quota checks at delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Octets of the messages as stored.
    pub bytes: u64,
    pub messages: u64,
}

/// Errors of the storage layer. The server maps `Temporary` to `[SYS/TEMP]`, `Permanent` to
/// `[SYS/PERM]`, `InUse` to `[IN-USE]`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("maildrop is in use by another session")]
    InUse,
    #[error("message {0} no longer exists in the maildrop")]
    Vanished(String),
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
    /// delivery order. Reads no message bodies when sizes are recorded (file name or index).
    /// With `exclusive`, a second open of the same maildrop fails with [`StoreError::InUse`]
    /// while the first is alive. A maildrop that does not exist yet opens empty.
    fn open(&self, user: &str, exclusive: bool) -> Result<Self::Maildrop, StoreError>;

    /// Delivers one message (raw bytes, LF or CRLF line endings) to `user`'s maildrop,
    /// durably: when this returns Ok, the message survives a crash. Creates the maildrop if needed.
    fn deliver(&self, user: &str, message: &mut dyn Read) -> Result<(), StoreError>;

    /// What `user`'s maildrop holds now, every message counted (hidden ones too: they still
    /// take space). Reads no bodies when sizes are recorded. A maildrop that does not exist
    /// yet is empty.
    fn usage(&self, user: &str) -> Result<Usage, StoreError>;
}

/// An open maildrop: a fixed snapshot for one session.
pub trait Maildrop: Send + 'static {
    /// The snapshot, in order; message number n is `messages()[n - 1]`.
    fn messages(&self) -> &[MessageInfo];

    /// The raw content of message `index` (0-based), streamed; line endings as stored.
    fn open_message(&mut self, index: usize) -> Result<Box<dyn Read + Send>, StoreError>;

    /// Marks message `index` as seen (Maildir `S` flag); the server calls this at QUIT for the
    /// messages the session retrieved.
    fn mark_seen(&mut self, index: usize) -> Result<(), StoreError>;

    /// Applies the session's deletions (0-based indices) durably, following `policy`, and
    /// releases the maildrop. Deletion is by unique id: a message renamed meanwhile (flags
    /// changed by another client) is still found. A message already gone is not an error.
    fn commit(self, deleted: &[usize], policy: DeletePolicy) -> Result<(), StoreError>;
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
