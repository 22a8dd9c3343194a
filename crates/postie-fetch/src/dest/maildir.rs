//! Maildir delivery the way Dovecot, Courier and mutt expect it: the message is written into
//! tmp/ under a name chosen first, fsynced, then renamed into new/ and the folder fsynced.
//!
//! postie-store has the same delivery for the server, but it names the file itself after
//! reading a whole source; the fetcher must know the name before publishing so that an
//! interrupted run can look for it (the receipt `maildir NAME`), hence this small writer.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rand::RngCore;

use super::{Destination, Incoming, Intent, ToLf};
use crate::error::{FetchError, LocalContext};

pub struct Maildir {
    root: PathBuf,
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
        Ok(Maildir {
            root: root.to_owned(),
        })
    }
}

/// `SECONDS.P<pid>Q<counter>R<random>.<host>`: unique on this host and across hosts.
fn unique_name() -> String {
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
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let end = buf.iter().position(|&b| b == 0).unwrap_or(0);
    let name = if ok && end > 0 {
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        "localhost".to_owned()
    };
    name.replace('/', "\\057").replace(':', "\\072")
}

fn sync_dir(dir: &Path) -> Result<(), FetchError> {
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
        let Some(name) = receipt.strip_prefix("maildir ") else {
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
        // The intent is written after the fsync of tmp/NAME, so a file there is complete:
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
            None => Err(io::Error::other("message already committed")),
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
    fn commit(mut self: Box<Self>, intent: Intent<'_>) -> Result<(), FetchError> {
        let writer = self.writer.take().ok_or_else(|| FetchError::Local {
            what: "commit",
            path: self.tmp.clone(),
            source: io::Error::other("message already committed"),
        })?;
        let file = writer
            .finish()
            .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
            .local("write", &self.tmp)?;
        file.sync_all().local("fsync", &self.tmp)?;
        drop(file);
        intent(&format!("maildir {}", self.name))?;
        let new_dir = self.root.join("new");
        fs::rename(&self.tmp, new_dir.join(&self.name)).local("rename", &self.tmp)?;
        // From here the file is published; the Drop below must not remove anything.
        self.tmp = PathBuf::new();
        sync_dir(&new_dir)
    }
}

impl Drop for MaildirIncoming {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            // Not committed (error or cut connection): the partial file must not linger.
            let _ = fs::remove_file(&self.tmp);
        }
    }
}
