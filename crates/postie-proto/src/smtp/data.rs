//! The message after DATA (RFC 5321 section 4.5.2): dot-unstuffing and the `<CRLF>.<CRLF>`
//! terminator, decoded as the bytes stream past, so no message is ever held whole.
//!
//! Lines are not bounded here: a body line may be of any length and hold any octet (NUL,
//! 8-bit, a bare CR); everything but the stuffing dots passes through unchanged. A line
//! holding only "." ends the data whether it ends in CRLF or, leniently, in a bare LF.

/// Where the decoder stands in the current line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The next byte begins a line.
    LineStart,
    /// Inside a line.
    Middle,
    /// A line began with ".": stuffing, or the terminator.
    Dot,
    /// A line began with ".\r".
    DotCr,
    /// The terminator was read.
    Ended,
}

/// Streams the data of one message from wire form to message bytes.
#[derive(Debug)]
pub struct DotDecoder {
    state: State,
}

impl Default for DotDecoder {
    fn default() -> Self {
        Self::new()
    }
}

/// What one call of [`DotDecoder::decode`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded {
    /// Input bytes used; bytes after the terminator are left for the next command.
    pub consumed: usize,
    /// The terminator was found.
    pub ended: bool,
}

impl DotDecoder {
    pub fn new() -> Self {
        DotDecoder {
            state: State::LineStart,
        }
    }

    /// Decodes as much of `input` as belongs to the message, appending the message bytes to
    /// `out`.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Decoded {
        let mut at = 0;
        while at < input.len() {
            match self.state {
                State::Ended => break,
                State::Middle => {
                    // The common case: copy up to and including the next LF in one go.
                    match memchr::memchr(b'\n', &input[at..]) {
                        Some(lf) => {
                            out.extend_from_slice(&input[at..at + lf + 1]);
                            at += lf + 1;
                            self.state = State::LineStart;
                        }
                        None => {
                            out.extend_from_slice(&input[at..]);
                            at = input.len();
                        }
                    }
                }
                State::LineStart => {
                    let byte = input[at];
                    at += 1;
                    if byte == b'.' {
                        self.state = State::Dot;
                    } else {
                        out.push(byte);
                        if byte != b'\n' {
                            self.state = State::Middle;
                        }
                    }
                }
                State::Dot => {
                    let byte = input[at];
                    at += 1;
                    match byte {
                        b'\r' => self.state = State::DotCr,
                        b'\n' => self.state = State::Ended,
                        // The leading dot was stuffing: drop it, keep the rest of the line.
                        _ => {
                            out.push(byte);
                            self.state = State::Middle;
                        }
                    }
                }
                State::DotCr => {
                    if input[at] == b'\n' {
                        at += 1;
                        self.state = State::Ended;
                    } else {
                        // ".\r" then more: a stuffed line whose text begins with a bare CR.
                        out.push(b'\r');
                        self.state = State::Middle;
                    }
                }
            }
        }
        Decoded {
            consumed: at,
            ended: self.state == State::Ended,
        }
    }
}

/// The wire form of message bytes: lines starting with "." get another, a message not ending
/// in CRLF gets one, then ".\r\n". The client side of [`DotDecoder`], used by tests and tools.
pub fn dot_stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 32 + 5);
    let mut at_line_start = true;
    for &byte in message {
        if at_line_start && byte == b'.' {
            out.push(b'.');
        }
        out.push(byte);
        at_line_start = byte == b'\n';
    }
    if !message.is_empty() && !message.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_all(wire: &[u8]) -> (Vec<u8>, Decoded) {
        let mut out = Vec::new();
        let decoded = DotDecoder::new().decode(wire, &mut out);
        (out, decoded)
    }

    #[test]
    fn unstuffs_and_stops_at_the_terminator() {
        let (body, d) = decode_all(b"a\r\n..b\r\n.c\r\n.\r\nQUIT\r\n");
        assert_eq!(body, b"a\r\n.b\r\nc\r\n");
        assert!(d.ended);
        assert_eq!(d.consumed, 15);
        let (body, d) = decode_all(b".\r\n");
        assert_eq!(body, b"");
        assert!(d.ended);
        let (body, d) = decode_all(b"x\n.\n");
        assert_eq!(body, b"x\n");
        assert!(d.ended);
    }

    #[test]
    fn odd_bytes_pass_through() {
        let (body, d) = decode_all(b"\0\xff\r.\r\n.\rx\r\n.\r\n");
        assert_eq!(body, b"\0\xff\r.\r\n\rx\r\n");
        assert!(d.ended);
    }

    proptest! {
        #[test]
        fn any_split_decodes_the_same(
            wire in proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'.'), any::<u8>()], 0..400),
            mut cuts in proptest::collection::vec(0usize..400, 0..10),
        ) {
            let (expected, whole) = decode_all(&wire);
            cuts.sort_unstable();
            let mut decoder = DotDecoder::new();
            let mut out = Vec::new();
            let mut at = 0;
            let mut consumed = 0;
            let mut ended = false;
            for cut in cuts.into_iter().map(|c| c.min(wire.len())).chain([wire.len()]) {
                if cut < at || ended {
                    continue;
                }
                let d = decoder.decode(&wire[at..cut], &mut out);
                consumed += d.consumed;
                ended = d.ended;
                at = cut;
            }
            prop_assert_eq!(out, expected);
            prop_assert_eq!(ended, whole.ended);
            if ended {
                prop_assert_eq!(consumed, whole.consumed);
            }
        }

        #[test]
        fn stuffing_round_trips(
            message in proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'.'), any::<u8>()], 0..400),
        ) {
            let wire = dot_stuff(&message);
            let (body, d) = decode_all(&wire);
            prop_assert!(d.ended);
            prop_assert_eq!(d.consumed, wire.len());
            let mut expected = message.clone();
            if !expected.is_empty() && !expected.ends_with(b"\r\n") {
                expected.extend_from_slice(b"\r\n");
            }
            prop_assert_eq!(body, expected);
        }
    }
}
