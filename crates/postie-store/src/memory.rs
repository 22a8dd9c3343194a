//! An in-memory store that keeps the whole contract, for testing the server and as the
//! suite's reference: snapshots at open, exclusive sessions, uids never reused, the three
//! delete policies, seen marks, quotas.
//!
//! UIDLs have the Maildir form, with a fixed uidvalidity of 1, so tests can predict them:
//! the first message delivered to a user is `0000000100000001`.

use std::collections::HashMap;
use std::io::{self, Read};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use postie_types::Uidl;

use crate::crlf::CrlfCounter;
use crate::{
    AfterRetrieval, DeletePolicy, Delivery, MailStore, Maildrop, MessageBody, MessageInfo,
    PopSettings, Recipient, StoreError, Update, Usage, View,
};

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
    in_use: bool,
    settings: PopSettings,
}

#[derive(Debug, Clone)]
struct Stored {
    uid: u32,
    content: Arc<[u8]>,
    crlf_size: u64,
    seen: bool,
    hidden: bool,
    delivered: SystemTime,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }
}

fn uidl(uid: u32) -> Uidl {
    Uidl::from_uid(uid, UIDVALIDITY)
}

/// The data stays consistent whatever panicked while holding the lock (no update spans two
/// statements that could panic in between), so a poisoned lock is used as is.
fn lock(users: &Mutex<HashMap<String, Mailbox>>) -> MutexGuard<'_, HashMap<String, Mailbox>> {
    users
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl MemoryStore {
    fn open_now(&self, user: &str, exclusive: bool, view: View) -> Result<MemoryDrop, StoreError> {
        let mut users = lock(&self.users);
        let mailbox = users.entry(user.to_owned()).or_default();
        if exclusive {
            if mailbox.in_use {
                return Err(StoreError::InUse);
            }
            mailbox.in_use = true;
        }
        let earliest = view.earliest(&mailbox.settings, SystemTime::now());
        let snapshot: Vec<Stored> = mailbox
            .messages
            .iter()
            .filter(|m| view == View::Recent || !m.hidden)
            .filter(|m| earliest.is_none_or(|earliest| m.delivered >= earliest))
            .cloned()
            .collect();
        let messages = snapshot
            .iter()
            .map(|m| MessageInfo {
                size: m.crlf_size,
                uidl: uidl(m.uid),
                seen: m.seen,
            })
            .collect();
        Ok(MemoryDrop {
            users: Arc::clone(&self.users),
            user: user.to_owned(),
            exclusive,
            after_retrieval: view.after_retrieval(&mailbox.settings),
            snapshot,
            messages,
        })
    }

    fn deliver_one(&self, recipient: &Recipient, body: &[u8]) -> Result<(), StoreError> {
        let mut content = Vec::with_capacity(recipient.headers.len() + body.len());
        content.extend_from_slice(&recipient.headers);
        content.extend_from_slice(body);
        let mut counter = CrlfCounter::new();
        counter.update(&content);
        let mut users = lock(&self.users);
        let mailbox = users.entry(recipient.user.clone()).or_default();
        // Checked under the same lock as the append: racing deliveries cannot overshoot.
        if recipient
            .quota
            .exceeded_by(mailbox.usage(), content.len() as u64)
        {
            return Err(StoreError::OverQuota(format!(
                "{} holds {} octets in {} messages",
                recipient.user,
                mailbox.usage().bytes,
                mailbox.usage().messages
            )));
        }
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
            delivered: SystemTime::now(),
        });
        Ok(())
    }
}

impl Mailbox {
    fn usage(&self) -> Usage {
        Usage {
            bytes: self.messages.iter().map(|m| m.content.len() as u64).sum(),
            messages: self.messages.len() as u64,
        }
    }
}

impl MailStore for MemoryStore {
    type Maildrop = MemoryDrop;

    async fn open(
        &self,
        user: &str,
        exclusive: bool,
        view: View,
    ) -> Result<MemoryDrop, StoreError> {
        self.open_now(user, exclusive, view)
    }

    async fn pop_settings(&self, user: &str) -> Result<PopSettings, StoreError> {
        let users = lock(&self.users);
        Ok(users
            .get(user)
            .map(|mailbox| mailbox.settings)
            .unwrap_or_default())
    }

    async fn set_pop_settings(&self, user: &str, settings: PopSettings) -> Result<(), StoreError> {
        lock(&self.users)
            .entry(user.to_owned())
            .or_default()
            .settings = settings;
        Ok(())
    }

    async fn deliver(&self, delivery: Delivery) -> Vec<Result<(), StoreError>> {
        let mut body = Vec::new();
        let read = delivery
            .message
            .reader()
            .and_then(|mut reader| reader.read_to_end(&mut body));
        delivery
            .recipients
            .iter()
            .map(|recipient| match &read {
                Ok(_) => self.deliver_one(recipient, &body),
                Err(e) => Err(StoreError::Temporary(format!("reading the message: {e}"))),
            })
            .collect()
    }

    async fn usage(&self, user: &str) -> Result<Usage, StoreError> {
        let users = lock(&self.users);
        Ok(users.get(user).map(Mailbox::usage).unwrap_or_default())
    }
}

/// A session's snapshot of an in-memory maildrop.
#[derive(Debug)]
pub struct MemoryDrop {
    users: Arc<Mutex<HashMap<String, Mailbox>>>,
    user: String,
    exclusive: bool,
    after_retrieval: AfterRetrieval,
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
            .ok_or(StoreError::Vanished(index + 1))
    }
}

impl MemoryDrop {
    fn apply(&self, update: &Update) -> Result<(), StoreError> {
        let uids = |indices: &[usize]| {
            indices
                .iter()
                .map(|&index| self.uid(index))
                .collect::<Result<Vec<u32>, _>>()
        };
        let deleted = uids(&update.deleted)?;
        let kept = uids(&update.kept_retrievals())?;
        let mut users = lock(&self.users);
        let Some(mailbox) = users.get_mut(&self.user) else {
            return Ok(());
        };
        for m in mailbox.messages.iter_mut() {
            if kept.contains(&m.uid) {
                m.seen = true;
            }
        }
        remove(mailbox, &deleted, update.policy);
        if let Some(policy) = self.after_retrieval.as_policy() {
            remove(mailbox, &kept, policy);
        }
        Ok(())
    }
}

fn remove(mailbox: &mut Mailbox, uids: &[u32], policy: DeletePolicy) {
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
        // No other client reads a memory store, so its trash need not be kept.
        DeletePolicy::Expunge | DeletePolicy::Trash => {
            mailbox.messages.retain(|m| !uids.contains(&m.uid));
        }
    }
}

impl Maildrop for MemoryDrop {
    type Body = MemoryBody;

    fn messages(&self) -> &[MessageInfo] {
        &self.messages
    }

    async fn open_message(&mut self, index: usize) -> Result<MemoryBody, StoreError> {
        let content = self.with_stored(index, |m| Arc::clone(&m.content))?;
        Ok(MemoryBody { content, at: 0 })
    }

    async fn quit(self, update: Update) -> Result<(), StoreError> {
        self.apply(&update)
    }
}

/// A message of a [`MemoryStore`] being read; shares the stored bytes, copies nothing.
#[derive(Debug)]
pub struct MemoryBody {
    content: Arc<[u8]>,
    at: usize,
}

impl MessageBody for MemoryBody {
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (&self.content[self.at..]).read(buf)?;
        self.at += n;
        Ok(n)
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
