//! The two directions of a multi-line response body: the server's encoder (line endings made
//! CRLF, byte-stuffing, the terminating ".") and the client's decoder.
//!
//! The octet count a server announces is that of the message with CRLF line endings before
//! byte-stuffing: every bare LF counts two, and a message whose last byte is not LF gets a
//! final CRLF. [`BodyEncoder::crlf_size`] is that rule, and the encoder produces exactly it.

use std::mem::MaybeUninit;
use std::ops::Range;

/// The fixed copy size of RETR's encoder.
const BLOCK: usize = 64;

/// Copies `source[span]` to the start of `out`; returns the span's length. While a whole
/// block can be read from `source` and written to `out`, whole blocks are copied (a fixed
/// size compiles to a few vector moves), so up to a block's worth of bytes past the span may
/// be written too, for the caller to overwrite or leave out.
fn copy_span(source: &[u8], span: Range<usize>, out: &mut [MaybeUninit<u8>]) -> usize {
    let len = span.len();
    let mut done = 0;
    while done < len {
        let from = span.start + done;
        match (
            source.get(from..from + BLOCK),
            out.get_mut(done..done + BLOCK),
        ) {
            (Some(block), Some(slots)) => {
                slots.write_copy_of_slice(block);
                done += BLOCK;
            }
            _ => {
                out[done..len].write_copy_of_slice(&source[from..span.end]);
                done = len;
            }
        }
    }
    len
}

/// How far one pass of RETR's encoder got.
struct Progress {
    /// Bytes of the chunk encoded.
    copied: usize,
    /// Bytes written to the output; all of them initialized.
    written: usize,
    /// The whole chunk is encoded.
    finished: bool,
}

/// The LF bytes of a block of up to 64 bytes, as bits.
fn line_feed_mask(block: &[u8]) -> u64 {
    match <&[u8; 64]>::try_from(block) {
        Ok(full) => full_block_mask(full),
        Err(_) => scalar_mask(block),
    }
}

fn scalar_mask(block: &[u8]) -> u64 {
    block
        .iter()
        .enumerate()
        .fold(0u64, |mask, (i, &b)| mask | (u64::from(b == b'\n') << i))
}

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
fn full_block_mask(block: &[u8; 64]) -> u64 {
    use std::arch::x86_64::{_mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8};
    let mut mask = 0u64;
    for (i, part) in block.chunks_exact(16).enumerate() {
        // SAFETY: the build enables SSE2 (cfg above), and `part` is 16 readable bytes, all an
        // unaligned load needs.
        let hits = unsafe {
            let bytes = _mm_loadu_si128(part.as_ptr().cast());
            _mm_movemask_epi8(_mm_cmpeq_epi8(bytes, _mm_set1_epi8(b'\n' as i8)))
        };
        mask |= u64::from(hits as u16) << (16 * i);
    }
    mask
}

#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
fn full_block_mask(block: &[u8; 64]) -> u64 {
    scalar_mask(block)
}

/// Streams one message into a multi-line response body.
///
/// For TOP (the server session's own use) it stops after the header, the blank line and `n`
/// body lines.
#[derive(Debug)]
pub struct BodyEncoder {
    /// The next byte begins a new line.
    at_line_start: bool,
    /// The last byte of the current line was CR.
    last_was_cr: bool,
    /// Bytes in the current line, not counting its ending (saturating); counted for TOP only.
    line_len: u64,
    top: Option<TopLimit>,
    done: bool,
}

#[derive(Debug)]
struct TopLimit {
    in_header: bool,
    body_lines_left: u64,
}

impl BodyEncoder {
    /// An encoder for the whole message (RETR).
    pub fn whole() -> Self {
        Self::new(None)
    }

    /// An encoder for the header and the first `body_lines` lines of the body (TOP).
    pub(crate) fn top(body_lines: u64) -> Self {
        Self::new(Some(TopLimit {
            in_header: true,
            body_lines_left: body_lines,
        }))
    }

    fn new(top: Option<TopLimit>) -> Self {
        BodyEncoder {
            at_line_start: true,
            last_was_cr: false,
            line_len: 0,
            top,
            done: false,
        }
    }

    /// Whether everything the response needs has been encoded (TOP's limit reached).
    pub(crate) fn is_done(&self) -> bool {
        self.done
    }

    /// Encodes a chunk of the message into `out`.
    pub fn encode(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        if self.top.is_some() {
            self.encode_lines(chunk, out);
        } else {
            self.encode_whole(chunk, out);
        }
    }

    /// TOP's path: a line at a time, counting lines and watching for the end of the header.
    fn encode_lines(&mut self, mut chunk: &[u8], out: &mut Vec<u8>) {
        out.reserve(chunk.len() + chunk.len() / 32 + 4);
        while !chunk.is_empty() && !self.done {
            if self.at_line_start {
                if chunk[0] == b'.' {
                    out.push(b'.');
                }
                self.at_line_start = false;
            }
            match memchr::memchr(b'\n', chunk) {
                None => {
                    out.extend_from_slice(chunk);
                    self.last_was_cr = chunk.last() == Some(&b'\r');
                    self.line_len = self.line_len.saturating_add(chunk.len() as u64);
                    return;
                }
                Some(lf) => {
                    let text = &chunk[..lf];
                    out.extend_from_slice(text);
                    let ends_with_cr = text.last().map_or(self.last_was_cr, |&b| b == b'\r');
                    if !ends_with_cr {
                        out.push(b'\r');
                    }
                    out.push(b'\n');
                    let line_len = self.line_len.saturating_add(text.len() as u64);
                    let empty = line_len == 0 || (line_len == 1 && ends_with_cr);
                    self.end_line(empty);
                    chunk = &chunk[lf + 1..];
                }
            }
        }
    }

    /// RETR's path, the hot one: no line counting, and the text between line ends is copied
    /// in fixed blocks of [`BLOCK`] bytes, which compile to a few vector moves, instead of a
    /// copy sized to each line. A block may copy bytes past the end of the text; the next
    /// write covers them, and only the bytes written in order are kept.
    fn encode_whole(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        let Some(&last) = chunk.last() else {
            return;
        };
        if self.at_line_start && chunk[0] == b'.' {
            out.push(b'.');
        }
        // Room for a CR every 8 bytes; shorter lines grow the buffer as they come. Reserving
        // for the worst case (every byte doubled) would take buffers past the size glibc
        // serves from fresh mappings, page-faulted in again for every message.
        out.reserve(chunk.len() + chunk.len() / 8 + BLOCK);
        let mut from = 0;
        loop {
            let progress = self.encode_into(chunk, from, out.spare_capacity_mut());
            // SAFETY: encode_into initialized the first `written` bytes of the spare capacity.
            unsafe { out.set_len(out.len() + progress.written) };
            if progress.finished {
                break;
            }
            from = progress.copied;
            // Enough for the rest even if every byte doubles: the next pass finishes.
            out.reserve(2 * (chunk.len() - from) + BLOCK);
        }
        self.at_line_start = last == b'\n';
        self.last_was_cr = last == b'\r';
    }

    /// Encodes `chunk[from..]` (`from` just past an LF, or 0) into `spare` as far as it fits.
    fn encode_into(&self, chunk: &[u8], from: usize, spare: &mut [MaybeUninit<u8>]) -> Progress {
        let mut written = 0;
        let mut copied = from;
        // The LFs are found 64 bytes at a time: comparing a block compiles to a few vector
        // compares and a bit mask, cheaper per line than a search call.
        let first = from / 64;
        for (number, block) in chunk.chunks(64).enumerate().skip(first) {
            let base = number * 64;
            let mut mask = line_feed_mask(block);
            if number == first {
                mask &= u64::MAX << (from - base);
            }
            while mask != 0 {
                let lf = base + mask.trailing_zeros() as usize;
                mask &= mask - 1;
                // The line, a CR, the LF and a stuffed dot.
                if spare.len() - written < lf - copied + 3 {
                    return Progress {
                        copied,
                        written,
                        finished: false,
                    };
                }
                written += copy_span(chunk, copied..lf, &mut spare[written..]);
                let after_cr = if lf == 0 {
                    self.last_was_cr
                } else {
                    chunk[lf - 1] == b'\r'
                };
                if !after_cr {
                    spare[written].write(b'\r');
                    written += 1;
                }
                spare[written].write(b'\n');
                written += 1;
                copied = lf + 1;
                if chunk.get(copied) == Some(&b'.') {
                    spare[written].write(b'.');
                    written += 1;
                }
            }
        }
        let finished = spare.len() - written >= chunk.len() - copied;
        if finished {
            written += copy_span(chunk, copied..chunk.len(), &mut spare[written..]);
        }
        Progress {
            copied,
            written,
            finished,
        }
    }

    fn end_line(&mut self, empty: bool) {
        self.at_line_start = true;
        self.last_was_cr = false;
        self.line_len = 0;
        if let Some(top) = &mut self.top {
            if top.in_header {
                if empty {
                    top.in_header = false;
                    self.done = top.body_lines_left == 0;
                }
            } else {
                top.body_lines_left = top.body_lines_left.saturating_sub(1);
                self.done = top.body_lines_left == 0;
            }
        }
    }

    /// Ends the body: completes a last line that lacks its ending, then writes ".\r\n".
    pub fn finish(self, out: &mut Vec<u8>) {
        if !self.done && !self.at_line_start {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
    }

    /// The size a message of these bytes has in CRLF form, before byte-stuffing.
    pub fn crlf_size(message: &[u8]) -> u64 {
        let mut size = message.len() as u64;
        let mut previous = None;
        for &byte in message {
            if byte == b'\n' && previous != Some(b'\r') {
                size += 1;
            }
            previous = Some(byte);
        }
        if previous.is_some_and(|last| last != b'\n') {
            size += 2;
        }
        size
    }
}

/// One piece of a decoded multi-line response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultilineItem {
    /// One line of content, un-stuffed, with its CRLF.
    Line(Vec<u8>),
    /// The terminating "." line was read; bytes after it belong to the next response.
    End,
}

/// Reads the body of a multi-line response: strips byte-stuffing and finds the terminator.
/// Lines keep their CRLF (a bare LF is made CRLF) so the content is the message as sent.
#[derive(Debug, Default)]
pub struct MultilineDecoder {
    ended: bool,
}

impl MultilineDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes one received line (without its line ending, as [`crate::LineReader`] gives it).
    pub fn decode_line(&mut self, line: &[u8]) -> MultilineItem {
        if self.ended {
            return MultilineItem::End;
        }
        if line == b"." {
            self.ended = true;
            return MultilineItem::End;
        }
        let content = line.strip_prefix(b".").unwrap_or(line);
        let mut out = Vec::with_capacity(content.len() + 2);
        out.extend_from_slice(content);
        out.extend_from_slice(b"\r\n");
        MultilineItem::Line(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::line::{LineReader, ReadLine};
    use proptest::prelude::*;

    fn encode_all(message: &[u8], mut encoder: BodyEncoder) -> Vec<u8> {
        let mut out = Vec::new();
        encoder.encode(message, &mut out);
        encoder.finish(&mut out);
        out
    }

    /// Encodes `message` in chunks that end at `cuts` (clamped to the message, any order).
    fn encode_in_pieces(message: &[u8], cuts: Vec<usize>, mut encoder: BodyEncoder) -> Vec<u8> {
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(message.len())).collect();
        cuts.sort_unstable();
        let mut out = Vec::new();
        let mut last = 0;
        for cut in cuts.into_iter().chain([message.len()]) {
            encoder.encode(&message[last..cut], &mut out);
            last = cut;
        }
        encoder.finish(&mut out);
        out
    }

    fn decode_all(wire: &[u8]) -> Vec<u8> {
        let mut reader = LineReader::new();
        reader.feed(wire);
        let mut decoder = MultilineDecoder::new();
        let mut content = Vec::new();
        while let Some(ReadLine::Line(line)) = reader.next_line(usize::MAX) {
            match decoder.decode_line(&line) {
                MultilineItem::Line(bytes) => content.extend_from_slice(&bytes),
                MultilineItem::End => return content,
            }
        }
        panic!("no terminator in {wire:?}");
    }

    fn crlf_form(message: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, &byte) in message.iter().enumerate() {
            if byte == b'\n' && (i == 0 || message[i - 1] != b'\r') {
                out.push(b'\r');
            }
            out.push(byte);
        }
        if message.last().is_some_and(|&last| last != b'\n') {
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    /// The wire form by the book: the CRLF form, a dot before every line that starts with
    /// one, and the terminating line.
    fn stuffed(message: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for line in crlf_form(message).split_inclusive(|&b| b == b'\n') {
            if line.starts_with(b".") {
                out.push(b'.');
            }
            out.extend_from_slice(line);
        }
        out.extend_from_slice(b".\r\n");
        out
    }

    #[test]
    fn lines_longer_than_a_block_and_ends_at_block_edges() {
        for len in [0, 1, 62, 63, 64, 65, 127, 128, 129, 200] {
            let mut message = Vec::new();
            for start in [b'.', b'x'] {
                message.push(start);
                message.extend(std::iter::repeat_n(b'y', len));
                message.push(b'\n');
            }
            message.extend_from_slice(b"\r\n.\r\n");
            assert_eq!(
                encode_all(&message, BodyEncoder::whole()),
                stuffed(&message),
                "{len}"
            );
        }
    }

    #[test]
    fn empty_lines_grow_the_output_past_its_first_reserve() {
        for message in [vec![b'\n'; 5000], b"\n.".repeat(2500)] {
            let mut out = Vec::new();
            let mut encoder = BodyEncoder::whole();
            encoder.encode(&message, &mut out);
            encoder.finish(&mut out);
            assert_eq!(out, stuffed(&message));
        }
    }

    #[test]
    fn stuffing_and_line_endings() {
        assert_eq!(
            encode_all(b"a\n.b\r\n..c\nd", BodyEncoder::whole()),
            b"a\r\n..b\r\n...c\r\nd\r\n.\r\n"
        );
        assert_eq!(encode_all(b"", BodyEncoder::whole()), b".\r\n");
        assert_eq!(encode_all(b".\r\n", BodyEncoder::whole()), b"..\r\n.\r\n");
        assert_eq!(encode_all(b"x\r", BodyEncoder::whole()), b"x\r\r\n.\r\n");
    }

    #[test]
    fn top_stops_after_header_and_n_lines() {
        let message = b"Subject: x\r\nFrom: y\r\n\r\nline1\r\nline2\r\nline3\r\n";
        assert_eq!(
            encode_all(message, BodyEncoder::top(0)),
            b"Subject: x\r\nFrom: y\r\n\r\n.\r\n"
        );
        assert_eq!(
            encode_all(message, BodyEncoder::top(2)),
            b"Subject: x\r\nFrom: y\r\n\r\nline1\r\nline2\r\n.\r\n"
        );
        assert_eq!(
            encode_all(message, BodyEncoder::top(99)),
            encode_all(message, BodyEncoder::whole())
        );
        assert_eq!(
            encode_all(b"A: b\n\n.x\n", BodyEncoder::top(1)),
            b"A: b\r\n\r\n..x\r\n.\r\n"
        );
        assert_eq!(encode_all(b"A: b", BodyEncoder::top(0)), b"A: b\r\n.\r\n");
    }

    #[test]
    fn top_sees_a_blank_line_split_across_chunks() {
        let mut encoder = BodyEncoder::top(0);
        let mut out = Vec::new();
        for piece in [&b"A: b\r"[..], b"\n\r", b"\nbody\r\n"] {
            encoder.encode(piece, &mut out);
        }
        assert!(encoder.is_done());
        encoder.finish(&mut out);
        assert_eq!(out, b"A: b\r\n\r\n.\r\n");
    }

    proptest! {
        #[test]
        fn any_split_encodes_the_same(message in proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'.'), any::<u8>()], 0..400), cuts in proptest::collection::vec(0usize..400, 0..10), lines in proptest::option::of(0u64..5)) {
            let make = || lines.map_or_else(BodyEncoder::whole, BodyEncoder::top);
            let expected = encode_all(&message, make());
            prop_assert_eq!(encode_in_pieces(&message, cuts, make()), expected);
        }

        #[test]
        fn matches_the_wire_form_by_the_book(message in proptest::collection::vec(prop_oneof![8 => b'a'..=b'z', 1 => Just(b'\r'), 1 => Just(b'\n'), 1 => Just(b'.'), 1 => any::<u8>()], 0..3000), cuts in proptest::collection::vec(0usize..3000, 0..6)) {
            prop_assert_eq!(encode_in_pieces(&message, cuts, BodyEncoder::whole()), stuffed(&message));
        }

        #[test]
        fn round_trip_gives_the_crlf_form_and_its_size(message in proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'.'), any::<u8>()], 0..400)) {
            let wire = encode_all(&message, BodyEncoder::whole());
            let decoded = decode_all(&wire);
            let expected = crlf_form(&message);
            prop_assert_eq!(&decoded, &expected);
            prop_assert_eq!(BodyEncoder::crlf_size(&message), expected.len() as u64);
        }
    }
}
