//! Where fetched mail goes: a Maildir, an mbox (mboxrd), an MDA's standard input, or an
//! LMTP server. Every destination first takes the whole message into a temporary place
//! (Maildir's tmp/, or a spool file), so a connection cut mid-RETR never reaches the
//! destination; then [`Incoming::finish`] publishes it, recording an intent in the journal
//! just before, in a form [`Destination::recover`] can check after a crash. A Maildir
//! instead stages the message durably in tmp/ and leaves journaling and publishing to the
//! engine's batch, so a whole batch shares one journal fdatasync and one folder fsync.

mod lf;
mod lmtp;
pub(crate) mod maildir;
pub(crate) mod mbox;
mod mboxrd;
mod mda;

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config::resolve_path;
use crate::error::FetchError;

pub use lf::ToLf;
pub use mboxrd::MboxrdWriter;

/// The `deliver_to` setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliverTo {
    Maildir(PathBuf),
    /// A Maildir++ subfolder (`ROOT/.Name`), marked by its `maildirfolder` file.
    MaildirFolder(PathBuf),
    Mbox(PathBuf),
    Mda(String),
    Lmtp(String),
}

impl DeliverTo {
    /// Parses `maildir:PATH`, `maildir++:ROOT/.Folder`, `mbox:PATH`, `mda:COMMAND` or `lmtp:HOST:PORT`.
    pub fn parse(text: &str, base: &Path) -> Result<DeliverTo, String> {
        let (kind, value) = text.split_once(':').ok_or_else(|| {
            format!("{text:?}: expected maildir:PATH, mbox:PATH, mda:COMMAND or lmtp:HOST:PORT")
        })?;
        if value.is_empty() {
            return Err(format!("{text:?}: nothing after {kind}:"));
        }
        match kind {
            "maildir" => Ok(DeliverTo::Maildir(resolve_path(value, base))),
            "maildir++" => maildir::folder_path(resolve_path(value, base))
                .map(DeliverTo::MaildirFolder)
                .map_err(|e| format!("{text:?}: {e}")),
            "mbox" => Ok(DeliverTo::Mbox(resolve_path(value, base))),
            "mda" => Ok(DeliverTo::Mda(value.to_owned())),
            "lmtp" => {
                if value.rsplit_once(':').is_none_or(|(_, port)| port.parse::<u16>().is_err()) {
                    return Err(format!("{text:?}: expected lmtp:HOST:PORT"));
                }
                Ok(DeliverTo::Lmtp(value.to_owned()))
            }
            other => Err(format!(
                "{other:?} is no destination: expected maildir:PATH, mbox:PATH, mda:COMMAND or lmtp:HOST:PORT"
            )),
        }
    }

    /// Opens the destination. `spool_dir` holds temporary copies; `recipient` is the LMTP
    /// RCPT TO address; `now` dates mbox From_ lines. LMTP's MAIL FROM and mbox From_ lines
    /// carry each message's `Return-Path:`.
    pub fn open(
        &self,
        spool_dir: &Path,
        recipient: &str,
        now: u64,
    ) -> Result<Box<dyn Destination>, FetchError> {
        Ok(match self {
            DeliverTo::Maildir(path) => Box::new(maildir::Maildir::open(path)?),
            DeliverTo::MaildirFolder(path) => Box::new(maildir::Maildir::open_folder(path)?),
            DeliverTo::Mbox(path) => Box::new(mbox::Mbox::new(path, spool_dir, now)),
            DeliverTo::Mda(command) => Box::new(mda::Mda::new(command, spool_dir)),
            DeliverTo::Lmtp(addr) => Box::new(lmtp::Lmtp::new(addr, recipient, spool_dir)),
        })
    }
}

impl std::fmt::Display for DeliverTo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeliverTo::Maildir(path) => write!(f, "maildir:{}", path.display()),
            DeliverTo::MaildirFolder(path) => write!(f, "maildir++:{}", path.display()),
            DeliverTo::Mbox(path) => write!(f, "mbox:{}", path.display()),
            DeliverTo::Mda(command) => write!(f, "mda:{command}"),
            DeliverTo::Lmtp(addr) => write!(f, "lmtp:{addr}"),
        }
    }
}

/// The envelope sender a message's `Return-Path:` names (the first one, as the delivering
/// server put it at the top), read from the start of `spool`, which is left at its start:
/// what LMTP's MAIL FROM and an mbox `From ` line carry. `None` for a message without one,
/// or with `<>` or something that is not an address.
fn envelope_sender(spool: &mut std::fs::File) -> std::io::Result<Option<String>> {
    use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
    // The trace headers come first; a Return-Path further down than this is not trusted.
    const HEADER_LIMIT: u64 = 64 * 1024;
    spool.seek(SeekFrom::Start(0))?;
    let mut found = None;
    let mut reader = BufReader::new((&mut *spool).take(HEADER_LIMIT));
    let mut line = Vec::new();
    while reader.read_until(b'\n', &mut line)? > 0 {
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if text.is_empty() {
            break;
        }
        let name = b"return-path:";
        if text.len() > name.len() && text[..name.len()].eq_ignore_ascii_case(name) {
            found = std::str::from_utf8(&text[name.len()..])
                .ok()
                .map(str::trim)
                .and_then(|value| value.strip_prefix('<')?.strip_suffix('>'))
                .filter(|address| {
                    !address.is_empty()
                        && address.len() <= 254
                        && address.contains('@')
                        && !address.bytes().any(|b| {
                            b.is_ascii_whitespace()
                                || b.is_ascii_control()
                                || b == b'<'
                                || b == b'>'
                        })
                })
                .map(str::to_owned);
            break;
        }
        line.clear();
    }
    drop(reader);
    spool.seek(SeekFrom::Start(0))?;
    Ok(found)
}

/// Records the intent line in the journal (step 2 of the state module's order).
pub type Intent<'a> = &'a mut dyn FnMut(&str) -> Result<(), FetchError>;

pub trait Destination {
    /// Starts a message; write its content (CRLF line endings, as RETR gives it) into the
    /// returned writer. Dropping it without finishing discards the message.
    fn begin(&mut self) -> Result<Box<dyn Incoming>, FetchError>;

    /// Whether the delivery a journal receipt describes happened, completing it where that
    /// is safe (a Maildir file left in tmp/ after its fsync).
    fn recover(&mut self, receipt: &str) -> Result<bool, FetchError>;

    /// Makes every message staged ([`Finished::Staged`]) and not dropped since the last call
    /// durable in its temporary place. A destination that never stages has nothing to do.
    fn sync_staged(&mut self) -> Result<(), FetchError> {
        Ok(())
    }

    /// Makes every [`Staged::publish`] since the last call durable. A destination that never
    /// stages has nothing to do.
    fn sync(&mut self) -> Result<(), FetchError> {
        Ok(())
    }
}

/// What [`Incoming::finish`] did with the message.
pub enum Finished {
    /// Published durably, the intent journaled just before.
    Published,
    /// Complete in its temporary place but neither durable nor published:
    /// [`Destination::sync_staged`], journal [`Staged::receipt`], [`Staged::publish`], then
    /// [`Destination::sync`], in that order.
    Staged(Box<dyn Staged>),
}

pub trait Incoming: Write {
    /// Ends the message: publishes it durably, calling `intent` with the receipt just
    /// before, or stages it for a batch without calling `intent`.
    fn finish(self: Box<Self>, intent: Intent<'_>) -> Result<Finished, FetchError>;
}

/// A message complete in the destination's temporary place. Dropping it unpublished
/// discards it.
pub trait Staged {
    /// What the journal's intent records, for [`Destination::recover`].
    fn receipt(&self) -> &str;

    /// Publishes the message; it is durable after the next [`Destination::sync`].
    fn publish(self: Box<Self>) -> Result<(), FetchError>;
}

/// A temporary file for the whole message, gone when dropped (O_TMPFILE or unlinked at once).
fn spool(dir: &Path) -> Result<std::fs::File, FetchError> {
    std::fs::create_dir_all(dir).map_err(|source| FetchError::Local {
        what: "create the spool folder",
        path: dir.to_owned(),
        source,
    })?;
    tempfile::tempfile_in(dir).map_err(|source| FetchError::Local {
        what: "create a spool file in",
        path: dir.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations() {
        let base = Path::new("/etc/postie");
        assert_eq!(
            DeliverTo::parse("maildir:Mail", base).unwrap(),
            DeliverTo::Maildir("/etc/postie/Mail".into())
        );
        assert_eq!(
            DeliverTo::parse("mda:procmail -d alice", base).unwrap(),
            DeliverTo::Mda("procmail -d alice".into())
        );
        assert!(DeliverTo::parse("lmtp:localhost", base).is_err());
        assert!(DeliverTo::parse("lmtp:[::1]:24", base).is_ok());
        assert!(DeliverTo::parse("mbox:", base).is_err());
        assert!(DeliverTo::parse("/var/mail/x", base).is_err());
    }
}
