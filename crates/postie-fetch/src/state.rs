//! Per-account memory of what has been fetched: an append-only journal, one line per event,
//! each made durable (fdatasync) before the next step depends on it, and compacted atomically
//! (write, fsync, rename, fsync the folder) at the start and end of a run.
//!
//! The order that makes a fetch lose nothing and duplicate nothing:
//! 1. the message is complete in a temporary place of the destination;
//! 2. `intent KEY RECEIPT` — what the destination will do, in a form it can check later;
//! 3. the destination publishes the message (rename, append, pipe, LMTP) durably;
//! 4. `done KEY TIME` — from now on the message is never fetched again;
//! 5. only then DELE on the server, and the deletion counts only after QUIT's +OK.
//!
//! A run killed between 2 and 4 leaves an intent that the next run resolves by asking the
//! destination (is the Maildir file there? did the mbox grow by exactly this message?).
//! A Maildir goes through these steps a batch at a time (the batch module), each step for
//! every message of the batch before the next; its `done` lines need no fdatasync of their
//! own ([`State::record_confirmable_done`]).
//!
//! A message that rules send to several destinations goes through steps 1 to 3 once per
//! destination, each copy's intent (`copy-intent KEY DEST RECEIPT…`) and completion
//! (`copied KEY DEST`, DEST a short digest of the destination) synced before the next copy
//! begins; `done` follows the last copy. A run killed between copies fetches the message
//! again and makes only the copies not recorded (the routing module).
//!
//! `postie fetch --from-now-on` records the messages on the server as `done KEY TIME partial`
//! (never deleted there) followed by `ignored KEY` (never downloaded, not even as a stub's
//! completion).
//!
//! A message delivered to a Maildir also gets `file KEY NAME`, the unique part of its file
//! name, by which `delete_when_deleted_locally` looks for it at later runs. The line is not
//! synced on its own: lost to a power cut, it only means that message is never deleted on
//! the server for being deleted here.
//!
//! Lines: a header `postie-fetch-state 1`, then `done KEY TIME [partial]`,
//! `intent KEY RECEIPT…`, `copy-intent KEY DEST RECEIPT…`, `copied KEY DEST`,
//! `ignored KEY` and `file KEY NAME`. KEY is a UIDL (printable, no spaces) or `sha256:HEX` for servers
//! without UIDL. A last line without its newline was torn by a crash and is ignored.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::error::{FetchError, LocalContext};

const HEADER: &str = "postie-fetch-state 1";

/// A message already stored locally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Done {
    /// When it was fetched (seconds since the epoch), for delete_after_days.
    pub at: u64,
    /// Only its header was stored (it was over max_size): never delete it on the server.
    pub partial: bool,
}

/// What `--list` reads of a journal: the messages done, and their Maildir file names.
#[derive(Debug, Default)]
pub struct Recorded {
    pub done: HashMap<String, Done>,
    pub files: HashMap<String, String>,
}

/// A copy's delivery begun by an interrupted run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyIntent {
    pub key: String,
    pub destination: String,
    pub receipt: String,
}

/// What a journal holds once read.
#[derive(Debug, Default)]
struct Journal {
    done: HashMap<String, Done>,
    intents: Vec<(String, String)>,
    /// Copies made of messages not yet done: key to destination digests.
    copied: HashMap<String, Vec<String>>,
    copy_intents: Vec<CopyIntent>,
    /// Messages that were on the server when `--from-now-on` ran.
    ignored: std::collections::HashSet<String>,
    /// The Maildir file name (its unique part) each message was delivered as.
    files: HashMap<String, String>,
}

impl Journal {
    /// A message is done: its copies need no memory of their own any more.
    fn finish(&mut self, key: &str) {
        self.intents.retain(|(k, _)| k != key);
        self.copied.remove(key);
        self.copy_intents.retain(|c| c.key != key);
    }
}

pub struct State {
    path: PathBuf,
    journal: Option<File>,
    /// Held for the whole run: one fetch per account at a time.
    _lock: File,
    existed: bool,
    entries: Journal,
}

impl State {
    /// The state file of `account` in `dir`.
    pub fn path_for(dir: &Path, account: &str) -> PathBuf {
        dir.join(format!("{account}.state"))
    }

    /// Opens (and locks) the state of `account`; a missing file gives an empty state whose
    /// [`State::existed`] is false.
    pub fn open(dir: &Path, account: &str) -> Result<State, FetchError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .local("create the state folder", dir)?;
        let lock_path = dir.join(format!("{account}.lock"));
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .local("open", &lock_path)?;
        // SAFETY: flock on a descriptor we own.
        if unsafe {
            libc::flock(
                std::os::fd::AsRawFd::as_raw_fd(&lock),
                libc::LOCK_EX | libc::LOCK_NB,
            )
        } != 0
        {
            return Err(FetchError::Busy(format!(
                "another postie fetch is running for account {account} (it holds {}); this run stops so nothing is fetched twice",
                lock_path.display()
            )));
        }
        let path = Self::path_for(dir, account);
        let mut state = State {
            path,
            journal: None,
            _lock: lock,
            existed: false,
            entries: Journal::default(),
        };
        state.read()?;
        Ok(state)
    }

    /// Reads the state without locking or creating anything (for `--list`).
    pub fn peek(dir: &Path, account: &str) -> Result<Option<Recorded>, FetchError> {
        let path = Self::path_for(dir, account);
        match fs::read(&path) {
            Ok(bytes) => {
                let journal = parse(&bytes, &path)?;
                Ok(Some(Recorded {
                    done: journal.done,
                    files: journal.files,
                }))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).local("read", &path),
        }
    }

    fn read(&mut self) -> Result<(), FetchError> {
        match fs::read(&self.path) {
            Ok(bytes) => {
                self.entries = parse(&bytes, &self.path)?;
                self.existed = true;
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).local("read", &self.path),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the state file was there when the run began.
    pub fn existed(&self) -> bool {
        self.existed
    }

    pub fn done(&self, key: &str) -> Option<Done> {
        self.entries.done.get(key).copied()
    }

    /// Intents left by an interrupted run: (key, receipt).
    pub fn pending_intents(&self) -> Vec<(String, String)> {
        self.entries.intents.clone()
    }

    /// Step 2: records what the destination is about to do.
    pub fn record_intent(&mut self, key: &str, receipt: &str) -> Result<(), FetchError> {
        self.record_intents([(key, receipt)])
    }

    /// Step 2 for a batch: every intent in one write and one fdatasync.
    pub fn record_intents<'a>(
        &mut self,
        intents: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<(), FetchError> {
        let mut lines = String::new();
        let mut recorded = Vec::new();
        for (key, receipt) in intents {
            lines.push_str(&format!("intent {key} {receipt}\n"));
            recorded.push((key.to_owned(), receipt.to_owned()));
        }
        self.append(&lines, Sync::Now)?;
        self.entries.intents.extend(recorded);
        Ok(())
    }

    /// Step 4: the message is stored.
    pub fn record_done(&mut self, key: &str, done: Done) -> Result<(), FetchError> {
        self.write_done([(key, done)], Sync::Now)
    }

    /// Step 4 for deliveries whose durable intent and durable published file already let
    /// [`crate::dest::Destination::recover`] conclude "done": the lines are written but not
    /// fdatasynced, as losing them to a power cut costs nothing (the next run finds the
    /// files and records them again). The next fdatasync of the journal, or the compaction
    /// at the end of the run, makes them durable anyway. A partial (headers only) message
    /// is the exception: recovery cannot tell it was partial, so its line is synced.
    pub fn record_confirmable_done<'a>(
        &mut self,
        entries: impl IntoIterator<Item = (&'a str, Done)>,
    ) -> Result<(), FetchError> {
        let entries: Vec<(&str, Done)> = entries.into_iter().collect();
        let sync = if entries.iter().any(|(_, done)| done.partial) {
            Sync::Now
        } else {
            Sync::Later
        };
        self.write_done(entries, sync)
    }

    fn write_done<'a>(
        &mut self,
        entries: impl IntoIterator<Item = (&'a str, Done)>,
        sync: Sync,
    ) -> Result<(), FetchError> {
        let entries: Vec<(&str, Done)> = entries.into_iter().collect();
        let mut lines = String::new();
        for (key, done) in &entries {
            let partial = if done.partial { " partial" } else { "" };
            lines.push_str(&format!("done {key} {}{partial}\n", done.at));
        }
        self.append(&lines, sync)?;
        for (key, done) in entries {
            self.entries.done.insert(key.to_owned(), done);
            self.entries.finish(key);
        }
        Ok(())
    }

    /// The Maildir file name (unique part, before any `:2,` flags) the message `key` was
    /// delivered as.
    pub fn delivered_file(&self, key: &str) -> Option<&str> {
        self.entries.files.get(key).map(String::as_str)
    }

    /// Whether any message's Maildir file name is recorded.
    pub fn has_delivered_files(&self) -> bool {
        !self.entries.files.is_empty()
    }

    /// Records the Maildir file names messages were delivered as; not synced (see the
    /// module's notes).
    pub fn record_delivered_files<'a>(
        &mut self,
        files: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<(), FetchError> {
        let files: Vec<(&str, &str)> = files.into_iter().collect();
        if files.is_empty() {
            return Ok(());
        }
        let mut lines = String::new();
        for (key, name) in &files {
            lines.push_str(&format!("file {key} {name}\n"));
        }
        self.append(&lines, Sync::Later)?;
        for (key, name) in files {
            self.entries.files.insert(key.to_owned(), name.to_owned());
        }
        Ok(())
    }

    /// The destinations (digests) that already hold a copy of the message `key`.
    pub fn copied(&self, key: &str) -> &[String] {
        self.entries.copied.get(key).map_or(&[], Vec::as_slice)
    }

    /// Copies begun by an interrupted run.
    pub fn pending_copy_intents(&self) -> Vec<CopyIntent> {
        self.entries.copy_intents.clone()
    }

    /// Step 2 for one copy: synced before the copy is published.
    pub fn record_copy_intent(
        &mut self,
        key: &str,
        destination: &str,
        receipt: &str,
    ) -> Result<(), FetchError> {
        self.append(
            &format!("copy-intent {key} {destination} {receipt}\n"),
            Sync::Now,
        )?;
        self.entries.copy_intents.push(CopyIntent {
            key: key.to_owned(),
            destination: destination.to_owned(),
            receipt: receipt.to_owned(),
        });
        Ok(())
    }

    /// Step 4 for one copy: synced before the next copy begins, so a crash never makes it
    /// twice.
    pub fn record_copied(&mut self, key: &str, destination: &str) -> Result<(), FetchError> {
        self.append(&format!("copied {key} {destination}\n"), Sync::Now)?;
        self.forget_copy_intent(key, destination);
        self.entries
            .copied
            .entry(key.to_owned())
            .or_default()
            .push(destination.to_owned());
        Ok(())
    }

    /// Whether the message was on the server before `--from-now-on`: left alone for good.
    pub fn ignored(&self, key: &str) -> bool {
        self.entries.ignored.contains(key)
    }

    /// `--from-now-on`: these messages count as fetched, are never downloaded and never
    /// deleted on the server; one write and one fdatasync.
    pub fn record_ignored(&mut self, keys: &[&str], at: u64) -> Result<(), FetchError> {
        let mut lines = String::new();
        for key in keys {
            lines.push_str(&format!("done {key} {at} partial\nignored {key}\n"));
        }
        self.append(&lines, Sync::Now)?;
        for key in keys {
            self.entries
                .done
                .insert((*key).to_owned(), Done { at, partial: true });
            self.entries.finish(key);
            self.entries.ignored.insert((*key).to_owned());
        }
        Ok(())
    }

    /// Drops a copy's intent whose delivery did not happen.
    pub fn forget_copy_intent(&mut self, key: &str, destination: &str) {
        self.entries
            .copy_intents
            .retain(|c| c.key != key || c.destination != destination);
    }

    /// Drops an intent whose delivery did not happen.
    pub fn forget_intent(&mut self, key: &str) {
        self.entries.intents.retain(|(k, _)| k != key);
    }

    fn append(&mut self, lines: &str, sync: Sync) -> Result<(), FetchError> {
        if self.journal.is_none() {
            self.compact(|_| true)?;
        }
        let journal = self.journal.as_mut().ok_or_else(|| FetchError::Local {
            what: "append to",
            path: self.path.clone(),
            source: std::io::Error::other("journal not open"),
        })?;
        journal
            .write_all(lines.as_bytes())
            .local("write", &self.path)?;
        if sync == Sync::Now {
            journal.sync_data().local("fsync", &self.path)?;
        }
        Ok(())
    }

    /// Rewrites the state with the `done` entries `keep` accepts (and the open intents),
    /// atomically, and reopens the journal after it.
    pub fn compact(&mut self, keep: impl Fn(&str) -> bool) -> Result<(), FetchError> {
        self.entries.done.retain(|key, _| keep(key));
        let mut text = format!("{HEADER}\n");
        let mut keys: Vec<&String> = self.entries.done.keys().collect();
        keys.sort();
        for key in keys {
            let done = self.entries.done[key];
            let partial = if done.partial { " partial" } else { "" };
            text.push_str(&format!("done {key} {}{partial}\n", done.at));
        }
        for (key, receipt) in &self.entries.intents {
            text.push_str(&format!("intent {key} {receipt}\n"));
        }
        let done = &self.entries.done;
        self.entries.ignored.retain(|key| done.contains_key(key));
        self.entries.files.retain(|key, _| done.contains_key(key));
        let mut files: Vec<(&String, &String)> = self.entries.files.iter().collect();
        files.sort();
        for (key, name) in files {
            text.push_str(&format!("file {key} {name}\n"));
        }
        let mut ignored: Vec<&String> = self.entries.ignored.iter().collect();
        ignored.sort();
        for key in ignored {
            text.push_str(&format!("ignored {key}\n"));
        }
        let mut copied: Vec<(&String, &Vec<String>)> = self.entries.copied.iter().collect();
        copied.sort();
        for (key, destinations) in copied {
            for destination in destinations {
                text.push_str(&format!("copied {key} {destination}\n"));
            }
        }
        for c in &self.entries.copy_intents {
            text.push_str(&format!(
                "copy-intent {} {} {}\n",
                c.key, c.destination, c.receipt
            ));
        }
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let tmp = self.path.with_extension("state.tmp");
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&tmp)
            .local("create", &tmp)?;
        file.write_all(text.as_bytes()).local("write", &tmp)?;
        file.sync_all().local("fsync", &tmp)?;
        fs::rename(&tmp, &self.path).local("rename", &tmp)?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .local("fsync", dir)?;
        self.journal = Some(
            OpenOptions::new()
                .append(true)
                .open(&self.path)
                .local("open", &self.path)?,
        );
        self.existed = true;
        Ok(())
    }
}

/// Whether an append must be on disk before it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sync {
    Now,
    Later,
}

fn parse(bytes: &[u8], path: &Path) -> Result<Journal, FetchError> {
    let corrupt = |line: usize, why: &str| FetchError::Local {
        what: "read state",
        path: path.to_owned(),
        source: std::io::Error::other(format!(
            "line {line}: {why}; the file is damaged: move it away and run with --reset-state"
        )),
    };
    let text = std::str::from_utf8(bytes).map_err(|_| corrupt(0, "not UTF-8"))?;
    let mut journal = Journal::default();
    // Only lines with their newline count: a torn last line never made it to disk whole.
    let complete = match text.rfind('\n') {
        Some(end) => &text[..=end],
        None => "",
    };
    for (index, line) in complete.lines().enumerate() {
        let number = index + 1;
        if index == 0 {
            if line != HEADER {
                return Err(corrupt(number, "not a postie fetch state file"));
            }
            continue;
        }
        let mut words = line.splitn(3, ' ');
        match (words.next(), words.next(), words.next()) {
            (Some("done"), Some(key), Some(rest)) => {
                let mut rest = rest.split(' ');
                let at = rest
                    .next()
                    .and_then(|t| t.parse().ok())
                    .ok_or_else(|| corrupt(number, "bad time"))?;
                let partial = rest.next() == Some("partial");
                journal.finish(key);
                journal.done.insert(key.to_owned(), Done { at, partial });
            }
            (Some("intent"), Some(key), Some(receipt)) => {
                journal.intents.push((key.to_owned(), receipt.to_owned()));
            }
            (Some("copy-intent"), Some(key), Some(rest)) => {
                let (destination, receipt) = rest
                    .split_once(' ')
                    .ok_or_else(|| corrupt(number, "copy-intent without a receipt"))?;
                journal.copy_intents.push(CopyIntent {
                    key: key.to_owned(),
                    destination: destination.to_owned(),
                    receipt: receipt.to_owned(),
                });
            }
            (Some("file"), Some(key), Some(name)) => {
                journal.files.insert(key.to_owned(), name.to_owned());
            }
            (Some("ignored"), Some(key), None) => {
                journal.ignored.insert(key.to_owned());
            }
            (Some("copied"), Some(key), Some(destination)) => {
                journal
                    .copy_intents
                    .retain(|c| c.key != key || c.destination != destination);
                journal
                    .copied
                    .entry(key.to_owned())
                    .or_default()
                    .push(destination.to_owned());
            }
            _ => return Err(corrupt(number, "unknown entry")),
        }
    }
    Ok(journal)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Opens account "a", waiting while the lock is briefly held by a child another test
    /// thread is forking (it inherits the lock's descriptor until it execs).
    fn open_a(dir: &Path) -> State {
        for _ in 0..100 {
            match State::open(dir, "a") {
                Err(FetchError::Busy(_)) => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                opened => return opened.unwrap(),
            }
        }
        State::open(dir, "a").unwrap()
    }

    #[test]
    fn journal_survives_reopening_and_torn_lines() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut state = open_a(dir.path());
            assert!(!state.existed());
            state.record_intent("u1", "maildir 123.abc").unwrap();
            state
                .record_done(
                    "u1",
                    Done {
                        at: 5,
                        partial: false,
                    },
                )
                .unwrap();
            state.record_intent("u2", "mbox 0 10 ff").unwrap();
            assert!(matches!(
                State::open(dir.path(), "a"),
                Err(FetchError::Busy(_))
            ));
        }
        let path = State::path_for(dir.path(), "a");
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"done u2 7").unwrap();
        let mut state = open_a(dir.path());
        assert!(state.existed());
        assert_eq!(
            state.done("u1"),
            Some(Done {
                at: 5,
                partial: false
            })
        );
        assert_eq!(state.done("u2"), None);
        assert_eq!(
            state.pending_intents(),
            [("u2".to_owned(), "mbox 0 10 ff".to_owned())]
        );
        state.forget_intent("u2");
        state
            .record_done(
                "u3",
                Done {
                    at: 9,
                    partial: true,
                },
            )
            .unwrap();
        state.compact(|k| k != "u1").unwrap();
        drop(state);
        let peeked = State::peek(dir.path(), "a").unwrap().unwrap();
        assert_eq!(peeked.done.len(), 1);
        assert!(peeked.done["u3"].partial);
        std::fs::write(&path, "garbage\n").unwrap();
        assert!(State::open(dir.path(), "a").is_err());
    }

    #[test]
    fn copies_are_remembered_until_the_message_is_done() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut state = open_a(dir.path());
            state.record_copy_intent("u1", "d1", "maildir x").unwrap();
            state.record_copied("u1", "d1").unwrap();
            state
                .record_copy_intent("u1", "d2", "mbox 0 10 ff")
                .unwrap();
            state.record_copy_intent("u2", "d1", "maildir y").unwrap();
            state.record_copied("u2", "d1").unwrap();
            state
                .record_done(
                    "u2",
                    Done {
                        at: 3,
                        partial: false,
                    },
                )
                .unwrap();
        }
        let check = |state: &State| {
            assert_eq!(state.copied("u1"), ["d1"]);
            assert_eq!(
                state.pending_copy_intents(),
                [CopyIntent {
                    key: "u1".into(),
                    destination: "d2".into(),
                    receipt: "mbox 0 10 ff".into(),
                }]
            );
            assert!(
                state.copied("u2").is_empty(),
                "done: its copies are forgotten"
            );
            assert!(state.done("u2").is_some());
        };
        let mut state = open_a(dir.path());
        check(&state);
        state.compact(|_| true).unwrap();
        drop(state);
        let mut state = open_a(dir.path());
        check(&state);
        state.forget_copy_intent("u1", "d2");
        assert!(state.pending_copy_intents().is_empty());
    }

    #[test]
    fn ignored_messages_survive_compaction_until_they_leave_the_server() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = open_a(dir.path());
        state.record_ignored(&["u1", "u2"], 4).unwrap();
        assert!(state.ignored("u1") && state.done("u1").is_some_and(|d| d.partial));
        drop(state);
        let mut state = open_a(dir.path());
        assert!(state.ignored("u2"));
        state.compact(|key| key != "u2").unwrap();
        drop(state);
        let state = open_a(dir.path());
        assert!(state.ignored("u1"));
        assert!(!state.ignored("u2") && state.done("u2").is_none());
    }
}
