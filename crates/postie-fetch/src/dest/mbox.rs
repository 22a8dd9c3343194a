//! mbox delivery (mboxrd), locked the way mutt and procmail lock: a dotlock file
//! (`MBOX.lock`, created with O_EXCL) and an fcntl lock on the mbox itself.
//!
//! The message is spooled first, so its quoted length and SHA-256 are known before the
//! mbox is touched; the receipt `mbox START END SHA256` lets a later run tell whether an
//! interrupted append completed (those bytes are there) or was torn (it truncates them).

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::{spool, Destination, Finished, Incoming, Intent, MboxrdWriter, ToLf};
use crate::error::{FetchError, LocalContext};

/// How long to wait for another program's lock before giving up (temporary failure).
const LOCK_WAIT: Duration = Duration::from_secs(60);
/// A dotlock older than this, or whose owner is dead, is stale (procmail uses 5 minutes).
const STALE_DOTLOCK: Duration = Duration::from_secs(300);

pub struct Mbox {
    path: PathBuf,
    spool_dir: PathBuf,
    now: u64,
}

impl Mbox {
    pub fn new(path: &Path, spool_dir: &Path, now: u64) -> Mbox {
        Mbox {
            path: path.to_owned(),
            spool_dir: spool_dir.to_owned(),
            now,
        }
    }
}

impl Destination for Mbox {
    fn begin(&mut self) -> Result<Box<dyn Incoming>, FetchError> {
        let file = spool(&self.spool_dir)?;
        Ok(Box::new(MboxIncoming {
            writer: ToLf::new(BufWriter::new(file)),
            path: self.path.clone(),
            date: asctime(self.now),
        }))
    }

    fn recover(&mut self, receipt: &str) -> Result<bool, FetchError> {
        let mut words = receipt.split(' ');
        let (Some("mbox"), Some(start), Some(end), Some(hash)) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            return Ok(false);
        };
        let (Ok(start), Ok(end)) = (start.parse::<u64>(), end.parse::<u64>()) else {
            return Ok(false);
        };
        if !self.path.exists() {
            return Ok(false);
        }
        let lock = MboxLock::acquire(&self.path)?;
        let len = lock.file.metadata().local("stat", &self.path)?.len();
        if len >= end {
            let mut file = &lock.file;
            file.seek(SeekFrom::Start(start))
                .local("seek", &self.path)?;
            let mut hasher = Sha256::new();
            io::copy(&mut file.take(end - start), &mut hasher).local("read", &self.path)?;
            return Ok(hex::encode(hasher.finalize()) == hash);
        }
        if len > start {
            // A torn append of ours at the end: take it back.
            lock.file.set_len(start).local("truncate", &self.path)?;
            lock.file.sync_all().local("fsync", &self.path)?;
        }
        Ok(false)
    }
}

struct MboxIncoming {
    writer: ToLf<BufWriter<File>>,
    path: PathBuf,
    /// The From_ line's date; its sender is the message's `Return-Path:`, known once the
    /// message is spooled.
    date: String,
}

impl Write for MboxIncoming {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }
}

/// Counts and hashes what would be written.
#[derive(Default)]
struct Measure {
    len: u64,
    hasher: Sha256,
}

impl Write for Measure {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.len += buf.len() as u64;
        self.hasher.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes the separator, the From_ line and the quoted message into `out`.
fn render<W: Write>(from_line: &str, spool: &mut File, separator: &[u8], out: W) -> io::Result<W> {
    spool.seek(SeekFrom::Start(0))?;
    let mut out = out;
    out.write_all(separator)?;
    out.write_all(from_line.as_bytes())?;
    let mut quoted = MboxrdWriter::new(out);
    io::copy(spool, &mut quoted)?;
    quoted.finish()
}

impl Incoming for MboxIncoming {
    fn finish(self: Box<Self>, intent: Intent<'_>) -> Result<Finished, FetchError> {
        let this = *self;
        let spool_error = |e: io::Error| FetchError::Local {
            what: "write the spool file for",
            path: this.path.clone(),
            source: e,
        };
        let mut spool = this
            .writer
            .finish()
            .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
            .map_err(spool_error)?;
        let sender = super::envelope_sender(&mut spool).map_err(spool_error)?;
        let from_line = format!(
            "From {} {}\n",
            sender.as_deref().unwrap_or("MAILER-DAEMON"),
            this.date
        );
        let lock = MboxLock::acquire(&this.path)?;
        let mut mbox = &lock.file;
        let start = mbox.metadata().local("stat", &this.path)?.len();
        // Messages are separated by a blank line; repair a file that lacks it at the end.
        let separator: &[u8] = match tail(&lock.file, start)
            .local("read", &this.path)?
            .as_slice()
        {
            _ if start == 0 => b"",
            [b'\n', b'\n'] => b"",
            [_, b'\n'] => b"\n",
            _ => b"\n\n",
        };
        let measure =
            render(&from_line, &mut spool, separator, Measure::default()).map_err(|e| {
                FetchError::Local {
                    what: "read the spool file for",
                    path: this.path.clone(),
                    source: e,
                }
            })?;
        let end = start + measure.len;
        intent(&format!(
            "mbox {start} {end} {}",
            hex::encode(measure.hasher.finalize())
        ))?;
        mbox.seek(SeekFrom::End(0)).local("seek", &this.path)?;
        let written = render(
            &from_line,
            &mut spool,
            separator,
            BufWriter::with_capacity(128 * 1024, mbox),
        )
        .and_then(|mut w| w.flush())
        .and_then(|()| lock.file.sync_data());
        if let Err(e) = written {
            // Leave the mbox as it was: a half message would corrupt the next one.
            let _ = lock.file.set_len(start);
            let _ = lock.file.sync_data();
            return Err(FetchError::Local {
                what: "append to",
                path: this.path.clone(),
                source: e,
            });
        }
        Ok(Finished::Published)
    }
}

/// The last two bytes of the file (fewer if it is shorter).
fn tail(file: &File, len: u64) -> io::Result<Vec<u8>> {
    let mut file = file;
    let from = len.saturating_sub(2);
    file.seek(SeekFrom::Start(from))?;
    let mut bytes = Vec::new();
    file.take(2).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Both locks, released (dotlock removed) when dropped.
struct MboxLock {
    file: File,
    dotlock: PathBuf,
}

impl MboxLock {
    fn acquire(path: &Path) -> Result<MboxLock, FetchError> {
        let dotlock = PathBuf::from(format!("{}.lock", path.display()));
        let deadline = Instant::now() + LOCK_WAIT;
        // The dotlock appears with its owner's pid already in it: written to a file of this
        // process's own, then linked into place. A run killed between creating an empty
        // dotlock and writing its pid would leave a lock no one could judge stale.
        // Unique per attempt: accounts delivering to one mbox run on threads of one process.
        static CLAIMS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let attempt = CLAIMS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let claim = PathBuf::from(format!(
            "{}.{}.{attempt}",
            dotlock.display(),
            std::process::id()
        ));
        fs::write(&claim, format!("{}\n", std::process::id()))
            .local("write the dotlock", &claim)?;
        let linked = loop {
            match fs::hard_link(&claim, &dotlock) {
                Ok(()) => break Ok(()),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    if is_stale(&dotlock) {
                        let _ = fs::remove_file(&dotlock);
                        continue;
                    }
                }
                Err(e) => break Err(e).local("create the dotlock", &dotlock),
            }
            if Instant::now() > deadline {
                break Err(FetchError::Delivery {
                    destination: format!("mbox:{}", path.display()),
                    reason: format!(
                        "{} has been locked for {LOCK_WAIT:?} by another program",
                        path.display()
                    ),
                    temporary: true,
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let _ = fs::remove_file(&claim);
        linked?;
        let guard = DotlockGuard(dotlock.clone());
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .local("open", path)?;
        let lock = libc::flock {
            l_type: libc::F_WRLCK as _,
            l_whence: libc::SEEK_SET as _,
            l_start: 0,
            l_len: 0,
            l_pid: 0,
        };
        // SAFETY: F_SETLKW with a valid flock struct on a descriptor we own.
        if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLKW, &lock) } != 0 {
            return Err(io::Error::last_os_error()).local("fcntl-lock", path);
        }
        std::mem::forget(guard);
        Ok(MboxLock { file, dotlock })
    }
}

/// Removes the dotlock if taking the fcntl lock fails.
struct DotlockGuard(PathBuf);

impl Drop for DotlockGuard {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

impl Drop for MboxLock {
    fn drop(&mut self) {
        // The fcntl lock goes with the descriptor; the dotlock must be removed by hand.
        let _ = fs::remove_file(&self.dotlock);
    }
}

/// A dotlock whose owner process is gone, or that is older than procmail's 5 minutes.
fn is_stale(dotlock: &Path) -> bool {
    let owner = fs::read_to_string(dotlock)
        .ok()
        .and_then(|text| text.trim().parse::<libc::pid_t>().ok());
    if let Some(pid) = owner {
        // SAFETY: kill with signal 0 only checks whether the process exists.
        let alive = unsafe { libc::kill(pid, 0) } == 0
            || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
        if !alive {
            return true;
        }
    }
    fs::metadata(dotlock)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age > STALE_DOTLOCK)
}

/// `Thu Nov 27 00:20:09 2026` in UTC, the date form of a From_ line.
pub(crate) fn asctime(secs: u64) -> String {
    postie_types::UtcTime::from_unix(secs).asctime()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_line_dates() {
        assert_eq!(asctime(0), "Thu Jan  1 00:00:00 1970");
        assert_eq!(asctime(1_795_738_809), "Fri Nov 27 00:20:09 2026");
        assert_eq!(asctime(951_782_400), "Tue Feb 29 00:00:00 2000");
    }

    #[test]
    fn append_recover_and_torn_appends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mbox");
        let mut mbox = Mbox::new(&path, dir.path(), 0);
        let mut receipts = Vec::new();
        for body in [
            &b"Subject: 1\r\n\r\nFrom me\r\n"[..],
            b"Subject: 2\r\n\r\nx",
        ] {
            let mut incoming = mbox.begin().unwrap();
            incoming.write_all(body).unwrap();
            incoming
                .finish(&mut |r: &str| {
                    receipts.push(r.to_owned());
                    Ok(())
                })
                .unwrap();
        }
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "From MAILER-DAEMON Thu Jan  1 00:00:00 1970\nSubject: 1\n\n>From me\n\n\
             From MAILER-DAEMON Thu Jan  1 00:00:00 1970\nSubject: 2\n\nx\n\n"
        );
        assert!(!path.with_extension("lock").exists());
        assert!(mbox.recover(&receipts[1]).unwrap());
        let len = fs::metadata(&path).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
        assert!(!mbox.recover(&receipts[1]).unwrap());
        let start: u64 = receipts[1].split(' ').nth(1).unwrap().parse().unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().len(),
            start,
            "torn append taken back"
        );
    }
}
