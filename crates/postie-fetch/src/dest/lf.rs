//! CRLF to LF: POP3 sends CRLF, and Maildir, mbox and MDAs on Unix expect LF. A CR not
//! followed by LF is content and stays.

use std::io::{self, Write};

pub struct ToLf<W: Write> {
    inner: W,
    /// The last byte written to us was CR; whether it stays depends on the next byte.
    pending_cr: bool,
}

impl<W: Write> ToLf<W> {
    pub fn new(inner: W) -> Self {
        ToLf {
            inner,
            pending_cr: false,
        }
    }

    /// Writes a held-back final CR and gives the writer back.
    pub fn finish(mut self) -> io::Result<W> {
        if self.pending_cr {
            self.inner.write_all(b"\r")?;
        }
        Ok(self.inner)
    }
}

impl<W: Write> Write for ToLf<W> {
    fn write(&mut self, mut buf: &[u8]) -> io::Result<usize> {
        let len = buf.len();
        if len == 0 {
            return Ok(0);
        }
        if self.pending_cr {
            self.pending_cr = false;
            if buf[0] != b'\n' {
                self.inner.write_all(b"\r")?;
            }
        }
        while let Some(cr) = buf.iter().position(|&b| b == b'\r') {
            self.inner.write_all(&buf[..cr])?;
            match buf.get(cr + 1) {
                Some(b'\n') => buf = &buf[cr + 1..],
                Some(_) => {
                    self.inner.write_all(b"\r")?;
                    buf = &buf[cr + 1..];
                }
                None => {
                    self.pending_cr = true;
                    return Ok(len);
                }
            }
        }
        self.inner.write_all(buf)?;
        Ok(len)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_split_gives_lf_form(input in proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), any::<u8>()], 0..200), cut in 0usize..200) {
            let cut = cut.min(input.len());
            let mut writer = ToLf::new(Vec::new());
            writer.write_all(&input[..cut]).unwrap();
            writer.write_all(&input[cut..]).unwrap();
            let out = writer.finish().unwrap();
            let mut expected = Vec::new();
            let mut i = 0;
            while i < input.len() {
                if input[i] == b'\r' && input.get(i + 1) == Some(&b'\n') {
                    i += 1;
                    continue;
                }
                expected.push(input[i]);
                i += 1;
            }
            prop_assert_eq!(out, expected);
        }
    }
}
