//! `delete_when_deleted_locally`: a message kept on the server whose Maildir file is gone
//! from this Maildir is deleted on the server too, as Thunderbird's and Outlook's option
//! does. The journal knows each message's file by the unique part of its name (the state
//! module's `file` lines); the file counts as present under any flags, in new/ or cur/ of
//! the Maildir or of any Maildir++ folder under the same root (`ROOT/.Folder`), so moving a
//! message to another folder is not deleting it. Moving it out of that root is.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use crate::dest::DeliverTo;
use crate::engine::{Action, Planned};
use crate::error::{FetchError, LocalContext};
use crate::state::Done;

/// The unique parts of the names of every message file under a Maildir++ root.
pub struct LocalFiles {
    present: HashSet<String>,
}

impl LocalFiles {
    /// Looks through the Maildir `deliver_to` names, before it is opened (opening creates
    /// it). A Maildir that is not there is refused when the journal records files
    /// delivered to it (`delivered_before`), as it would look like every message had been
    /// deleted; before the first delivery it is simply empty.
    pub fn scan(deliver_to: &DeliverTo, delivered_before: bool) -> Result<LocalFiles, FetchError> {
        let root = match deliver_to {
            DeliverTo::Maildir(path) => path.clone(),
            DeliverTo::MaildirFolder(path) => path
                .parent()
                .map_or_else(|| path.clone(), Path::to_path_buf),
            other => {
                return Err(FetchError::LocalDeletion(format!(
                    "delete_when_deleted_locally needs a Maildir, not {other}"
                )))
            }
        };
        if !root.join("cur").is_dir() && !root.join("new").is_dir() {
            if !delivered_before {
                return Ok(LocalFiles {
                    present: HashSet::new(),
                });
            }
            return Err(FetchError::LocalDeletion(format!(
                "the Maildir {} is not there (no new/ or cur/): with delete_when_deleted_locally, postie would delete every message kept on the server; restore it, or turn the option off",
                root.display()
            )));
        }
        let mut folders: Vec<PathBuf> = vec![root.clone()];
        for entry in fs::read_dir(&root).local("read", &root)? {
            let entry = entry.local("read", &root)?;
            let name = entry.file_name();
            let name = name.as_encoded_bytes();
            if name.len() > 1 && name[0] == b'.' && name != b".." && entry.path().is_dir() {
                folders.push(entry.path());
            }
        }
        let mut present = HashSet::new();
        for folder in folders {
            for sub in ["new", "cur"] {
                let dir = folder.join(sub);
                let entries = match fs::read_dir(&dir) {
                    Ok(entries) => entries,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e).local("read", &dir),
                };
                for entry in entries {
                    let name = entry.local("read", &dir)?.file_name();
                    let name = name.to_string_lossy();
                    let unique = name.split_once(':').map_or(&*name, |(unique, _)| unique);
                    present.insert(unique.to_owned());
                }
            }
        }
        Ok(LocalFiles { present })
    }

    /// Turns `Keep` into `Delete` for each whole message whose recorded file is gone;
    /// `done` and `file` look a message up in the journal.
    pub fn apply<'a>(
        &self,
        done: impl Fn(&str) -> Option<Done>,
        file: impl Fn(&str) -> Option<&'a str>,
        planned: &mut [Planned],
    ) {
        for p in planned {
            let gone = p.action == Action::Keep
                && p.key.as_deref().is_some_and(|key| {
                    done(key).is_some_and(|done| !done.partial)
                        && file(key).is_some_and(|name| !self.present.contains(name))
                });
            if gone {
                p.action = Action::Delete;
                p.because.push("deleted locally".into());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::State;
    use postie_types::MsgNum;

    #[test]
    fn a_file_moved_to_a_folder_or_flagged_is_present_and_a_removed_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("Mail");
        for sub in ["new", "cur", ".Archive/cur"] {
            fs::create_dir_all(root.join(sub)).unwrap();
        }
        fs::write(root.join("cur/1.a.host:2,S"), "x").unwrap();
        fs::write(root.join(".Archive/cur/2.b.host:2,"), "x").unwrap();
        let mut state = State::open(dir.path(), "acct").unwrap();
        let done = Done {
            at: 1,
            partial: false,
        };
        for (key, name) in [("u1", "1.a.host"), ("u2", "2.b.host"), ("u3", "3.c.host")] {
            state.record_done(key, done).unwrap();
            state.record_delivered_files([(key, name)]).unwrap();
        }
        let mut planned: Vec<Planned> = ["u1", "u2", "u3", "u4"]
            .iter()
            .enumerate()
            .map(|(n, key)| Planned {
                msg: MsgNum::from_index(n).unwrap(),
                size: 1,
                key: Some((*key).to_owned()),
                action: Action::Keep,
                because: Vec::new(),
            })
            .collect();
        let files = LocalFiles::scan(&DeliverTo::Maildir(root.clone()), true).unwrap();
        files.apply(
            |key| state.done(key),
            |key| state.delivered_file(key),
            &mut planned,
        );
        let actions: Vec<&Action> = planned.iter().map(|p| &p.action).collect();
        assert_eq!(
            actions,
            [&Action::Keep, &Action::Keep, &Action::Delete, &Action::Keep],
            "u4 has no recorded file: never deleted for it"
        );
        let gone = DeliverTo::Maildir(dir.path().join("gone"));
        assert!(LocalFiles::scan(&gone, true).is_err());
        assert!(LocalFiles::scan(&gone, false).is_ok());
    }
}
