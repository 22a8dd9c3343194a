//! The one rule for the size a POP3 client is told a message has.
//!
//! RETR sends a message with CRLF line endings, so the size in LIST/STAT is the size of that
//! CRLF form, before byte-stuffing:
//!
//! * a CRLF pair counts as 2 octets, and so does a bare LF (it is sent as CRLF);
//! * every other octet, a bare CR included, counts as 1 (it is sent as is);
//! * a non-empty message whose last octet is not LF gets a final CRLF (2 octets), so that the
//!   terminating `.` starts a line; an empty message stays empty (0 octets).
//!
//! [`CrlfCounter`] computes that size while a message streams past (delivery, sizing a file
//! whose name has no `,W=`). The sending side, postie-proto's `BodyEncoder`, follows the same
//! rule; any change here must be made there too.
//!
//! Dovecot's `W=` differs in one case: it leaves out the final CRLF of a message that does not
//! end with a newline (Dovecot 2.3 then announces 2 octets fewer than it sends). A `W=` written
//! by Dovecot is still trusted as is: checking it would mean reading every body at login.

/// Counts the octets of a message and of its CRLF form, fed in pieces of any size, and notes
/// what RETR needs to know to send it as stored: where the lines that start with `.` are.
#[derive(Debug, Clone)]
pub struct CrlfCounter {
    raw: u64,
    bare_lf: u64,
    /// The lines that start with `.` (the encoder would stuff them).
    dot_lines: DotLines,
    // The last octet seen: after a CR, a LF opening the next piece is not bare; at the end, it
    // decides the final CRLF.
    last: Option<u8>,
}

impl Default for CrlfCounter {
    fn default() -> Self {
        Self {
            raw: 0,
            bare_lf: 0,
            dot_lines: DotLines::None,
            last: None,
        }
    }
}

impl CrlfCounter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Accounts for the next piece of the message.
    pub fn update(&mut self, piece: &[u8]) {
        let mut prev = self.last;
        for (at, &b) in (self.raw..).zip(piece) {
            if b == b'\n' && prev != Some(b'\r') {
                self.bare_lf += 1;
            }
            // A line starts at the message's first octet and after every LF.
            if b == b'.' && matches!(prev, None | Some(b'\n')) {
                self.dot_lines.add(at);
            }
            prev = Some(b);
        }
        self.raw += piece.len() as u64;
        self.last = prev;
    }

    /// Octets fed so far: the size of the message as stored.
    pub fn raw_size(&self) -> u64 {
        self.raw
    }

    /// The size of the message as POP3 sends it, before byte-stuffing (see the module rule).
    pub fn crlf_size(&self) -> u64 {
        let final_crlf = match self.last {
            Some(b'\n') | None => 0,
            Some(_) => 2,
        };
        self.raw + self.bare_lf + final_crlf
    }

    /// What the message fed so far is, for the name it is stored under.
    pub fn form(&self) -> StoredForm {
        StoredForm {
            crlf: self.bare_lf == 0 && matches!(self.last, Some(b'\n') | None),
            dot_lines: self.dot_lines,
        }
    }
}

/// How many dot-line offsets a delivery records: enough for nearly all mail (a line opening
/// with `.` is rare outside quoted text and diffs), few enough for a file name.
pub const MAX_RECORDED_DOT_LINES: usize = 8;

/// The lines of a stored message that start with `.`, as delivery recorded them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DotLines {
    /// No line starts with `.`.
    None,
    /// The offsets of the `.` opening each such line, ascending.
    At(DotOffsets),
    /// Some line does, but where was not recorded (too many of them, or a name from before
    /// offsets were recorded).
    Unrecorded,
}

impl DotLines {
    /// Notes a line starting with `.` at offset `at`, after every earlier one.
    fn add(&mut self, at: u64) {
        let recorded = match self {
            DotLines::None => {
                *self = DotLines::At(DotOffsets::one(at));
                true
            }
            DotLines::At(offsets) => offsets.push(at),
            DotLines::Unrecorded => true,
        };
        if !recorded {
            *self = DotLines::Unrecorded;
        }
    }

    /// The recorded offsets: none for [`DotLines::None`], `None` when they are unknown.
    pub fn offsets(&self) -> Option<&[u64]> {
        match self {
            DotLines::None => Some(&[]),
            DotLines::At(offsets) => Some(offsets.as_slice()),
            DotLines::Unrecorded => None,
        }
    }
}

/// At most [`MAX_RECORDED_DOT_LINES`] ascending offsets, kept without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DotOffsets {
    len: usize,
    at: [u64; MAX_RECORDED_DOT_LINES],
}

impl DotOffsets {
    fn one(at: u64) -> Self {
        let mut offsets = DotOffsets {
            len: 1,
            at: [0; MAX_RECORDED_DOT_LINES],
        };
        offsets.at[0] = at;
        offsets
    }

    /// Ascending offsets, as a parser reads them; `None` for none, too many, or out of order.
    pub fn from_ascending(offsets: impl IntoIterator<Item = u64>) -> Option<Self> {
        let mut offsets = offsets.into_iter();
        let mut parsed = DotOffsets::one(offsets.next()?);
        for at in offsets {
            if !parsed.push(at) {
                return None;
            }
        }
        Some(parsed)
    }

    /// Adds `at` after the others; false when full or when `at` is not past the last one.
    fn push(&mut self, at: u64) -> bool {
        if self.len == MAX_RECORDED_DOT_LINES || self.at[self.len - 1] >= at {
            return false;
        }
        self.at[self.len] = at;
        self.len += 1;
        true
    }

    pub fn as_slice(&self) -> &[u64] {
        &self.at[..self.len]
    }
}

/// What a stored message's octets are, recorded at delivery so that RETR never scans a body to
/// learn it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredForm {
    /// Every LF is preceded by CR and the message ends with CRLF (or is empty): its octets
    /// are its CRLF form, and its size is its CRLF size.
    pub crlf: bool,
    /// The lines that start with `.`, which RETR must stuff.
    pub dot_lines: DotLines,
}

impl StoredForm {
    /// Where RETR inserts a `.` when it sends the octets as stored, or `None` when it cannot
    /// send them as stored: they are not CRLF throughout, or where to stuff is unknown. With
    /// those insertions, the octets are exactly what RETR sends between its status line and
    /// the terminating `.`.
    pub fn stuffing_as_stored(&self) -> Option<&[u64]> {
        self.dot_lines.offsets().filter(|_| self.crlf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The rule written the obvious way, on a whole buffer.
    fn reference(message: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, &b) in message.iter().enumerate() {
            if b == b'\n' && (i == 0 || message[i - 1] != b'\r') {
                out.push(b'\r');
            }
            out.push(b);
        }
        if !out.is_empty() && !out.ends_with(b"\n") {
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    fn count_in_pieces(message: &[u8], cuts: &[usize]) -> CrlfCounter {
        let mut counter = CrlfCounter::new();
        let mut at = 0;
        for &cut in cuts {
            let cut = cut.min(message.len()).max(at);
            counter.update(&message[at..cut]);
            at = cut;
        }
        counter.update(&message[at..]);
        counter
    }

    #[test]
    fn known_sizes() {
        let cases: &[(&[u8], u64)] = &[
            (b"", 0),
            (b"a\n", 3),
            (b"a\r\n", 3),
            (b"a", 3),
            (b"a\r", 4),
            (b"\n\n", 4),
            (b"a\r\nb\nc", 9),
            (b"\0\xff\n", 4),
        ];
        for &(message, size) in cases {
            let mut counter = CrlfCounter::new();
            counter.update(message);
            assert_eq!(counter.crlf_size(), size, "{message:?}");
            assert_eq!(counter.raw_size(), message.len() as u64);
        }
    }

    #[test]
    fn cr_and_lf_split_across_pieces() {
        let counter = count_in_pieces(b"a\r\nb", &[2]);
        assert_eq!(counter.crlf_size(), 6);
    }

    proptest! {
        #[test]
        fn counter_matches_reference(
            message in proptest::collection::vec(
                prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'.'), any::<u8>()], 0..300),
            mut cuts in proptest::collection::vec(0usize..300, 0..8),
        ) {
            cuts.sort_unstable();
            let counter = count_in_pieces(&message, &cuts);
            prop_assert_eq!(counter.crlf_size(), reference(&message).len() as u64);
            prop_assert_eq!(counter.raw_size(), message.len() as u64);
            // The wire form is the message itself with a `.` at each recorded offset.
            let dots = dot_line_offsets(&message);
            let form = counter.form();
            match form.stuffing_as_stored() {
                Some(offsets) => {
                    prop_assert_eq!(reference(&message), message.clone());
                    prop_assert_eq!(offsets, &dots[..]);
                }
                None => prop_assert!(
                    reference(&message) != message || dots.len() > MAX_RECORDED_DOT_LINES
                ),
            }
        }
    }

    /// The offsets of the lines of `message` that start with `.`.
    fn dot_line_offsets(message: &[u8]) -> Vec<u64> {
        (0..message.len())
            .filter(|&i| message[i] == b'.' && (i == 0 || message[i - 1] == b'\n'))
            .map(|i| i as u64)
            .collect()
    }

    #[test]
    fn forms() {
        let form = |message: &[u8]| {
            let mut counter = CrlfCounter::new();
            counter.update(message);
            counter.form()
        };
        let empty: &[u64] = &[];
        assert_eq!(form(b"").stuffing_as_stored(), Some(empty));
        assert_eq!(form(b"a\r\nb\r\n").stuffing_as_stored(), Some(empty));
        assert_eq!(form(b"a\r\n.b\r\n").stuffing_as_stored(), Some(&[3][..]));
        assert_eq!(form(b".a\r\n").stuffing_as_stored(), Some(&[0][..]));
        assert_eq!(form(b"a\nb\r\n").stuffing_as_stored(), None);
        assert_eq!(form(b"a\r\nb").stuffing_as_stored(), None);
        assert_eq!(form(b"a.\r\nb\r\n").dot_lines, DotLines::None);
        let mut split = CrlfCounter::new();
        split.update(b"a\r\n");
        split.update(b".b\r\n");
        assert_eq!(split.form().stuffing_as_stored(), Some(&[3][..]));
        let many = b".\r\n".repeat(MAX_RECORDED_DOT_LINES + 1);
        assert_eq!(form(&many).dot_lines, DotLines::Unrecorded);
        assert_eq!(
            form(&many[3..]).stuffing_as_stored().map(<[u64]>::len),
            Some(MAX_RECORDED_DOT_LINES)
        );
    }
}
