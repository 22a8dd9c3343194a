//! Sending a stored file's octets, dot-stuffed at known offsets: to a plain TCP connection
//! without copying them through user space (`sendfile(2)` from the page cache to the socket),
//! to any other (TLS) by positioned reads written straight to the stream, with no encoder pass
//! over them.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::time::Duration;

use tokio::io::Interest;

use crate::Conn;

/// The most one `sendfile` call is asked for (Linux moves at most 0x7ffff000 octets a call).
const MAX_PER_CALL: u64 = 1 << 30;

/// The octets read and written at a time where the file is copied: as much as TLS puts in
/// four records.
const COPY_CHUNK: usize = 64 * 1024;

/// Why a file was not sent whole; the connection is unusable after any of them, since part of
/// the file may be out.
#[derive(Debug, thiserror::Error)]
pub enum SendFileError {
    #[error("the file ended after {sent} of {expected} octets: it was truncated while being sent")]
    ShortFile { sent: u64, expected: u64 },
    #[error("sending the file: {0}")]
    Io(io::Error),
    #[error("the peer took nothing for the whole limit")]
    TimedOut,
}

impl Conn {
    /// Whether [`send_file`](Self::send_file) sends without copying through user space:
    /// plain TCP and kernel TLS (rustls must encrypt in user space, and Unix and in-process
    /// streams are not worth it).
    pub fn sends_files_zero_copy(&self) -> bool {
        matches!(self, Conn::Tcp(_) | Conn::KernelTls(_))
    }

    /// Sends octets `0..len` of `file`, with a `.` written before the octet at each of the
    /// ascending `stuffing` offsets (the lines a POP3 body must dot-stuff): on plain TCP from
    /// the page cache straight to the socket, on other connections copied. A file that ends
    /// before `len` (truncated meanwhile) is [`SendFileError::ShortFile`]: the octets before
    /// it are out, so the caller must end the connection, never pretend the message ended. A
    /// peer that takes nothing for `limit` is gone, as for [`write_within`](crate::write_within).
    pub async fn send_file(
        &mut self,
        file: &File,
        len: u64,
        stuffing: &[u64],
        limit: Duration,
    ) -> Result<(), SendFileError> {
        let stream = match self {
            Conn::Tcp(stream) => stream,
            // The kernel encrypts what sendfile hands the socket.
            Conn::KernelTls(kernel) => kernel.tcp(),
            copied => return copied.copy_file(file, len, stuffing, limit).await,
        };
        let (socket, source) = (stream.as_raw_fd(), file.as_raw_fd());
        let mut sent: u64 = 0;
        let mut stuffing = stuffing.iter().copied().filter(|&at| at < len).peekable();
        while sent < len {
            match tokio::time::timeout(limit, stream.writable()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(SendFileError::Io(e)),
                Err(_) => return Err(SendFileError::TimedOut),
            }
            let outcome = match stuffing.peek() {
                Some(&at) if at == sent => stream
                    .try_io(Interest::WRITABLE, || send_dot(socket))
                    .map(|n| {
                        if n == 1 {
                            stuffing.next();
                        }
                        // The dot is not the file's: it moves nothing along the file.
                        None
                    }),
                next => {
                    let end = next.copied().unwrap_or(len);
                    let want = (end - sent).min(MAX_PER_CALL);
                    stream
                        .try_io(Interest::WRITABLE, || send_from(socket, source, sent, want))
                        .map(Some)
                }
            };
            match outcome {
                Ok(None) => {}
                Ok(Some(0)) => {
                    return Err(SendFileError::ShortFile {
                        sent,
                        expected: len,
                    })
                }
                Ok(Some(n)) => sent += n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(SendFileError::Io(e)),
            }
        }
        Ok(())
    }

    /// [`send_file`](Self::send_file) by positioned reads of at most [`COPY_CHUNK`] octets
    /// (from the page cache, on this thread, as message bodies are read), each written with
    /// its stuffing dots.
    async fn copy_file(
        &mut self,
        file: &File,
        len: u64,
        stuffing: &[u64],
        limit: Duration,
    ) -> Result<(), SendFileError> {
        let mut chunk = vec![0u8; COPY_CHUNK];
        // Only for pieces with a dot to splice in.
        let mut out = Vec::new();
        let mut stuffing = stuffing.iter().copied().filter(|&at| at < len).peekable();
        let mut sent: u64 = 0;
        while sent < len {
            let want = (len - sent).min(COPY_CHUNK as u64) as usize;
            let n = match file.read_at(&mut chunk[..want], sent) {
                Ok(0) => {
                    return Err(SendFileError::ShortFile {
                        sent,
                        expected: len,
                    })
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(SendFileError::Io(e)),
            };
            let end = sent + n as u64;
            if stuffing.peek().is_none_or(|&at| at >= end) {
                // Nothing to stuff here: the octets go out as read, without another copy.
                write_all_within(self, &chunk[..n], limit).await?;
            } else {
                let mut from = 0;
                while let Some(at) = stuffing.next_if(|&at| at < end) {
                    let split = (at - sent) as usize;
                    out.extend_from_slice(&chunk[from..split]);
                    out.push(b'.');
                    from = split;
                }
                out.extend_from_slice(&chunk[from..n]);
                write_all_within(self, &out, limit).await?;
                out.clear();
            }
            sent = end;
        }
        Ok(())
    }
}

/// Writes all of `octets` and flushes them (TLS seals its records), within `limit`.
async fn write_all_within(
    conn: &mut Conn,
    octets: &[u8],
    limit: Duration,
) -> Result<(), SendFileError> {
    use tokio::io::AsyncWriteExt;
    let write = async {
        conn.write_all(octets).await?;
        conn.flush().await
    };
    match tokio::time::timeout(limit, write).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(SendFileError::Io(e)),
        Err(_) => Err(SendFileError::TimedOut),
    }
}

/// One `.` to `socket`, marked as followed by more (`MSG_MORE`), so that the kernel sends it
/// with the file's octets after it rather than in a segment of its own.
#[allow(unsafe_code)]
fn send_dot(socket: i32) -> io::Result<u64> {
    // SAFETY: the descriptor is open for the duration of the call (the caller holds the
    // stream); the buffer is a static octet, valid for its length of 1.
    let n = unsafe {
        libc::send(
            socket,
            b".".as_ptr().cast(),
            1,
            libc::MSG_MORE | libc::MSG_NOSIGNAL,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as u64)
}

/// One `sendfile(2)` of at most `want` octets of `source` from `offset` to `socket`; the
/// file's own position is left alone. 0 when the file ends at `offset`.
#[allow(unsafe_code)]
fn send_from(socket: i32, source: i32, offset: u64, want: u64) -> io::Result<u64> {
    let mut at = libc::off_t::try_from(offset)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset past off_t"))?;
    let count = usize::try_from(want).unwrap_or(usize::MAX);
    // SAFETY: both descriptors are open for the duration of the call (the caller holds the
    // stream and the file); `at` is a valid off_t the kernel reads and updates; sendfile
    // touches no other memory of ours.
    let n = unsafe { libc::sendfile(socket, source, &mut at, count) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as u64)
}
