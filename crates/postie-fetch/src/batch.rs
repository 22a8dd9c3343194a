//! Group commit: the state module's steps 1 to 4 for a batch of staged messages (a
//! Maildir's) at a time, each step for all of them before the next, so a batch costs one
//! journal fdatasync, one sync of the staged files and one folder fsync instead of one of
//! each per message.
//!
//! Why each crash point is still safe: a message's intent is journaled only after its file
//! is durable in tmp/, and published only after the intent is durable, exactly as for one
//! message; a crash before the intents leaves files nobody knows of (fetched again, never
//! DELEd); after them, recovery finds each file in new/ or tmp/. The `done` lines need no
//! fdatasync of their own (see [`State::record_confirmable_done`]), and no DELE is sent
//! before its batch is flushed.

use crate::dest::maildir::MAILDIR_RECEIPT;
use crate::dest::{Destination, Staged};
use crate::error::FetchError;
use crate::state::{Done, State};
use postie_types::MsgNum;

/// Messages held before their batch is flushed: enough to spread the syncs thin, few
/// enough that little is fetched again after a kill.
pub const LIMIT: usize = 64;

/// A message received whole, and what to record about it.
pub struct Received {
    pub msg: MsgNum,
    pub key: String,
    pub done: Done,
    pub bytes: u64,
}

#[derive(Default)]
pub struct Batch {
    held: Vec<(Received, Box<dyn Staged>)>,
}

impl Batch {
    pub fn push(&mut self, received: Received, staged: Box<dyn Staged>) {
        self.held.push((received, staged));
    }

    pub fn len(&self) -> usize {
        self.held.len()
    }

    pub fn contains(&self, key: &str) -> bool {
        self.held.iter().any(|(received, _)| received.key == key)
    }

    /// Makes every message held durable, journals their intents (one fdatasync), publishes
    /// them, syncs the destination, and journals them done; returns them, now stored, for
    /// step 5 (the DELE). On an error the messages not yet published are discarded.
    pub fn flush(
        &mut self,
        state: &mut State,
        dest: &mut dyn Destination,
    ) -> Result<Vec<Received>, FetchError> {
        let held = std::mem::take(&mut self.held);
        if held.is_empty() {
            return Ok(Vec::new());
        }
        dest.sync_staged()?;
        state.record_intents(
            held.iter()
                .map(|(received, staged)| (received.key.as_str(), staged.receipt())),
        )?;
        let mut stored = Vec::with_capacity(held.len());
        let mut files = Vec::new();
        for (received, staged) in held {
            files.extend(
                staged
                    .receipt()
                    .strip_prefix(MAILDIR_RECEIPT)
                    .map(|name| (received.key.clone(), name.to_owned())),
            );
            staged.publish()?;
            stored.push(received);
        }
        dest.sync()?;
        state.record_confirmable_done(stored.iter().map(|r| (r.key.as_str(), r.done)))?;
        state.record_delivered_files(files.iter().map(|(k, n)| (k.as_str(), n.as_str())))?;
        Ok(stored)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::dest::{DeliverTo, Finished};

    fn stage(dest: &mut dyn Destination, body: &[u8]) -> Box<dyn Staged> {
        let mut incoming = dest.begin().unwrap();
        incoming.write_all(body).unwrap();
        match incoming
            .finish(&mut |_: &str| panic!("a Maildir journals nothing itself"))
            .unwrap()
        {
            Finished::Staged(staged) => staged,
            Finished::Published => panic!("a Maildir stages"),
        }
    }

    /// A scratch folder and a Maildir destination in it.
    fn maildir_destination() -> (tempfile::TempDir, std::path::PathBuf, Box<dyn Destination>) {
        let dir = tempfile::tempdir().unwrap();
        let maildir = dir.path().join("Mail");
        let dest = DeliverTo::Maildir(maildir.clone())
            .open(dir.path(), "alice", 0)
            .unwrap();
        (dir, maildir, dest)
    }

    fn count(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir).unwrap().count()
    }

    #[test]
    fn a_batch_is_published_and_journaled_together() {
        let (dir, maildir, mut dest) = maildir_destination();
        let mut state = State::open(dir.path(), "a").unwrap();
        let mut batch = Batch::default();
        for (n, key) in ["u1", "u2", "u3"].into_iter().enumerate() {
            let received = Received {
                msg: MsgNum::from_index(n).unwrap(),
                key: key.to_owned(),
                done: Done {
                    at: 7,
                    partial: false,
                },
                bytes: 10,
            };
            batch.push(
                received,
                stage(dest.as_mut(), b"Subject: x\r\n\r\nbody\r\n"),
            );
        }
        assert!(batch.contains("u2"));
        assert_eq!(
            count(&maildir.join("new")),
            0,
            "nothing published before the flush"
        );
        let stored = batch.flush(&mut state, dest.as_mut()).unwrap();
        assert_eq!(stored.len(), 3);
        assert_eq!(batch.len(), 0);
        assert_eq!(count(&maildir.join("new")), 3);
        assert_eq!(count(&maildir.join("tmp")), 0);
        drop(state);
        let state = State::open(dir.path(), "a").unwrap();
        assert!(state.pending_intents().is_empty());
        assert!(["u1", "u2", "u3"].iter().all(|k| state.done(k).is_some()));
    }

    #[test]
    fn a_crash_between_the_intents_and_the_renames_is_recovered() {
        let (dir, maildir, mut dest) = maildir_destination();
        let mut state = State::open(dir.path(), "a").unwrap();
        let staged = stage(dest.as_mut(), b"Subject: y\r\n\r\nbody\r\n");
        dest.sync_staged().unwrap();
        state.record_intents([("u1", staged.receipt())]).unwrap();
        // The run dies here: the file stays in tmp/, its intent in the journal.
        std::mem::forget(staged);
        drop(state);
        let state = State::open(dir.path(), "a").unwrap();
        let [(key, receipt)] = &state.pending_intents()[..] else {
            panic!("one pending intent")
        };
        assert_eq!(key, "u1");
        assert!(dest.recover(receipt).unwrap());
        assert_eq!(count(&maildir.join("new")), 1);
        assert_eq!(count(&maildir.join("tmp")), 0);
    }

    #[test]
    fn an_unflushed_batch_leaves_nothing_behind() {
        let (_dir, maildir, mut dest) = maildir_destination();
        let staged = stage(dest.as_mut(), b"Subject: z\r\n\r\nbody\r\n");
        assert_eq!(count(&maildir.join("tmp")), 1);
        drop(staged);
        assert_eq!(count(&maildir.join("tmp")), 0);
        assert_eq!(count(&maildir.join("new")), 0);
    }
}
