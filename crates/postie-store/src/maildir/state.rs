//! Loading and saving the index under its lock, recovering from a damaged one.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::time::{SystemTime, UNIX_EPOCH};

use super::dovecot::DovecotList;
use super::durable::replace_file;
use super::error::{IoContext, MaildirError};
use super::index::{Damaged, Index, Record};
use super::layout::Layout;
use super::lock::{self, Lock};

/// The index of one Maildir, read under the index lock; the lock is released on drop.
pub struct Locked {
    pub index: Index,
    /// Whether `index` differs from the file and must be saved.
    pub dirty: bool,
    layout: Layout,
    _lock: Lock,
}

impl Locked {
    /// Waits for the index lock and reads the index. A missing index starts from Dovecot's
    /// uidvalidity when Dovecot served this Maildir, so its UIDLs carry over; a damaged one is
    /// rebuilt (see [`recover`]).
    pub fn open(layout: &Layout) -> Result<Self, MaildirError> {
        let lock_path = layout.index_lock();
        let lock = lock::lock(&lock_path).ctx("lock", &lock_path)?;
        let path = layout.index();
        let (index, dirty) = match fs::read(&path) {
            Ok(bytes) => match Index::parse(&bytes) {
                Ok(index) => (index, false),
                Err(damaged) => match read_backup(layout) {
                    Some(backup) if damaged.header.is_none_or(|(v, _)| v == backup.uidvalidity) => {
                        tracing::warn!(
                            index = %path.display(),
                            error = %damaged.error,
                            "damaged index, restored from its backup"
                        );
                        (restore(damaged, backup), true)
                    }
                    _ => {
                        tracing::warn!(
                            index = %path.display(),
                            error = %damaged.error,
                            "damaged index and no usable backup, rebuilding it"
                        );
                        (recover(damaged, read_dovecot(layout)?), true)
                    }
                },
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => match read_backup(layout) {
                Some(backup) => {
                    tracing::warn!(index = %path.display(), "index missing, restored from its backup");
                    (backup, true)
                }
                None => {
                    let uidvalidity = match read_dovecot(layout)? {
                        Some(dovecot) => dovecot.uidvalidity,
                        None => now_uidvalidity(),
                    };
                    (Index::new(uidvalidity), true)
                }
            },
            Err(e) => return Err(e).ctx("read", &path),
        };
        Ok(Self {
            index,
            dirty,
            layout: layout.clone(),
            _lock: lock,
        })
    }

    /// Saves the index if it changed, durably, then its backup, then releases the lock. A
    /// crash between the two leaves the index whole and the backup one save behind, which
    /// is only read when the index is damaged.
    pub fn save(self) -> Result<(), MaildirError> {
        if self.dirty {
            let bytes = self.index.serialize();
            replace_file(&self.layout.index(), &bytes)?;
            replace_file(&self.layout.index_backup(), &bytes)?;
        }
        Ok(())
    }
}

/// Dovecot's list of this Maildir, if it has one that can be read. An unreadable one is an
/// error rather than ignored: guessing would hand out uids that differ from Dovecot's.
pub fn read_dovecot(layout: &Layout) -> Result<Option<DovecotList>, MaildirError> {
    let path = layout.dovecot_uidlist();
    match fs::read(&path) {
        Ok(bytes) => match DovecotList::parse(&bytes) {
            Ok(list) => Ok(Some(list)),
            Err(e) => {
                tracing::warn!(uidlist = %path.display(), error = %e, "ignoring dovecot-uidlist");
                Ok(None)
            }
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).ctx("read", &path),
    }
}

/// The backup of the index, if it is there and whole.
fn read_backup(layout: &Layout) -> Option<Index> {
    Index::parse(&fs::read(layout.index_backup()).ok()?).ok()
}

/// Repairs a damaged index from its backup: the backup's records, and the surviving records
/// of the damaged index it does not have (messages numbered after the backup was written).
/// No uid changes hands, and the next uid stays above every uid either copy knew.
fn restore(damaged: Damaged, backup: Index) -> Index {
    let mut by_uid: BTreeMap<u32, Record> =
        backup.records.into_iter().map(|r| (r.uid, r)).collect();
    let known: std::collections::HashSet<Vec<u8>> =
        by_uid.values().map(|r| r.base.clone()).collect();
    for survivor in damaged.records {
        if !known.contains(&survivor.base) && !by_uid.contains_key(&survivor.uid) {
            by_uid.insert(survivor.uid, survivor);
        }
    }
    let records: Vec<Record> = by_uid.into_values().collect();
    let above_all = records.last().map_or(1, |r| r.uid.saturating_add(1));
    let header_next = damaged.header.map_or(1, |(_, next)| next);
    Index {
        uidvalidity: backup.uidvalidity,
        next_uid: backup.next_uid.max(above_all).max(header_next),
        records,
    }
}

/// Rebuilds a damaged index. With a dovecot-uidlist, its uids win (they are what clients saw
/// before postie), and the surviving records of the same uidvalidity fill in what Dovecot never
/// saw. Without one, the surviving records are kept. Either way the next uid goes above every
/// uid still known, so no uid a client may remember is given to another message.
fn recover(damaged: Damaged, dovecot: Option<DovecotList>) -> Index {
    let Damaged {
        header, records, ..
    } = damaged;
    let mut index = match dovecot {
        Some(dovecot) => {
            let mut by_uid: BTreeMap<u32, Record> = dovecot
                .uids
                .iter()
                .map(|(base, &uid)| {
                    let record = Record {
                        uid,
                        crlf_size: None,
                        hidden: false,
                        base: base.clone(),
                    };
                    (uid, record)
                })
                .collect();
            let same_uids = header.is_some_and(|(v, _)| v == dovecot.uidvalidity);
            for survivor in records {
                match dovecot.uids.get(&survivor.base) {
                    Some(&uid) if uid == survivor.uid => {
                        if let Some(record) = by_uid.get_mut(&uid) {
                            record.crlf_size = survivor.crlf_size;
                            record.hidden = survivor.hidden;
                        }
                    }
                    None if same_uids && !by_uid.contains_key(&survivor.uid) => {
                        by_uid.insert(survivor.uid, survivor);
                    }
                    _ => {}
                }
            }
            Index {
                uidvalidity: dovecot.uidvalidity,
                next_uid: dovecot.next_uid,
                records: by_uid.into_values().collect(),
            }
        }
        None => Index {
            uidvalidity: header.map_or_else(now_uidvalidity, |(v, _)| v),
            next_uid: 1,
            records,
        },
    };
    let above_all = index.records.last().map_or(1, |r| r.uid.saturating_add(1));
    let header_next = header.map_or(1, |(_, next)| next);
    index.next_uid = index.next_uid.max(above_all).max(header_next);
    index
}

/// A fresh uidvalidity: the current time, as Dovecot does.
fn now_uidvalidity() -> u32 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    u32::try_from(secs).unwrap_or(u32::MAX).max(1)
}
