//! A message in a file (`postie fetch --test-rules FILE.eml`), read as the rules would see
//! it on a server: its header, and its size as POP3 counts it (CRLF line endings), counted
//! while the file streams by, never held whole.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::error::{FetchError, LocalContext};
use crate::header::HeaderFields;
use crate::subject::HeaderCapture;

/// The header and the POP3 size of the message in `path`.
pub fn read(path: &Path) -> Result<(HeaderFields, u64), FetchError> {
    let mut file = File::open(path).local("open", path)?;
    let mut header = HeaderCapture::default();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    let mut last = b'\n';
    loop {
        let n = file.read(&mut buf).local("read", path)?;
        if n == 0 {
            break;
        }
        let chunk = &buf[..n];
        header.push(chunk);
        let mut previous = last;
        for &b in chunk {
            if b == b'\n' && previous != b'\r' {
                size += 1;
            }
            previous = b;
        }
        size += n as u64;
        last = chunk[n - 1];
    }
    if last != b'\n' && size > 0 {
        // A server ends the last line for the message.
        size += 2;
    }
    Ok((HeaderFields::parse(header.header()), size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_crlf_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.eml");
        std::fs::write(&path, b"Subject: hi\nX-A: 1\r\n\nbody\nlast").unwrap();
        let (header, size) = read(&path).unwrap();
        assert_eq!(header.values("subject").next(), Some(&b"hi"[..]));
        assert_eq!(
            size,
            "Subject: hi\r\nX-A: 1\r\n\r\nbody\r\nlast\r\n".len() as u64
        );
        assert!(read(&dir.path().join("missing")).is_err());
    }
}
