//! The networks each user logged in from, remembered for [`REMEMBER_NETWORKS_FOR`] and kept
//! across restarts in a small state file (`known-networks` in the state directory), replaced
//! atomically. A new pair is written within [`WRITE_AT_MOST_EVERY`] of the last write; a pair
//! learned just before a crash may be forgotten, and is learned again at its next login.
//!
//! The file is text, one pair a line after a version line: seconds since the epoch of the last
//! login, the network, the user name (last, so any name but one with a line break fits).

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::login_policy::{FORGET_FAILURES_AFTER, REMEMBER_NETWORKS_FOR};

const HEADER: &str = "postie known-networks 1";
/// File writes are spaced at least this far apart, however many new pairs arrive.
pub(crate) const WRITE_AT_MOST_EVERY: Duration = Duration::from_secs(5);
/// A known pair's time is written again only when it moved by this much: the file changes
/// with new pairs, not with every login.
const REFRESH_WRITTEN_AFTER: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Clone, Copy)]
struct Pair {
    last_login: SystemTime,
    /// When a success of this pair last halved its network's failure count.
    credited: SystemTime,
}

#[derive(Debug)]
pub(crate) struct KnownNetworks {
    pairs: HashMap<(String, IpAddr), Pair>,
    capacity: usize,
    file: Option<StateFile>,
}

#[derive(Debug)]
struct StateFile {
    path: PathBuf,
    last_write: Option<Instant>,
    dirty: bool,
    generation: u64,
}

/// A snapshot of the pairs due to be written; [`FileWrite::apply`] writes it unless a newer
/// one has been written already.
#[derive(Debug)]
pub(crate) struct FileWrite {
    pub(crate) path: PathBuf,
    pub(crate) content: Vec<u8>,
    pub(crate) generation: u64,
}

impl KnownNetworks {
    pub(crate) fn in_memory(capacity: usize) -> Self {
        KnownNetworks {
            pairs: HashMap::new(),
            capacity: capacity.max(10),
            file: None,
        }
    }

    /// The pairs in `path` (none if it does not exist yet), written back there from now on.
    pub(crate) fn load(path: PathBuf, capacity: usize) -> io::Result<Self> {
        let mut known = KnownNetworks::in_memory(capacity);
        match fs::read_to_string(&path) {
            Ok(text) => known.parse(&text, SystemTime::now()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
        known.file = Some(StateFile {
            path,
            last_write: None,
            dirty: false,
            generation: 0,
        });
        Ok(known)
    }

    fn parse(&mut self, text: &str, now: SystemTime) {
        let mut lines = text.lines();
        if lines.next() != Some(HEADER) {
            return;
        }
        for line in lines {
            let mut fields = line.splitn(3, ' ');
            let (Some(secs), Some(network), Some(user)) =
                (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            let (Ok(secs), Ok(network)) = (secs.parse::<u64>(), network.parse::<IpAddr>()) else {
                continue;
            };
            let at = UNIX_EPOCH + Duration::from_secs(secs);
            if fresh(at, now) && self.pairs.len() < self.capacity {
                let pair = Pair {
                    last_login: at,
                    credited: at,
                };
                self.pairs.insert((user.to_owned(), network), pair);
            }
        }
    }

    pub(crate) fn is_known(&self, user: &str, network: IpAddr, now: SystemTime) -> bool {
        self.pairs
            .get(&(user.to_owned(), network))
            .is_some_and(|pair| fresh(pair.last_login, now))
    }

    /// Remembers a login of `user` from `network` at `now`; returns whether it earns the
    /// network its halving (the pair's first success in [`FORGET_FAILURES_AFTER`]).
    pub(crate) fn remember(&mut self, user: &str, network: IpAddr, now: SystemTime) -> bool {
        let key = (user.to_owned(), network);
        if !self.pairs.contains_key(&key) && self.pairs.len() >= self.capacity {
            self.evict(now);
        }
        let (credit, changed) = match self.pairs.get_mut(&key) {
            Some(pair) => {
                let credit = !within(pair.credited, now, FORGET_FAILURES_AFTER);
                if credit {
                    pair.credited = now;
                }
                let changed = !within(pair.last_login, now, REFRESH_WRITTEN_AFTER);
                pair.last_login = now;
                (credit, changed)
            }
            None => {
                let pair = Pair {
                    last_login: now,
                    credited: now,
                };
                self.pairs.insert(key, pair);
                (true, true)
            }
        };
        if let Some(file) = &mut self.file {
            file.dirty |= changed;
        }
        credit
    }

    /// Forgets the stale pairs, then, if still full, the tenth that logged in longest ago.
    fn evict(&mut self, now: SystemTime) {
        self.pairs.retain(|_, pair| fresh(pair.last_login, now));
        if self.pairs.len() < self.capacity {
            return;
        }
        let mut oldest: Vec<(SystemTime, (String, IpAddr))> = self
            .pairs
            .iter()
            .map(|(key, pair)| (pair.last_login, key.clone()))
            .collect();
        let tenth = self.capacity / 10;
        oldest.select_nth_unstable_by_key(tenth, |(at, _)| *at);
        for (_, key) in oldest.into_iter().take(tenth) {
            self.pairs.remove(&key);
        }
    }

    /// The file's new content, if pairs changed and the last write is long enough ago (or
    /// `force`, when the records are dropped).
    pub(crate) fn due_write(&mut self, now: Instant, force: bool) -> Option<FileWrite> {
        let file = self.file.as_mut()?;
        let waited = file
            .last_write
            .is_none_or(|last| now.duration_since(last) >= WRITE_AT_MOST_EVERY);
        if !file.dirty || !(waited || force) {
            return None;
        }
        file.dirty = false;
        file.last_write = Some(now);
        file.generation += 1;
        let mut content = format!("{HEADER}\n").into_bytes();
        for ((user, network), pair) in &self.pairs {
            let secs = pair
                .last_login
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            content.extend_from_slice(format!("{secs} {network} {user}\n").as_bytes());
        }
        Some(FileWrite {
            path: file.path.clone(),
            content,
            generation: file.generation,
        })
    }
}

impl FileWrite {
    /// Writes the snapshot if it is newer than the one written last (`written`, which the
    /// caller holds locked so that writes do not interleave).
    pub(crate) fn apply(self, written: &mut u64) -> io::Result<()> {
        if self.generation <= *written {
            return Ok(());
        }
        replace_file(&self.path, &self.content)?;
        *written = self.generation;
        Ok(())
    }
}

fn fresh(at: SystemTime, now: SystemTime) -> bool {
    within(at, now, REMEMBER_NETWORKS_FOR)
}

/// Whether `at` is less than `span` before `now` (a time in the future counts as now).
fn within(at: SystemTime, now: SystemTime, span: Duration) -> bool {
    now.duration_since(at).map_or(true, |age| age < span)
}

/// Replaces `path` with `content`: readers and a crash leave the old file or the new one
/// whole. The state directory is made if it is missing.
fn replace_file(path: &Path, content: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let written = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut file| {
            file.write_all(content)?;
            file.sync_all()
        })
        .and_then(|()| fs::rename(&tmp, path));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written?;
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_survive_a_write_and_a_load_and_go_stale_after_weeks() {
        let dir = std::env::temp_dir().join(format!("postie-known-{}", std::process::id()));
        let path = dir.join("known-networks");
        let network: IpAddr = "192.0.2.7".parse().unwrap();
        let now = SystemTime::now();
        let mut known = KnownNetworks::load(path.clone(), 100).unwrap();
        assert!(known.remember("alice smith", network, now));
        assert!(
            !known.remember("alice smith", network, now),
            "one halving a window"
        );
        let write = known.due_write(Instant::now(), false).unwrap();
        write.apply(&mut 0).unwrap();
        let again = KnownNetworks::load(path, 100).unwrap();
        assert!(again.is_known("alice smith", network, now));
        assert!(!again.is_known("bob", network, now));
        assert!(!again.is_known("alice smith", network, now + REMEMBER_NETWORKS_FOR));
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_full_table_forgets_the_oldest_pairs_first() {
        let mut known = KnownNetworks::in_memory(100);
        let network: IpAddr = "192.0.2.7".parse().unwrap();
        let start = SystemTime::now();
        for i in 0..1000u64 {
            known.remember(&format!("user{i}"), network, start + Duration::from_secs(i));
        }
        let now = start + Duration::from_secs(1000);
        assert!(known.is_known("user999", network, now));
        assert!(!known.is_known("user0", network, now));
        assert!(known.pairs.len() <= 100);
    }
}
