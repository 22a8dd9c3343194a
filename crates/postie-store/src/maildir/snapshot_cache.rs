//! Logins to a large maildrop that has not changed since the last login reuse that login's
//! snapshot instead of reading the directories and the index again.
//!
//! Whether anything changed is told by the modification times of new/ and cur/ (every
//! delivery, rename and removal changes them) and the identity of the index file (replaced
//! whole on every change). A time only proves "unchanged" if it is older than the clock's
//! granularity: a change in the same tick would leave it as it was. So a snapshot is only kept
//! when its stamp had settled before the directories were read, and when the stamp is the same
//! after the reading, so that nothing slipped in between.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::layout::{Layout, Sub};
use super::scan::Located;
use crate::MessageInfo;

/// Smaller maildrops are read faster than they would be looked up.
const MIN_MESSAGES: usize = 512;
/// Maildrops remembered at once; memory stays bounded whoever logs in.
const CAPACITY: usize = 32;
/// Longer than a file-system timestamp tick (a jiffy, at most 10 ms on Linux).
const SETTLE: Duration = Duration::from_millis(100);

/// What a snapshot of one maildrop is valid for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    new: FileStamp,
    cur: FileStamp,
    index: Option<FileStamp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    mtime_ns: i128,
    inode: u64,
    size: u64,
}

impl FileStamp {
    fn of(metadata: &fs::Metadata) -> Self {
        FileStamp {
            mtime_ns: i128::from(metadata.mtime()) * 1_000_000_000
                + i128::from(metadata.mtime_nsec()),
            inode: metadata.ino(),
            size: metadata.size(),
        }
    }
}

impl Stamp {
    /// None when a directory cannot be looked at: then nothing is cached.
    pub fn read(layout: &Layout) -> Option<Stamp> {
        let new = fs::metadata(layout.sub(Sub::New)).ok()?;
        let cur = fs::metadata(layout.sub(Sub::Cur)).ok()?;
        let index = fs::metadata(layout.index()).ok();
        Some(Stamp {
            new: FileStamp::of(&new),
            cur: FileStamp::of(&cur),
            index: index.as_ref().map(FileStamp::of),
        })
    }

    /// Whether every time in the stamp is at least [`SETTLE`] older than `now`.
    pub fn settled(&self, now: SystemTime) -> bool {
        let Ok(now) = now.duration_since(UNIX_EPOCH) else {
            return false;
        };
        let limit = now.as_nanos() as i128 - SETTLE.as_nanos() as i128;
        [Some(self.new), Some(self.cur), self.index]
            .into_iter()
            .flatten()
            .all(|f| f.mtime_ns <= limit)
    }
}

/// A snapshot shared by the sessions that opened an unchanged maildrop.
#[derive(Debug, Clone)]
pub struct Shared {
    pub messages: Arc<Vec<MessageInfo>>,
    pub files: Arc<Vec<Located>>,
}

#[derive(Debug, Default)]
pub struct SnapshotCache {
    entries: Mutex<HashMap<PathBuf, (Stamp, Shared)>>,
}

impl SnapshotCache {
    /// The snapshot taken when the maildrop last looked like `stamp`.
    pub fn get(&self, layout: &Layout, stamp: &Stamp) -> Option<Shared> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match entries.get(&layout.root) {
            Some((cached, shared)) if cached == stamp => Some(shared.clone()),
            _ => None,
        }
    }

    /// Keeps a snapshot read between two identical, settled stamps; forgets an older one.
    pub fn offer(
        &self,
        layout: &Layout,
        before: Option<Stamp>,
        read_at: SystemTime,
        shared: &Shared,
    ) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let keep = shared.messages.len() >= MIN_MESSAGES
            && before.is_some_and(|before| {
                before.settled(read_at) && Stamp::read(layout) == Some(before)
            });
        if !keep {
            entries.remove(&layout.root);
            return;
        }
        if entries.len() >= CAPACITY && !entries.contains_key(&layout.root) {
            // Any victim will do: a miss only costs one ordinary read.
            if let Some(victim) = entries.keys().next().cloned() {
                entries.remove(&victim);
            }
        }
        if let Some(before) = before {
            entries.insert(layout.root.clone(), (before, shared.clone()));
        }
    }
}
