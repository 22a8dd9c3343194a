//! Delivery through a mail delivery agent (procmail, maildrop, dovecot-lda, a script): the
//! whole message on its standard input once it has fully arrived, LF line endings, and its
//! exit status as the verdict (75, EX_TEMPFAIL, means try again later).
//!
//! An MDA cannot be asked afterwards whether it delivered, so a run killed between the MDA's
//! exit and the journal's `done` line delivers that one message again: at least once, never
//! lost.

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{spool, Destination, Finished, Incoming, Intent, ToLf};
use crate::error::FetchError;

pub struct Mda {
    command: String,
    spool_dir: PathBuf,
}

impl Mda {
    pub fn new(command: &str, spool_dir: &Path) -> Mda {
        Mda {
            command: command.to_owned(),
            spool_dir: spool_dir.to_owned(),
        }
    }
}

impl Destination for Mda {
    fn begin(&mut self) -> Result<Box<dyn Incoming>, FetchError> {
        Ok(Box::new(MdaIncoming {
            writer: ToLf::new(BufWriter::new(spool(&self.spool_dir)?)),
            command: self.command.clone(),
        }))
    }

    fn recover(&mut self, _receipt: &str) -> Result<bool, FetchError> {
        Ok(false)
    }
}

struct MdaIncoming {
    writer: ToLf<BufWriter<File>>,
    command: String,
}

impl Write for MdaIncoming {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }
}

impl Incoming for MdaIncoming {
    fn finish(self: Box<Self>, intent: Intent<'_>) -> Result<Finished, FetchError> {
        let destination = format!("mda:{}", self.command);
        let failed = |reason: String, temporary: bool| FetchError::Delivery {
            destination: destination.clone(),
            reason,
            temporary,
        };
        let mut spool = self
            .writer
            .finish()
            .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
            .and_then(|mut f| f.seek(SeekFrom::Start(0)).map(|_| f))
            .map_err(|e| failed(format!("cannot write the spool file: {e}"), false))?;
        intent("mda")?;
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(&self.command)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| failed(format!("cannot run sh: {e}"), false))?;
        let mut stdin = child
            .stdin
            .take()
            .ok_or_else(|| failed("no stdin".into(), false))?;
        let mut stderr = child
            .stderr
            .take()
            .ok_or_else(|| failed("no stderr".into(), false))?;
        // Read stderr meanwhile, so an MDA that complains a lot cannot block on its pipe.
        let errors = std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = (&mut stderr).take(64 * 1024).read_to_end(&mut text);
            text
        });
        let copied = io::copy(&mut spool, &mut stdin);
        drop(stdin);
        let status = child
            .wait()
            .map_err(|e| failed(format!("cannot wait for it: {e}"), true))?;
        let errors = errors.join().unwrap_or_default();
        let errors = String::from_utf8_lossy(&errors).trim().to_owned();
        if status.success() {
            // An MDA may stop reading early (e.g. it filters on headers) and still accept.
            return Ok(Finished::Published);
        }
        if let Err(e) = copied {
            if e.kind() != io::ErrorKind::BrokenPipe {
                return Err(failed(format!("cannot feed it: {e}"), true));
            }
        }
        let temporary = status.code() == Some(75);
        Err(failed(
            format!(
                "it exited with {status}{}{errors}",
                if errors.is_empty() { "" } else { ": " }
            ),
            temporary,
        ))
    }
}
