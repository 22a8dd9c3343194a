//! Splitting an input byte stream into lines, with a bound on their length.

/// What [`LineReader::next_line`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadLine {
    /// A complete line, without its line ending (CRLF, or a bare LF from lenient peers).
    Line(Vec<u8>),
    /// A line longer than the limit. Its bytes are dropped up to and including its line ending,
    /// so memory stays bounded whatever the peer sends.
    TooLong,
}

/// What [`LineReader::next_piece`] found: lines of any length, handed out in bounded pieces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinePiece {
    /// The end of a line (all of it, or the rest after [`LinePiece::Part`]s), without its ending.
    End(Vec<u8>),
    /// The next bytes of a line whose end has not arrived yet; more follow.
    Part(Vec<u8>),
}

/// Buffers input and yields lines. Holds at most `limit` bytes of an unfinished line.
#[derive(Debug, Default)]
pub struct LineReader {
    buffer: Vec<u8>,
    /// Bytes of `buffer` already handed out as lines.
    consumed: usize,
    /// Dropping the rest of an over-long line.
    discarding: bool,
    /// An over-long line was found and not yet reported.
    overflow_pending: bool,
}

impl LineReader {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds input bytes.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.compact();
        self.buffer.extend_from_slice(bytes);
    }

    /// Drops all buffered input (after STLS, bytes sent before the handshake must not count).
    pub fn clear(&mut self) {
        self.buffer.clear();
        self.consumed = 0;
        self.discarding = false;
        self.overflow_pending = false;
    }

    /// Whether unread bytes are buffered.
    pub fn has_pending(&self) -> bool {
        self.consumed < self.buffer.len() || self.overflow_pending
    }

    /// Whether the unread input begins with `prefix`, ASCII case ignored (false while fewer
    /// bytes than the prefix are buffered, or while an over-long line is being dropped).
    pub fn starts_with_ignore_case(&self, prefix: &[u8]) -> bool {
        !self.discarding
            && self.buffer[self.consumed..]
                .get(..prefix.len())
                .is_some_and(|start| start.eq_ignore_ascii_case(prefix))
    }

    /// The next line, if a whole one (or an over-long one) is buffered. `limit` counts the
    /// line ending too, as RFC 2449 counts command lines.
    pub fn next_line(&mut self, limit: usize) -> Option<ReadLine> {
        loop {
            if self.overflow_pending && !self.discarding {
                self.overflow_pending = false;
                return Some(ReadLine::TooLong);
            }
            let unread = &self.buffer[self.consumed..];
            match memchr::memchr(b'\n', unread) {
                Some(lf) => {
                    let start = self.consumed;
                    self.consumed += lf + 1;
                    if self.discarding {
                        self.discarding = false;
                        continue;
                    }
                    if lf + 1 > limit {
                        return Some(ReadLine::TooLong);
                    }
                    let mut line = &self.buffer[start..start + lf];
                    if line.last() == Some(&b'\r') {
                        line = &line[..line.len() - 1];
                    }
                    return Some(ReadLine::Line(line.to_vec()));
                }
                None => {
                    if unread.len() >= limit && !self.discarding {
                        self.discarding = true;
                        self.overflow_pending = true;
                    }
                    if self.discarding {
                        self.consumed = self.buffer.len();
                        self.compact();
                        if self.overflow_pending {
                            self.overflow_pending = false;
                            return Some(ReadLine::TooLong);
                        }
                    }
                    return None;
                }
            }
        }
    }

    /// The buffered bytes not read yet, for input that is not made of lines (an SMTP message
    /// body, a BDAT chunk). Read them with [`Self::advance`].
    pub(crate) fn unread(&self) -> &[u8] {
        &self.buffer[self.consumed..]
    }

    /// Marks `n` bytes of [`Self::unread`] as read.
    pub(crate) fn advance(&mut self, n: usize) {
        self.consumed = (self.consumed + n).min(self.buffer.len());
    }

    /// The next piece of input for a stream whose lines may be longer than any limit (a message
    /// body as a client receives it): a whole line, or the first `max` bytes (at least 2) of
    /// a line longer than that, so memory stays bounded without dropping content. A CR that may be
    /// the first half of a CRLF is held back until the next byte shows.
    pub fn next_piece(&mut self, max: usize) -> Option<LinePiece> {
        let max = max.max(2);
        let unread = &self.buffer[self.consumed..];
        // One byte past `max`: a short line such as ".\r\n" is always seen whole, never as a
        // part, so a body's terminator cannot be mistaken for a stuffed line.
        if let Some(lf) = unread.iter().take(max + 1).position(|&b| b == b'\n') {
            let mut line = &unread[..lf];
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            let piece = LinePiece::End(line.to_vec());
            self.consumed += lf + 1;
            return Some(piece);
        }
        if unread.len() <= max {
            return None;
        }
        let mut take = max;
        if unread[take - 1] == b'\r' {
            take -= 1;
        }
        let piece = LinePiece::Part(unread[..take].to_vec());
        self.consumed += take;
        Some(piece)
    }

    fn compact(&mut self) {
        if self.consumed > 0 {
            self.buffer.drain(..self.consumed);
            self.consumed = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn all_lines(reader: &mut LineReader, limit: usize) -> Vec<ReadLine> {
        std::iter::from_fn(|| reader.next_line(limit)).collect()
    }

    #[test]
    fn splits_crlf_and_bare_lf() {
        let mut reader = LineReader::new();
        reader.feed(b"USER a\r\nPASS b\nNO");
        assert_eq!(
            all_lines(&mut reader, 255),
            vec![
                ReadLine::Line(b"USER a".to_vec()),
                ReadLine::Line(b"PASS b".to_vec())
            ]
        );
        reader.feed(b"OP\r\n");
        assert_eq!(
            reader.next_line(255),
            Some(ReadLine::Line(b"NOOP".to_vec()))
        );
        assert_eq!(reader.next_line(255), None);
    }

    #[test]
    fn over_long_line_is_reported_once_and_dropped() {
        let mut reader = LineReader::new();
        reader.feed(&[b'x'; 300]);
        assert_eq!(reader.next_line(255), Some(ReadLine::TooLong));
        assert_eq!(reader.next_line(255), None);
        reader.feed(&[b'y'; 1 << 20]);
        assert_eq!(reader.next_line(255), None);
        assert!(reader.buffer.len() < 256, "memory stays bounded");
        reader.feed(b"tail\r\nNOOP\r\n");
        assert_eq!(
            reader.next_line(255),
            Some(ReadLine::Line(b"NOOP".to_vec()))
        );
    }

    #[test]
    fn limit_counts_the_line_ending() {
        let mut reader = LineReader::new();
        let mut exact = vec![b'a'; 253];
        exact.extend_from_slice(b"\r\n");
        reader.feed(&exact);
        assert!(matches!(reader.next_line(255), Some(ReadLine::Line(l)) if l.len() == 253));
        let mut over = vec![b'a'; 254];
        over.extend_from_slice(b"\r\n");
        reader.feed(&over);
        assert_eq!(reader.next_line(255), Some(ReadLine::TooLong));
    }

    fn all_pieces(reader: &mut LineReader, max: usize) -> Vec<LinePiece> {
        std::iter::from_fn(|| reader.next_piece(max)).collect()
    }

    #[test]
    fn pieces_bound_long_lines_and_keep_every_byte() {
        let mut reader = LineReader::new();
        reader.feed(b"abcdef\r\nxy\r");
        assert_eq!(
            all_pieces(&mut reader, 4),
            vec![
                LinePiece::Part(b"abcd".to_vec()),
                LinePiece::End(b"ef".to_vec())
            ]
        );
        reader.feed(b"\nabc\rd\r");
        assert_eq!(
            all_pieces(&mut reader, 4),
            vec![
                LinePiece::End(b"xy".to_vec()),
                LinePiece::Part(b"abc".to_vec())
            ]
        );
        reader.feed(b"\n.\r\n");
        assert_eq!(
            all_pieces(&mut reader, 2),
            vec![
                LinePiece::Part(b"\rd".to_vec()),
                LinePiece::End(Vec::new()),
                LinePiece::End(b".".to_vec())
            ]
        );
    }

    proptest! {
        #[test]
        fn pieces_rebuild_the_lines(input in proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), any::<u8>()], 0..400), max in 2usize..20) {
            let mut whole = LineReader::new();
            whole.feed(&input);
            let expected = all_lines(&mut whole, usize::MAX);
            let mut pieces = LineReader::new();
            pieces.feed(&input);
            let mut lines = Vec::new();
            let mut current = Vec::new();
            for piece in all_pieces(&mut pieces, max) {
                match piece {
                    LinePiece::Part(bytes) => {
                        prop_assert!(bytes.len() <= max);
                        current.extend(bytes);
                    }
                    LinePiece::End(bytes) => {
                        current.extend(bytes);
                        lines.push(ReadLine::Line(std::mem::take(&mut current)));
                    }
                }
            }
            prop_assert_eq!(lines, expected);
        }

        #[test]
        fn any_split_gives_the_same_lines(input in proptest::collection::vec(any::<u8>(), 0..600), cuts in proptest::collection::vec(0usize..600, 0..20)) {
            let mut whole = LineReader::new();
            whole.feed(&input);
            let expected = all_lines(&mut whole, 64);

            let mut pieces = LineReader::new();
            let mut got = Vec::new();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(input.len())).collect();
            cuts.sort_unstable();
            let mut last = 0;
            for cut in cuts.into_iter().chain([input.len()]) {
                pieces.feed(&input[last..cut]);
                got.extend(all_lines(&mut pieces, 64));
                last = cut;
            }
            prop_assert_eq!(got, expected);
        }
    }
}
