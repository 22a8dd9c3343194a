//! Maildir delivery the way Dovecot, Courier and mutt expect it: the message is written into
//! tmp/ under a name chosen first, made durable, then renamed into new/ and the folder
//! fsynced. The engine does these steps for a batch at a time ([`Staged`]): one syncfs
//! makes every file of the batch durable, one fsync of new/ every rename.
//!
//! postie-store has the same delivery for the server, but it names the file itself after
//! reading a whole source; the fetcher must know the name before publishing so that an
//! interrupted run can look for it (the receipt `maildir NAME`), hence this small writer.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rand::RngCore;

use super::{Destination, Finished, Incoming, Intent, Staged, ToLf};
use crate::error::{FetchError, LocalContext};

/// How a Maildir receipt begins; the file's name follows.
pub(crate) const MAILDIR_RECEIPT: &str = "maildir ";

pub struct Maildir {
    root: PathBuf,
    /// tmp/, open for syncfs.
    tmp_dir: File,
}

impl Maildir {
    pub fn open(root: &Path) -> Result<Maildir, FetchError> {
        for sub in ["tmp", "new", "cur"] {
            let dir = root.join(sub);
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .local("create the Maildir folder", &dir)?;
        }
        let tmp = root.join("tmp");
        Ok(Maildir {
            root: root.to_owned(),
            tmp_dir: File::open(&tmp).local("open", &tmp)?,
        })
    }
}

/// Checks a Maildir++ subfolder's path: its last component is `.Name`.
pub fn folder_path(path: PathBuf) -> Result<PathBuf, String> {
    let named = path
        .file_name()
        .map(|n| n.as_encoded_bytes())
        .is_some_and(|n| n.len() > 1 && n[0] == b'.' && n != b"..");
    if named {
        Ok(path)
    } else {
        Err("a Maildir++ subfolder's name must begin with '.' (maildir++:~/Mail/.Lists)".into())
    }
}

impl Maildir {
    /// Opens a Maildir++ subfolder, creating it with its `maildirfolder` file (which tells
    /// Dovecot and Courier it is a folder, not a mailbox of its own).
    pub fn open_folder(path: &Path) -> Result<Maildir, FetchError> {
        let maildir = Maildir::open(path)?;
        let marker = path.join("maildirfolder");
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&marker)
            .local("create", &marker)?;
        Ok(maildir)
    }
}

/// `SECONDS.P<pid>Q<counter>R<random>.<host>`: unique on this host and across hosts.
pub(crate) fn unique_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut random = [0u8; 6];
    rand::thread_rng().fill_bytes(&mut random);
    format!(
        "{secs}.P{}Q{}R{}.{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        hex::encode(random),
        hostname()
    )
}

/// The host name, with '/' and ':' replaced as the Maildir specification asks.
fn hostname() -> String {
    host_name().replace('/', "\\057").replace(':', "\\072")
}

/// This machine's host name ("localhost" where the system cannot say).
pub(crate) fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let end = buf.iter().position(|&b| b == 0).unwrap_or(0);
    if ok && end > 0 {
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        "localhost".to_owned()
    }
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), FetchError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .local("fsync", dir)
}

impl Destination for Maildir {
    fn begin(&mut self) -> Result<Box<dyn Incoming>, FetchError> {
        let name = unique_name();
        let tmp = self.root.join("tmp").join(&name);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .local("create", &tmp)?;
        Ok(Box::new(MaildirIncoming {
            writer: Some(ToLf::new(BufWriter::with_capacity(128 * 1024, file))),
            root: self.root.clone(),
            name,
            tmp,
        }))
    }

    fn recover(&mut self, receipt: &str) -> Result<bool, FetchError> {
        let Some(name) = receipt.strip_prefix(MAILDIR_RECEIPT) else {
            return Ok(false);
        };
        if self.root.join("new").join(name).exists() {
            return Ok(true);
        }
        let cur = self.root.join("cur");
        let prefix = format!("{name}:");
        for entry in fs::read_dir(&cur).local("read", &cur)? {
            let entry = entry.local("read", &cur)?;
            let file_name = entry.file_name();
            let file_name = file_name.to_string_lossy();
            if file_name == name || file_name.starts_with(&prefix) {
                return Ok(true);
            }
        }
        // The intent is written after tmp/NAME was made durable, so a file there is complete:
        // finish the rename the interrupted run did not get to.
        let tmp = self.root.join("tmp").join(name);
        if tmp.exists() {
            let new = self.root.join("new").join(name);
            fs::rename(&tmp, &new).local("rename", &tmp)?;
            sync_dir(&self.root.join("new"))?;
            return Ok(true);
        }
        Ok(false)
    }

    /// One syncfs of the file system holding tmp/ for the whole batch, instead of an fsync
    /// per file: each fsync waits for its own journal commit and disk cache flush, which is
    /// most of the cost of a small message. It also writes out any other dirty data of that
    /// file system, a cost bounded by what the kernel would write back within seconds
    /// anyway. Since Linux 5.8 it reports write-back errors like fsync does.
    fn sync_staged(&mut self) -> Result<(), FetchError> {
        // SAFETY: syncfs on a descriptor we own.
        if unsafe { libc::syncfs(self.tmp_dir.as_raw_fd()) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error()).local("syncfs", &self.root.join("tmp"))
        }
    }

    fn sync(&mut self) -> Result<(), FetchError> {
        sync_dir(&self.root.join("new"))
    }
}

struct MaildirIncoming {
    writer: Option<ToLf<BufWriter<File>>>,
    root: PathBuf,
    name: String,
    tmp: PathBuf,
}

impl Write for MaildirIncoming {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.writer {
            Some(writer) => writer.write(buf),
            None => Err(io::Error::other("message already finished")),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.writer {
            Some(writer) => writer.flush(),
            None => Ok(()),
        }
    }
}

impl Incoming for MaildirIncoming {
    /// Stages the message: written out and on its way to the disk, made durable by
    /// [`Destination::sync_staged`] for the whole batch.
    fn finish(mut self: Box<Self>, _intent: Intent<'_>) -> Result<Finished, FetchError> {
        let writer = self.writer.take().ok_or_else(|| FetchError::Local {
            what: "finish",
            path: self.tmp.clone(),
            source: io::Error::other("message already finished"),
        })?;
        let file = writer
            .finish()
            .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
            .local("write", &self.tmp)?;
        start_writeback(&file);
        drop(file);
        // The staged message owns the file in tmp/ from here (and removes it if dropped).
        let tmp = std::mem::take(&mut self.tmp);
        Ok(Finished::Staged(Box::new(MaildirStaged {
            receipt: format!("{MAILDIR_RECEIPT}{}", self.name),
            new: self.root.join("new").join(&self.name),
            tmp,
        })))
    }
}

/// Asks the kernel to start writing the file out now, without waiting, so the disk works
/// while the next messages arrive and the batch's sync finds little left to write. Only a
/// hint: durability comes from [`Destination::sync_staged`], so a file system that refuses
/// it costs nothing but speed.
fn start_writeback(file: &File) {
    // SAFETY: sync_file_range on a descriptor we own; offset 0 and length 0 mean the whole file.
    unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
}

impl Drop for MaildirIncoming {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            // Not finished (error or cut connection): the partial file must not linger.
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// A message complete in tmp/, waiting for its batch.
struct MaildirStaged {
    receipt: String,
    tmp: PathBuf,
    new: PathBuf,
}

impl Staged for MaildirStaged {
    fn receipt(&self) -> &str {
        &self.receipt
    }

    fn publish(mut self: Box<Self>) -> Result<(), FetchError> {
        fs::rename(&self.tmp, &self.new).local("rename", &self.tmp)?;
        // Published: the Drop below must not remove anything.
        self.tmp = PathBuf::new();
        Ok(())
    }
}

impl Drop for MaildirStaged {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            // Never published (the batch failed): without an intent nobody will look for it.
            let _ = fs::remove_file(&self.tmp);
        }
    }
}
