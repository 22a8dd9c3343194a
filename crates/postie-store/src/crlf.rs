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
/// what RETR needs to know to send it as stored: whether any line starts with `.`.
#[derive(Debug, Clone, Default)]
pub struct CrlfCounter {
    raw: u64,
    bare_lf: u64,
    /// A line starts with `.` (the encoder would stuff it).
    dot_line: bool,
    // The last octet seen: after a CR, a LF opening the next piece is not bare; at the end, it
    // decides the final CRLF.
    last: Option<u8>,
}

impl CrlfCounter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Accounts for the next piece of the message.
    pub fn update(&mut self, piece: &[u8]) {
        let mut prev = self.last;
        for &b in piece {
            if b == b'\n' && prev != Some(b'\r') {
                self.bare_lf += 1;
            }
            // A line starts at the message's first octet and after every LF.
            if b == b'.' && matches!(prev, None | Some(b'\n')) {
                self.dot_line = true;
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
            dot_lines: self.dot_line,
        }
    }
}

/// What a stored message's octets are, recorded at delivery so that RETR never scans a body to
/// learn it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredForm {
    /// Every LF is preceded by CR and the message ends with CRLF (or is empty): its octets
    /// are its CRLF form, and its size is its CRLF size.
    pub crlf: bool,
    /// Some line starts with `.`, which RETR must stuff.
    pub dot_lines: bool,
}

impl StoredForm {
    /// Whether the octets as stored are exactly what RETR sends between its status line and
    /// the terminating `.`: CRLF throughout, nothing to stuff.
    pub fn is_wire_form(self) -> bool {
        self.crlf && !self.dot_lines
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
            // The wire form is the message itself, unstuffed: what RETR may send as stored.
            let wire = reference(&message) == message && !stuffing_needed(&message);
            prop_assert_eq!(counter.form().is_wire_form(), wire);
        }
    }

    /// Whether some line of `message` starts with `.`.
    fn stuffing_needed(message: &[u8]) -> bool {
        message.first() == Some(&b'.') || message.windows(2).any(|w| w == b"\n.")
    }

    #[test]
    fn forms() {
        let form = |message: &[u8]| {
            let mut counter = CrlfCounter::new();
            counter.update(message);
            counter.form()
        };
        assert!(form(b"").is_wire_form());
        assert!(form(b"a\r\nb\r\n").is_wire_form());
        assert!(!form(b"a\r\n.b\r\n").is_wire_form());
        assert!(form(b"a\r\n.b\r\n").crlf);
        assert!(form(b".a\r\n").dot_lines);
        assert!(!form(b"a\nb\r\n").crlf);
        assert!(!form(b"a\r\nb").crlf);
        assert!(!form(b"a.\r\nb\r\n").dot_lines);
        let mut split = CrlfCounter::new();
        split.update(b"a\r\n");
        split.update(b".b\r\n");
        assert!(split.form().dot_lines);
    }
}
