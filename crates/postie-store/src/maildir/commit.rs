//! The end of a session: the deleted messages are removed, moved to `.Trash` or hidden, by
//! base name, durably.

use std::collections::{BTreeSet, HashSet};
use std::fs;
use std::io;
use std::path::PathBuf;

use super::durable::sync_dir;
use super::error::MaildirError;
use super::index::Record;
use super::layout::Layout;
use super::maildrop::MaildirDrop;
use super::name;
use super::state::Locked;
use crate::DeletePolicy;

pub fn commit(
    drop: &mut MaildirDrop,
    deleted: &[usize],
    policy: DeletePolicy,
) -> Result<(), MaildirError> {
    let mut targets = deleted.to_vec();
    targets.sort_unstable();
    targets.dedup();
    // A wrong number is the caller's bug: refuse before touching anything.
    if let Some(&bad) = targets.iter().find(|&&index| drop.check(index).is_err()) {
        return Err(MaildirError::NoSuchMessage(bad.saturating_add(1)));
    }
    if targets.is_empty() {
        return Ok(());
    }
    match policy {
        DeletePolicy::Hide => hide(drop, &targets),
        DeletePolicy::Expunge => remove(drop, &targets, None),
        DeletePolicy::Trash => {
            let trash = drop.layout.trash();
            trash.ensure_folder()?;
            remove(drop, &targets, Some(&trash))
        }
    }
}

/// Hidden messages keep their files (another client may still want them) but are marked in
/// the index, which sync never lists.
fn hide(drop: &MaildirDrop, targets: &[usize]) -> Result<(), MaildirError> {
    let mut locked = Locked::open(&drop.layout)?;
    let bases: HashSet<&[u8]> = targets
        .iter()
        .map(|&index| name::base(&drop.files[index].name))
        .collect();
    let mut marked = HashSet::new();
    for record in &mut locked.index.records {
        if bases.contains(&record.base[..]) {
            record.hidden = true;
            marked.insert(record.base.clone());
        }
    }
    // Only a rebuilt index can have lost a record; the uid of a hidden message is never shown,
    // so a fresh one does.
    for base in bases.into_iter().filter(|base| !marked.contains(*base)) {
        let uid = locked.index.next_uid;
        if uid == u32::MAX {
            return Err(MaildirError::UidsExhausted(drop.layout.root.clone()));
        }
        locked.index.next_uid = uid + 1;
        locked.index.records.push(Record {
            uid,
            crlf_size: None,
            hidden: true,
            base: base.to_vec(),
        });
    }
    locked.dirty = true;
    locked.save()
}

/// Unlinks, or moves into `trash` under the same name, each target; a message already gone is
/// fine. Goes on past failures so that as much as possible is done, and reports the first.
fn remove(
    drop: &mut MaildirDrop,
    targets: &[usize],
    trash: Option<&Layout>,
) -> Result<(), MaildirError> {
    let mut first_error = None;
    let mut touched: BTreeSet<PathBuf> = BTreeSet::new();
    let mut removed: HashSet<Vec<u8>> = HashSet::new();
    let mut relocated = false;
    for &index in targets {
        loop {
            let file = &drop.files[index];
            let from = drop.path(index);
            let to = trash.map(|t| file.path(t));
            let result = match &to {
                Some(to) => fs::rename(&from, to),
                None => fs::remove_file(&from),
            };
            match result {
                Ok(()) => {
                    touched.extend(from.parent().map(PathBuf::from));
                    touched.extend(to.as_deref().and_then(|t| t.parent()).map(PathBuf::from));
                }
                // Renamed by another client since we last looked: find it again, once for
                // the whole commit.
                Err(e) if e.kind() == io::ErrorKind::NotFound && !relocated => {
                    relocated = true;
                    match drop.relocate() {
                        Ok(()) => continue,
                        Err(e) => {
                            first_error.get_or_insert(e);
                            break;
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    first_error.get_or_insert(MaildirError::io("remove", &from, e));
                    break;
                }
            }
            removed.insert(name::base(&drop.files[index].name).to_vec());
            break;
        }
    }
    for dir in &touched {
        if let Err(e) = sync_dir(dir) {
            first_error.get_or_insert(e);
        }
    }
    if let Err(e) = forget(&drop.layout, &removed) {
        first_error.get_or_insert(e);
    }
    first_error.map_or(Ok(()), Err)
}

/// Drops the records of removed messages; their uids stay used, since the next uid never
/// goes down.
fn forget(layout: &Layout, removed: &HashSet<Vec<u8>>) -> Result<(), MaildirError> {
    if removed.is_empty() {
        return Ok(());
    }
    let mut locked = Locked::open(layout)?;
    let before = locked.index.records.len();
    locked.index.records.retain(|r| !removed.contains(&r.base));
    locked.dirty |= locked.index.records.len() != before;
    locked.save()
}
