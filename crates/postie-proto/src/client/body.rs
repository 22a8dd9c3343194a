//! Un-stuffing a multi-line body that arrives in bounded pieces: whole lines go through the
//! shared [`MultilineDecoder`]; a line longer than one piece is passed through as it comes.

use crate::dotstuff::{MultilineDecoder, MultilineItem};
use crate::line::LinePiece;

#[derive(Debug, Default)]
pub(crate) struct BodyDecoder {
    lines: MultilineDecoder,
    /// Inside a line that arrived partly: its start (and any stuffing dot) is behind us.
    mid_line: bool,
}

impl BodyDecoder {
    /// Appends the content of `piece` to `out`; true when the terminating line was read.
    pub(crate) fn piece(&mut self, piece: LinePiece, out: &mut Vec<u8>) -> bool {
        match (piece, self.mid_line) {
            (LinePiece::End(line), false) => match self.lines.decode_line(&line) {
                MultilineItem::Line(content) => out.extend_from_slice(&content),
                MultilineItem::End => return true,
            },
            (LinePiece::End(rest), true) => {
                out.extend_from_slice(&rest);
                out.extend_from_slice(b"\r\n");
                self.mid_line = false;
            }
            // A part is never the terminator (that line is short), so a leading dot is stuffing.
            (LinePiece::Part(start), false) => {
                out.extend_from_slice(start.strip_prefix(b".").unwrap_or(&start));
                self.mid_line = true;
            }
            (LinePiece::Part(middle), true) => out.extend_from_slice(&middle),
        }
        false
    }
}
