//! A message body while it is being received: an unlinked temporary file, so a 50 MB message
//! costs disk, not memory, and vanishes by itself whatever happens to the process. Every
//! recipient's copy is then read from it.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use postie_store::MessageSource;
use tokio::io::AsyncWriteExt;

/// A spool being written by a session.
#[derive(Debug)]
pub struct Spool {
    file: tokio::fs::File,
    len: u64,
    /// The first write error; the message is then refused with a temporary failure.
    failed: Option<io::Error>,
}

impl Spool {
    pub async fn create(dir: PathBuf) -> io::Result<Spool> {
        let file = tokio::task::spawn_blocking(move || tempfile::tempfile_in(dir))
            .await
            .map_err(io::Error::other)??;
        Ok(Spool {
            file: tokio::fs::File::from_std(file),
            len: 0,
            failed: None,
        })
    }

    /// Appends a piece of the body. A failure is kept for [`Spool::finish`]: the client is
    /// still sending, and the answer comes when the body ends.
    pub async fn write(&mut self, piece: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        match self.file.write_all(piece).await {
            Ok(()) => self.len += piece.len() as u64,
            Err(e) => self.failed = Some(e),
        }
    }

    /// The complete body, ready to be read for each recipient.
    pub async fn finish(mut self) -> io::Result<Spooled> {
        if let Some(error) = self.failed {
            return Err(error);
        }
        self.file.flush().await?;
        Ok(Spooled {
            file: self.file.into_std().await,
            len: self.len,
        })
    }
}

/// A complete body in its spool file.
#[derive(Debug)]
pub struct Spooled {
    file: File,
    len: u64,
}

impl Spooled {
    /// Spools all of `source` (standard input for `postie deliver`); blocking.
    pub fn from_reader(dir: &Path, source: &mut dyn Read) -> io::Result<Spooled> {
        let mut file = tempfile::tempfile_in(dir)?;
        let len = io::copy(source, &mut file)?;
        file.flush()?;
        Ok(Spooled { file, len })
    }

    /// Octets of the body.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Up to `max` octets from the start, to see which line ending the message uses.
    pub fn head(&self, max: usize) -> io::Result<Vec<u8>> {
        let mut reader = self.reader().take(max as u64);
        let mut head = Vec::with_capacity(max.min(self.len as usize));
        reader.read_to_end(&mut head)?;
        Ok(head)
    }

    /// The body from its start. Readers keep their own position, so each recipient's copy
    /// reads the file independently.
    pub fn reader(&self) -> SpoolReader<'_> {
        SpoolReader {
            spooled: self,
            at: 0,
        }
    }
}

impl MessageSource for Spooled {
    fn len(&self) -> u64 {
        self.len
    }

    fn reader(&self) -> io::Result<Box<dyn Read + Send + '_>> {
        Ok(Box::new(Spooled::reader(self)))
    }
}

/// Reads a [`Spooled`] body from the start with positioned reads.
#[derive(Debug)]
pub struct SpoolReader<'a> {
    spooled: &'a Spooled,
    at: u64,
}

impl Read for SpoolReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.spooled.len.saturating_sub(self.at);
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self.spooled.file.read_at(&mut buf[..want], self.at)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the spool file is shorter than what was written to it",
            ));
        }
        self.at += n as u64;
        Ok(n)
    }
}
