//! Delivery over LMTP (RFC 2033) to a local mail server (Dovecot, Cyrus, postie): the
//! spooled message, CRLF and dot-stuffed with the protocol core's encoder, to one recipient
//! (the account's `lmtp_recipient`: the user here), from the sender its `Return-Path:` names.
//! As with an MDA, a run killed after the server's 250 and before the journal's `done` line
//! delivers that message again: at least once, never lost.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use postie_proto::BodyEncoder;

use super::{spool, Destination, Finished, Incoming, Intent};
use crate::error::FetchError;

const TIMEOUT: Duration = Duration::from_secs(120);

pub struct Lmtp {
    addr: String,
    recipient: String,
    spool_dir: PathBuf,
}

impl Lmtp {
    pub fn new(addr: &str, recipient: &str, spool_dir: &Path) -> Lmtp {
        Lmtp {
            addr: addr.to_owned(),
            recipient: recipient.to_owned(),
            spool_dir: spool_dir.to_owned(),
        }
    }
}

impl Destination for Lmtp {
    fn begin(&mut self) -> Result<Box<dyn Incoming>, FetchError> {
        Ok(Box::new(LmtpIncoming {
            spool: BufWriter::new(spool(&self.spool_dir)?),
            addr: self.addr.clone(),
            recipient: self.recipient.clone(),
        }))
    }

    fn recover(&mut self, _receipt: &str) -> Result<bool, FetchError> {
        Ok(false)
    }
}

struct LmtpIncoming {
    spool: BufWriter<File>,
    addr: String,
    recipient: String,
}

impl Write for LmtpIncoming {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.spool.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.spool.flush()
    }
}

/// Why an LMTP exchange failed, and whether retrying later may help (4xx).
struct Failure {
    reason: String,
    temporary: bool,
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Failure {
        Failure {
            reason: e.to_string(),
            temporary: true,
        }
    }
}

struct Peer {
    reader: BufReader<TcpStream>,
    writer: BufWriter<TcpStream>,
}

impl Peer {
    /// Reads a (possibly multi-line) reply; fails unless its code is 2xx or `accept`.
    fn expect(&mut self, accept: u16, step: &str) -> Result<(), Failure> {
        let mut text = String::new();
        loop {
            let mut line = Vec::new();
            (&mut self.reader).take(4096).read_until(b'\n', &mut line)?;
            if line.is_empty() {
                return Err(Failure {
                    reason: format!("the server closed the connection at {step}"),
                    temporary: true,
                });
            }
            let line = String::from_utf8_lossy(&line).trim_end().to_owned();
            let code: u16 = line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
            let last = line.as_bytes().get(3) != Some(&b'-');
            text.push_str(&line);
            text.push(' ');
            if last {
                if (200..300).contains(&code) || code == accept {
                    return Ok(());
                }
                return Err(Failure {
                    reason: format!("{step}: {}", text.trim_end()),
                    temporary: (400..500).contains(&code) || code == 0,
                });
            }
        }
    }

    fn send(&mut self, line: &str) -> Result<(), Failure> {
        self.writer.write_all(line.as_bytes())?;
        self.writer.write_all(b"\r\n")?;
        self.writer.flush()?;
        Ok(())
    }
}

/// One LMTP transaction for the spooled message.
fn deliver(addr: &str, recipient: &str, spool: &mut File) -> Result<(), Failure> {
    let sender = super::envelope_sender(spool)?.unwrap_or_default();
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(TIMEOUT))?;
    tcp.set_write_timeout(Some(TIMEOUT))?;
    let mut peer = Peer {
        reader: BufReader::new(tcp.try_clone()?),
        writer: BufWriter::new(tcp),
    };
    peer.expect(220, "greeting")?;
    peer.send("LHLO localhost")?;
    peer.expect(250, "LHLO")?;
    peer.send(&format!("MAIL FROM:<{sender}>"))?;
    peer.expect(250, "MAIL FROM")?;
    peer.send(&format!("RCPT TO:<{recipient}>"))?;
    peer.expect(250, "RCPT TO")?;
    peer.send("DATA")?;
    peer.expect(354, "DATA")?;
    let mut encoder = BodyEncoder::whole();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut out = Vec::with_capacity(70 * 1024);
    loop {
        let n = spool.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        out.clear();
        encoder.encode(&chunk[..n], &mut out);
        peer.writer.write_all(&out)?;
    }
    out.clear();
    encoder.finish(&mut out);
    peer.writer.write_all(&out)?;
    peer.writer.flush()?;
    // LMTP answers DATA once per recipient; there is one.
    peer.expect(250, "end of DATA")?;
    let _ = peer.send("QUIT");
    Ok(())
}

impl Incoming for LmtpIncoming {
    fn finish(self: Box<Self>, intent: Intent<'_>) -> Result<Finished, FetchError> {
        let destination = format!("lmtp:{}", self.addr);
        let mut spool = self
            .spool
            .into_inner()
            .map_err(|e| e.into_error())
            .and_then(|mut f| f.seek(SeekFrom::Start(0)).map(|_| f))
            .map_err(|e| FetchError::Delivery {
                destination: destination.clone(),
                reason: format!("cannot write the spool file: {e}"),
                temporary: false,
            })?;
        intent("lmtp")?;
        deliver(&self.addr, &self.recipient, &mut spool).map_err(|f| FetchError::Delivery {
            destination,
            reason: f.reason,
            temporary: f.temporary,
        })?;
        Ok(Finished::Published)
    }
}
