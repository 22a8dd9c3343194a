//! An in-memory store with the semantics of the Maildir one, for testing the server: snapshots
//! at open, exclusive sessions, uids never reused, the three delete policies.
//!
//! UIDLs have the Maildir form, with a fixed uidvalidity of 1, so tests can predict them:
//! the first message delivered to a user is `0000000100000001`.

use std::collections::HashMap;
use std::io::{Cursor, Read};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::crlf::CrlfCounter;
use crate::{DeletePolicy, MailStore, Maildrop, MessageInfo, StoreError, Usage};

const UIDVALIDITY: u32 = 1;

/// Maildrops held in memory; clones share them.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    users: Arc<Mutex<HashMap<String, Mailbox>>>,
}

#[derive(Debug, Default)]
struct Mailbox {
    next_uid: u32,
    messages: Vec<Stored>,
    trash: Vec<Stored>,
    in_use: bool,
}

#[derive(Debug, Clone)]
struct Stored {
    uid: u32,
    content: Arc<[u8]>,
    crlf_size: u64,
    seen: bool,
    hidden: bool,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// UIDLs of `user`'s messages marked seen, in delivery order.
    pub fn seen(&self, user: &str) -> Vec<String> {
        self.uidls(user, |mailbox| &mailbox.messages, |m| m.seen)
    }

    /// UIDLs of `user`'s messages moved to the trash by [`DeletePolicy::Trash`].
    pub fn trashed(&self, user: &str) -> Vec<String> {
        self.uidls(user, |mailbox| &mailbox.trash, |_| true)
    }

    /// UIDLs of `user`'s messages hidden by [`DeletePolicy::Hide`], which still exist.
    pub fn hidden(&self, user: &str) -> Vec<String> {
        self.uidls(user, |mailbox| &mailbox.messages, |m| m.hidden)
    }

    fn uidls(
        &self,
        user: &str,
        list: impl Fn(&Mailbox) -> &Vec<Stored>,
        keep: impl Fn(&Stored) -> bool,
    ) -> Vec<String> {
        let users = lock(&self.users);
        users.get(user).map_or_else(Vec::new, |mailbox| {
            list(mailbox)
                .iter()
                .filter(|m| keep(m))
                .map(|m| uidl(m.uid))
                .collect()
        })
    }
}

fn uidl(uid: u32) -> String {
    format!("{uid:08x}{UIDVALIDITY:08x}")
}

/// The data stays consistent whatever panicked while holding the lock (no update spans two
/// statements that could panic in between), so a poisoned lock is used as is.
fn lock(users: &Mutex<HashMap<String, Mailbox>>) -> MutexGuard<'_, HashMap<String, Mailbox>> {
    users
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl MailStore for MemoryStore {
    type Maildrop = MemoryDrop;

    fn open(&self, user: &str, exclusive: bool) -> Result<MemoryDrop, StoreError> {
        let mut users = lock(&self.users);
        let mailbox = users.entry(user.to_owned()).or_default();
        if exclusive {
            if mailbox.in_use {
                return Err(StoreError::InUse);
            }
            mailbox.in_use = true;
        }
        let snapshot: Vec<Stored> = mailbox
            .messages
            .iter()
            .filter(|m| !m.hidden)
            .cloned()
            .collect();
        let messages = snapshot
            .iter()
            .map(|m| MessageInfo {
                size: m.crlf_size,
                uidl: uidl(m.uid),
            })
            .collect();
        Ok(MemoryDrop {
            users: Arc::clone(&self.users),
            user: user.to_owned(),
            exclusive,
            snapshot,
            messages,
        })
    }

    fn deliver(&self, user: &str, message: &mut dyn Read) -> Result<(), StoreError> {
        let mut content = Vec::new();
        message
            .read_to_end(&mut content)
            .map_err(|e| StoreError::Temporary(format!("reading the message: {e}")))?;
        let mut counter = CrlfCounter::new();
        counter.update(&content);
        let mut users = lock(&self.users);
        let mailbox = users.entry(user.to_owned()).or_default();
        let uid = mailbox.next_uid.max(1);
        mailbox.next_uid = uid
            .checked_add(1)
            .ok_or_else(|| StoreError::Permanent("uids exhausted".into()))?;
        mailbox.messages.push(Stored {
            uid,
            content: content.into(),
            crlf_size: counter.crlf_size(),
            seen: false,
            hidden: false,
        });
        Ok(())
    }

    fn usage(&self, user: &str) -> Result<Usage, StoreError> {
        let users = lock(&self.users);
        let messages = users.get(user).map_or(&[][..], |m| &m.messages[..]);
        Ok(Usage {
            bytes: messages.iter().map(|m| m.content.len() as u64).sum(),
            messages: messages.len() as u64,
        })
    }
}

/// A session's snapshot of an in-memory maildrop.
#[derive(Debug)]
pub struct MemoryDrop {
    users: Arc<Mutex<HashMap<String, Mailbox>>>,
    user: String,
    exclusive: bool,
    snapshot: Vec<Stored>,
    messages: Vec<MessageInfo>,
}

impl MemoryDrop {
    fn uid(&self, index: usize) -> Result<u32, StoreError> {
        self.snapshot
            .get(index)
            .map(|m| m.uid)
            .ok_or_else(|| StoreError::Permanent(format!("no message number {}", index + 1)))
    }

    /// Runs `f` on the stored message `index` if it still exists.
    fn with_stored<T>(
        &self,
        index: usize,
        f: impl FnOnce(&mut Stored) -> T,
    ) -> Result<T, StoreError> {
        let uid = self.uid(index)?;
        let mut users = lock(&self.users);
        users
            .get_mut(&self.user)
            .and_then(|mailbox| mailbox.messages.iter_mut().find(|m| m.uid == uid))
            .map(f)
            .ok_or_else(|| StoreError::Vanished((index + 1).to_string()))
    }
}

impl Maildrop for MemoryDrop {
    fn messages(&self) -> &[MessageInfo] {
        &self.messages
    }

    fn open_message(&mut self, index: usize) -> Result<Box<dyn Read + Send>, StoreError> {
        let content = self.with_stored(index, |m| Arc::clone(&m.content))?;
        Ok(Box::new(Cursor::new(content)))
    }

    fn mark_seen(&mut self, index: usize) -> Result<(), StoreError> {
        self.with_stored(index, |m| m.seen = true)
    }

    fn commit(self, deleted: &[usize], policy: DeletePolicy) -> Result<(), StoreError> {
        let uids = deleted
            .iter()
            .map(|&index| self.uid(index))
            .collect::<Result<Vec<u32>, _>>()?;
        let mut users = lock(&self.users);
        let Some(mailbox) = users.get_mut(&self.user) else {
            return Ok(());
        };
        match policy {
            DeletePolicy::Hide => {
                for m in mailbox
                    .messages
                    .iter_mut()
                    .filter(|m| uids.contains(&m.uid))
                {
                    m.hidden = true;
                }
            }
            DeletePolicy::Expunge | DeletePolicy::Trash => {
                let (gone, kept) = std::mem::take(&mut mailbox.messages)
                    .into_iter()
                    .partition(|m| uids.contains(&m.uid));
                mailbox.messages = kept;
                if policy == DeletePolicy::Trash {
                    mailbox.trash.extend(gone);
                }
            }
        }
        Ok(())
    }
}

impl Drop for MemoryDrop {
    fn drop(&mut self) {
        if self.exclusive {
            if let Some(mailbox) = lock(&self.users).get_mut(&self.user) {
                mailbox.in_use = false;
            }
        }
    }
}
