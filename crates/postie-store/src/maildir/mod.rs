//! The Maildir store: one Maildir per user, laid out and named as Dovecot, Courier and mutt
//! expect, with Dovecot's UIDLs.
//!
//! Layout of a user's Maildir, besides the standard tmp/, new/ and cur/:
//!
//! * `postie-uidlist`: postie's index (format in [`index`]), replaced atomically;
//! * `postie-uidlist.backup`: the same, written after it, to repair a damaged index;
//! * `postie-uidlist.lock`: flock held while the index is read, brought up to date and saved;
//! * `postie-pop3.lock`: flock held by an exclusive POP3 session for its whole length;
//! * `dovecot-uidlist`: Dovecot's, only ever read, to carry its UIDLs over;
//! * `.Trash/`: the Maildir++ folder of [`crate::DeletePolicy::Trash`].
//!
//! A UIDL is Dovecot's default `pop3_uidl_format = %08Xu%08Xv`, the uid then the uidvalidity
//! as 8 hex digits each. Dovecot's `%X` prints lowercase digits (Dovecot 2.3 answers UIDL with
//! `000000036b08c998`), and so do we: the point is to give clients exactly the UIDLs they had.

mod commit;
mod deliver;
pub(crate) mod dovecot;
mod durable;
mod error;
pub(crate) mod index;
mod layout;
mod lock;
mod maildrop;
pub(crate) mod name;
mod scan;
mod snapshot_cache;
mod state;
mod sync;
mod usage;

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use crate::{MailStore, StoreError, Usage};
use error::MaildirError;
use layout::Layout;
pub use maildrop::MaildirDrop;
use snapshot_cache::SnapshotCache;

/// Maildirs found by a path template such as `/var/mail/{user}/Maildir`.
#[derive(Debug, Clone)]
pub struct MaildirStore {
    template: String,
    /// Shared by clones: every listener of one server sees the same snapshots.
    snapshots: Arc<SnapshotCache>,
}

impl MaildirStore {
    /// `template` names each user's Maildir: every `{user}` in it is replaced by the user name.
    pub fn new(template: String) -> Self {
        Self {
            template,
            snapshots: Arc::default(),
        }
    }

    /// The Maildir of `user`. User names that could lead out of the template's place (`/`,
    /// `..`, `.`, NUL, empty) are refused with [`StoreError::Permanent`].
    pub fn maildir_path(&self, user: &str) -> Result<PathBuf, StoreError> {
        Ok(self.layout(user)?.root)
    }

    fn layout(&self, user: &str) -> Result<Layout, MaildirError> {
        let unsafe_name =
            user.is_empty() || user == "." || user.contains("..") || user.contains(['/', '\0']);
        if unsafe_name {
            return Err(MaildirError::BadUser(user.to_owned()));
        }
        Ok(Layout {
            root: PathBuf::from(self.template.replace("{user}", user)),
        })
    }
}

impl MailStore for MaildirStore {
    type Maildrop = MaildirDrop;

    fn open(&self, user: &str, exclusive: bool) -> Result<MaildirDrop, StoreError> {
        Ok(MaildirDrop::open(
            self.layout(user)?,
            exclusive,
            &self.snapshots,
        )?)
    }

    fn deliver(&self, user: &str, message: &mut dyn Read) -> Result<(), StoreError> {
        Ok(deliver::deliver(&self.layout(user)?, message)?)
    }

    fn usage(&self, user: &str) -> Result<Usage, StoreError> {
        Ok(usage::usage(&self.layout(user)?)?)
    }
}
