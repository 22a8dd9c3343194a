//! The Maildir store: one Maildir per user, laid out and named as Dovecot, Courier and mutt
//! expect, with Dovecot's UIDLs.
//!
//! Layout of a user's Maildir, besides the standard tmp/, new/ and cur/:
//!
//! * `postie-uidlist`: postie's index (format in [`index`]), replaced atomically;
//! * `postie-uidlist.backup`: the same, written after it, to repair a damaged index;
//! * `postie-uidlist.lock`: flock held while the index is read, brought up to date and saved;
//! * `postie-pop3.lock`: flock held by an exclusive POP3 session for its whole length;
//! * `postie-quota.lock`: flock held by a delivery with a quota while it checks and writes;
//! * `dovecot-uidlist`: Dovecot's, only ever read, to carry its UIDLs over;
//! * `.Trash/`: the Maildir++ folder of [`crate::DeletePolicy::Trash`].
//!
//! What the contract's words mean here:
//!
//! * [`crate::DeletePolicy::Expunge`]: the file is unlinked.
//! * [`crate::DeletePolicy::Trash`]: the file moves, under the same name, into `cur/` of the
//!   Maildir++ folder `.Trash`, which other Maildir readers show as the Trash folder.
//! * [`crate::DeletePolicy::Hide`]: the file stays; its index record is marked hidden, and
//!   sync never lists a hidden record again, whatever other clients rename.
//! * [`crate::MessageInfo::seen`]: the Maildir `S` flag in the file name (`:2,S`), which
//!   Dovecot, mutt and Courier show as read; QUIT sets it with a rename into `cur/`.
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
mod pop_settings;
mod scan;
mod snapshot_cache;
mod state;
mod sync;
mod transfer;
mod usage;

use std::path::PathBuf;
use std::sync::Arc;

use crate::{Delivery, MailStore, PopSettings, StoreError, Usage, View};
use error::MaildirError;
use layout::Layout;
pub use maildrop::{MaildirBody, MaildirDrop};
use snapshot_cache::SnapshotCache;
pub use transfer::{
    read_maildir, MaildirContents, MaildirMessage, MaildirWriter, MessageFile, MessageState,
};

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

/// Runs blocking Maildir work on the blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(StoreError::Temporary(format!("maildir task failed: {e}"))))
}

impl MailStore for MaildirStore {
    type Maildrop = MaildirDrop;

    async fn open(
        &self,
        user: &str,
        exclusive: bool,
        view: View,
    ) -> Result<MaildirDrop, StoreError> {
        let layout = self.layout(user)?;
        let snapshots = Arc::clone(&self.snapshots);
        blocking(move || Ok(MaildirDrop::open(layout, exclusive, view, &snapshots)?)).await
    }

    async fn pop_settings(&self, user: &str) -> Result<PopSettings, StoreError> {
        let layout = self.layout(user)?;
        blocking(move || Ok(pop_settings::read(&layout)?)).await
    }

    async fn set_pop_settings(&self, user: &str, settings: PopSettings) -> Result<(), StoreError> {
        let layout = self.layout(user)?;
        blocking(move || Ok(pop_settings::write(&layout, &settings)?)).await
    }

    /// Each recipient's copy is written, synced and published on its own, in order.
    async fn deliver(&self, delivery: Delivery) -> Vec<Result<(), StoreError>> {
        let store = self.clone();
        let count = delivery.recipients.len();
        blocking(move || {
            Ok(delivery
                .recipients
                .iter()
                .map(|recipient| {
                    let layout = store.layout(&recipient.user)?;
                    Ok(deliver::deliver(&layout, recipient, &*delivery.message)?)
                })
                .collect())
        })
        .await
        .unwrap_or_else(|error| {
            let text = error.to_string();
            (0..count)
                .map(|_| Err(StoreError::Temporary(text.clone())))
                .collect()
        })
    }

    async fn usage(&self, user: &str) -> Result<Usage, StoreError> {
        let layout = self.layout(user)?;
        blocking(move || Ok(usage::usage(&layout)?)).await
    }
}
