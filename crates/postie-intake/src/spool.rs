//! A message body while it is being received: in memory up to [`IN_MEMORY_LIMIT`], then in an
//! unlinked temporary file, so a 50 MB message costs disk, not memory, and vanishes by itself
//! whatever happens to the process. Every recipient's copy is then read from it.
//!
//! Most mail is far smaller than the limit, and keeping it in memory saves each delivery the
//! creation of a temporary file and the trips to the blocking pool that every write to it took
//! (a third of the LMTP server's thread switches); Dovecot's LMTP keeps small bodies in memory
//! for the same reason.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use postie_store::MessageSource;
use tokio::io::AsyncWriteExt;

/// Bodies up to this many octets stay in memory; a larger one moves to a file as it crosses
/// it. Each receiving session holds at most one body.
pub const IN_MEMORY_LIMIT: usize = 128 * 1024;

/// A spool being written by a session.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    content: Content,
    len: u64,
    /// The first write error; the message is then refused with a temporary failure.
    failed: Option<io::Error>,
}

#[derive(Debug)]
enum Content {
    Memory(Vec<u8>),
    File(tokio::fs::File),
}

impl Spool {
    /// An empty spool; a file in `dir` is created only if the body outgrows memory.
    pub fn new(dir: PathBuf) -> Spool {
        Spool {
            dir,
            content: Content::Memory(Vec::new()),
            len: 0,
            failed: None,
        }
    }

    /// Appends a piece of the body. A failure is kept for [`Spool::finish`]: the client is
    /// still sending, and the answer comes when the body ends.
    pub async fn write(&mut self, piece: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        let written = match &mut self.content {
            Content::Memory(buffer) if buffer.len() + piece.len() <= IN_MEMORY_LIMIT => {
                buffer.extend_from_slice(piece);
                Ok(())
            }
            Content::Memory(buffer) => {
                let held = std::mem::take(buffer);
                match spill(self.dir.clone(), held).await {
                    Ok(mut file) => {
                        let written = file.write_all(piece).await;
                        self.content = Content::File(file);
                        written
                    }
                    Err(e) => Err(e),
                }
            }
            Content::File(file) => file.write_all(piece).await,
        };
        match written {
            Ok(()) => self.len += piece.len() as u64,
            Err(e) => self.failed = Some(e),
        }
    }

    /// The complete body, ready to be read for each recipient.
    pub async fn finish(self) -> io::Result<Spooled> {
        if let Some(error) = self.failed {
            return Err(error);
        }
        let body = match self.content {
            Content::Memory(buffer) => Body::Memory(buffer),
            Content::File(mut file) => {
                file.flush().await?;
                Body::File(file.into_std().await)
            }
        };
        Ok(Spooled {
            body,
            len: self.len,
        })
    }
}

/// A temporary file in `dir` holding `held`, for a body that outgrew memory.
async fn spill(dir: PathBuf, held: Vec<u8>) -> io::Result<tokio::fs::File> {
    let file = tokio::task::spawn_blocking(move || {
        let mut file = tempfile::tempfile_in(dir)?;
        file.write_all(&held)?;
        Ok::<_, io::Error>(file)
    })
    .await
    .map_err(io::Error::other)??;
    Ok(tokio::fs::File::from_std(file))
}

/// A complete body, in memory or in its spool file.
#[derive(Debug)]
pub struct Spooled {
    body: Body,
    len: u64,
}

#[derive(Debug)]
enum Body {
    Memory(Vec<u8>),
    File(File),
}

impl Spooled {
    /// Spools all of `source` (standard input for `postie deliver`); blocking.
    pub fn from_reader(dir: &Path, source: &mut dyn Read) -> io::Result<Spooled> {
        let mut buffer = Vec::new();
        let limit = IN_MEMORY_LIMIT as u64 + 1;
        source.take(limit).read_to_end(&mut buffer)?;
        if buffer.len() as u64 <= IN_MEMORY_LIMIT as u64 {
            let len = buffer.len() as u64;
            return Ok(Spooled {
                body: Body::Memory(buffer),
                len,
            });
        }
        let mut file = tempfile::tempfile_in(dir)?;
        file.write_all(&buffer)?;
        let len = buffer.len() as u64 + io::copy(source, &mut file)?;
        file.flush()?;
        Ok(Spooled {
            body: Body::File(file),
            len,
        })
    }

    /// Octets of the body.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the body is held in a file (it outgrew [`IN_MEMORY_LIMIT`]).
    #[cfg(test)]
    fn is_in_file(&self) -> bool {
        matches!(self.body, Body::File(_))
    }

    /// Up to `max` octets from the start, to see which line ending the message uses.
    pub fn head(&self, max: usize) -> io::Result<Vec<u8>> {
        let mut reader = self.reader().take(max as u64);
        let mut head = Vec::with_capacity(max.min(self.len as usize));
        reader.read_to_end(&mut head)?;
        Ok(head)
    }

    /// The body from its start. Readers keep their own position, so each recipient's copy
    /// reads the body independently.
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

/// Reads a [`Spooled`] body from the start (positioned reads of a file).
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
        let n = match &self.spooled.body {
            Body::Memory(buffer) => {
                // `at` is within the buffer: it never passes `len`, the buffer's length.
                let start = self.at as usize;
                buf[..want].copy_from_slice(&buffer[start..start + want]);
                want
            }
            Body::File(file) => file.read_at(&mut buf[..want], self.at)?,
        };
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

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(spooled: &Spooled) -> Vec<u8> {
        let mut out = Vec::new();
        spooled.reader().read_to_end(&mut out).unwrap();
        out
    }

    /// A body that crosses the limit moves to a file with everything written so far, and
    /// reads back whole either way; readers are independent.
    #[tokio::test]
    async fn small_bodies_stay_in_memory_and_large_ones_move_to_a_file() {
        let dir = tempfile::tempdir().unwrap();
        for (pieces, in_file) in [(1, false), (40, true)] {
            let mut spool = Spool::new(dir.path().to_path_buf());
            let mut expected = Vec::new();
            for i in 0..pieces {
                let piece = vec![b'a' + (i % 26) as u8; 4000];
                spool.write(&piece).await;
                expected.extend_from_slice(&piece);
            }
            let spooled = spool.finish().await.unwrap();
            assert_eq!(spooled.is_in_file(), in_file);
            assert_eq!(spooled.len(), expected.len() as u64);
            let mut first = spooled.reader();
            let mut some = [0u8; 10];
            first.read_exact(&mut some).unwrap();
            assert_eq!(read_all(&spooled), expected);
            assert_eq!(spooled.head(5).unwrap(), expected[..5]);

            let blocking = Spooled::from_reader(dir.path(), &mut &expected[..]).unwrap();
            assert_eq!(blocking.is_in_file(), in_file);
            assert_eq!(read_all(&blocking), expected);
        }
        // Nothing is left in the spool directory: files are unlinked from the start.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn a_spool_that_cannot_spill_fails_at_its_end() {
        let mut spool = Spool::new(PathBuf::from("/nonexistent/spool"));
        spool.write(&vec![b'x'; IN_MEMORY_LIMIT]).await;
        spool.write(b"one more").await;
        assert!(spool.finish().await.is_err());
    }
}
