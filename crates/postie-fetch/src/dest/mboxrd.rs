//! mboxrd quoting: a line that starts with any number of '>' followed by "From " gets one
//! more '>', so every From_ line inside a message stays content and the quoting can be undone
//! exactly (mutt, procmail, Python's mailbox read this form).

use std::io::{self, Write};

pub struct MboxrdWriter<W: Write> {
    inner: W,
    at_line_start: bool,
    /// The start of the current line while it may still turn out to be `>*From `.
    prefix: Vec<u8>,
    /// The last byte written through, to end the message with a newline.
    last: Option<u8>,
}

impl<W: Write> MboxrdWriter<W> {
    pub fn new(inner: W) -> Self {
        MboxrdWriter {
            inner,
            at_line_start: true,
            prefix: Vec::new(),
            last: None,
        }
    }

    /// Ends the message: its last line gets a newline, then the blank separator line.
    pub fn finish(mut self) -> io::Result<W> {
        let prefix = std::mem::take(&mut self.prefix);
        self.emit(&prefix)?;
        if self.last.is_some_and(|b| b != b'\n') {
            self.inner.write_all(b"\n")?;
        }
        self.inner.write_all(b"\n")?;
        Ok(self.inner)
    }

    fn emit(&mut self, bytes: &[u8]) -> io::Result<()> {
        if let Some(&last) = bytes.last() {
            self.last = Some(last);
        }
        self.inner.write_all(bytes)
    }

    fn prefix_state(&self) -> Prefix {
        let quotes = self.prefix.iter().take_while(|&&b| b == b'>').count();
        let rest = &self.prefix[quotes..];
        if rest.len() >= 5 {
            if rest.starts_with(b"From ") {
                Prefix::Quote
            } else {
                Prefix::Plain
            }
        } else if b"From "[..rest.len()] == *rest {
            Prefix::Undecided
        } else {
            Prefix::Plain
        }
    }
}

enum Prefix {
    Undecided,
    Quote,
    Plain,
}

impl<W: Write> Write for MboxrdWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut rest = buf;
        while !rest.is_empty() {
            if self.at_line_start {
                let byte = rest[0];
                rest = &rest[1..];
                self.prefix.push(byte);
                let decided = match self.prefix_state() {
                    Prefix::Undecided if byte != b'\n' => continue,
                    Prefix::Quote => Some(b">"),
                    Prefix::Undecided | Prefix::Plain => None,
                };
                if let Some(quote) = decided {
                    self.inner.write_all(quote)?;
                }
                let prefix = std::mem::take(&mut self.prefix);
                self.emit(&prefix)?;
                self.at_line_start = byte == b'\n';
                continue;
            }
            match rest.iter().position(|&b| b == b'\n') {
                Some(lf) => {
                    self.emit(&rest[..=lf])?;
                    rest = &rest[lf + 1..];
                    self.at_line_start = true;
                }
                None => {
                    self.emit(rest)?;
                    rest = &[];
                }
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn quote(input: &[u8], cuts: &[usize]) -> Vec<u8> {
        let mut writer = MboxrdWriter::new(Vec::new());
        let mut at = 0;
        for &cut in cuts {
            let cut = cut.clamp(at, input.len());
            writer.write_all(&input[at..cut]).unwrap();
            at = cut;
        }
        writer.write_all(&input[at..]).unwrap();
        writer.finish().unwrap()
    }

    #[test]
    fn quoting() {
        assert_eq!(
            quote(b"Subject: x\n\nFrom here\n>From there\nFrom\nFro\n", &[]),
            b"Subject: x\n\n>From here\n>>From there\nFrom\nFro\n\n"
        );
        assert_eq!(quote(b"no newline", &[]), b"no newline\n\n");
        assert_eq!(quote(b">>From x", &[1, 2, 4]), b">>>From x\n\n");
    }

    proptest! {
        #[test]
        fn any_split_quotes_the_same(input in proptest::collection::vec(prop_oneof![Just(b'>'), Just(b'F'), Just(b'\n'), Just(b' '), any::<u8>()], 0..200), cuts in proptest::collection::vec(0usize..200, 0..5)) {
            let mut sorted = cuts.clone();
            sorted.sort_unstable();
            prop_assert_eq!(quote(&input, &sorted), quote(&input, &[]));
        }
    }
}
