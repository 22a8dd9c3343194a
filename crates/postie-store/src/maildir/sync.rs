//! What a login sees: the index brought up to date with the directories, new/ emptied into
//! cur/, and the snapshot in uid order.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{self, Read};

use super::dovecot::DovecotList;
use super::error::{IoContext, MaildirError};
use super::index::{Index, Record};
use super::layout::{Layout, Sub};
use super::name;
use super::scan::{scan, Found, Located};
use super::state::{read_dovecot, Locked};
use crate::crlf::CrlfCounter;

/// One message of the snapshot.
#[derive(Debug, Clone)]
pub struct Entry {
    pub uid: u32,
    pub crlf_size: u64,
    pub file: Located,
}

/// The snapshot a session works on, and the uidvalidity its UIDLs are made with.
pub struct Snapshot {
    pub uidvalidity: u32,
    pub entries: Vec<Entry>,
}

/// With `with_hidden`, messages hidden or archived are in the snapshot too (a `recent:`
/// session's); without, never.
pub fn sync(layout: &Layout, with_hidden: bool) -> Result<Snapshot, MaildirError> {
    let mut locked = Locked::open(layout)?;
    let mut found = scan(layout)?;
    move_new_to_cur(layout, &mut found);

    if locked
        .index
        .records
        .iter()
        .any(|r| !found.contains_key(&r.base))
    {
        // A message renamed by another client while we read the directory may have been
        // missed; look once more before deciding it is gone.
        for (base, file) in scan(layout)? {
            found.entry(base).or_insert(file);
        }
        let before = locked.index.records.len();
        locked.index.records.retain(|r| found.contains_key(&r.base));
        locked.dirty |= locked.index.records.len() != before;
    }

    // Index bases are unique and all present now: as many files as records means none is new.
    if found.len() > locked.index.records.len() {
        locked.dirty |= assign_uids(layout, &mut locked.index, &found)?;
    }

    let mut entries = Vec::with_capacity(locked.index.records.len());
    for record in &mut locked.index.records {
        let Some(file) = found.remove(&record.base) else {
            continue;
        };
        if record.hidden && !with_hidden {
            continue;
        }
        let crlf_size = match name::size_field(&file.name, b'W').or(record.crlf_size) {
            Some(size) => size,
            None => match measure(layout, &file) {
                Ok(size) => {
                    record.crlf_size = Some(size);
                    locked.dirty = true;
                    size
                }
                Err(e) => {
                    tracing::warn!(error = %e, "leaving an unreadable message out of the snapshot");
                    continue;
                }
            },
        };
        entries.push(Entry {
            uid: record.uid,
            crlf_size,
            file,
        });
    }
    let uidvalidity = locked.index.uidvalidity;
    locked.save()?;
    Ok(Snapshot {
        uidvalidity,
        entries,
    })
}

/// A session has seen the messages in new/: they move to cur/ with an empty info part, as
/// Dovecot moves them. A failed move is not worth failing the login for: the message is
/// served from new/ and moved next time.
fn move_new_to_cur(layout: &Layout, found: &mut Found) {
    for file in found.values_mut().filter(|f| f.sub == Sub::New) {
        let moved = Located {
            sub: Sub::Cur,
            name: name::in_cur(&file.name),
        };
        let from = file.path(layout);
        match fs::rename(&from, moved.path(layout)) {
            Ok(()) => *file = moved,
            // Someone else moved it: the caller's second look finds it, or the session's
            // first access does.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(file = %from.display(), error = %e, "cannot move to cur/"),
        }
    }
}

/// Gives uids to the messages the index does not know yet, in arrival order. A message Dovecot
/// already numbered keeps Dovecot's uid when that uid is still free for it, so UIDLs carry
/// over from Dovecot. Returns whether any uid was given.
fn assign_uids(layout: &Layout, index: &mut Index, found: &Found) -> Result<bool, MaildirError> {
    let known: HashSet<&[u8], foldhash::fast::RandomState> =
        index.records.iter().map(|r| &r.base[..]).collect();
    let mut fresh: Vec<&Vec<u8>> = found
        .keys()
        .filter(|base| !known.contains(&base[..]))
        .collect();
    if fresh.is_empty() {
        return Ok(false);
    }
    fresh.sort_by_cached_key(|base| (name::arrival_key(base), *base));

    let dovecot = read_dovecot(layout)?.filter(|d| d.uidvalidity == index.uidvalidity);
    let mut adopted: Vec<(u32, &Vec<u8>)> = Vec::new();
    if let Some(dovecot) = &dovecot {
        adopted = adoptable(dovecot, index.next_uid, &fresh);
        let taken: HashSet<&[u8]> = adopted.iter().map(|(_, base)| &base[..]).collect();
        fresh.retain(|base| !taken.contains(&base[..]));
        let above = adopted.last().map_or(0, |(uid, _)| uid.saturating_add(1));
        index.next_uid = index.next_uid.max(above).max(dovecot.next_uid);
    }
    for (uid, base) in adopted {
        index.records.push(new_record(uid, base));
    }
    for base in fresh {
        let uid = index.next_uid;
        if uid == u32::MAX {
            return Err(MaildirError::UidsExhausted(layout.root.clone()));
        }
        index.next_uid = uid + 1;
        index.records.push(new_record(uid, base));
    }
    Ok(true)
}

/// The new messages Dovecot gave a uid we have not used yet, in uid order.
fn adoptable<'a>(
    dovecot: &DovecotList,
    next_uid: u32,
    fresh: &[&'a Vec<u8>],
) -> Vec<(u32, &'a Vec<u8>)> {
    let mut seen = HashMap::new();
    for &base in fresh {
        if let Some(&uid) = dovecot.uids.get(base) {
            if uid >= next_uid && uid != u32::MAX {
                seen.entry(uid).or_insert(base);
            }
        }
    }
    let mut adopted: Vec<(u32, &Vec<u8>)> = seen.into_iter().collect();
    adopted.sort_unstable();
    adopted
}

fn new_record(uid: u32, base: &[u8]) -> Record {
    Record {
        uid,
        crlf_size: None,
        hidden: false,
        base: base.to_vec(),
    }
}

/// Reads a message once to learn its CRLF size, for names that do not carry `,W=`.
fn measure(layout: &Layout, file: &Located) -> Result<u64, MaildirError> {
    let path = file.path(layout);
    let mut reader = file.open(layout).ctx("open", &path)?;
    let mut counter = CrlfCounter::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return Ok(counter.crlf_size()),
            Ok(n) => counter.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e).ctx("read", &path),
        }
    }
}
