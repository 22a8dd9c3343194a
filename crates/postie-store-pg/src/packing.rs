//! Chunks compressed by the front end before they go to the database (LZ4 block format) and
//! restored when read: mail text and headers shrink several times, so the database, which
//! every front end shares, stores, reads and sends that much less. A chunk that does not
//! shrink by an eighth (images, archives, encrypted mail) is stored as it is.

use std::io;

use crate::deliver::CHUNK;

/// A chunk as stored: its octets, and its length before compression when compressed.
pub(crate) struct Packed {
    pub data: Vec<u8>,
    pub packed_from: Option<i32>,
}

impl Packed {
    /// `chunk` compressed when that saves enough, as it is otherwise.
    pub fn new(chunk: Vec<u8>) -> Self {
        let compressed = lz4_flex::block::compress(&chunk);
        if compressed.len() < chunk.len() - chunk.len() / 8 {
            let packed_from = i32::try_from(chunk.len()).ok();
            if packed_from.is_some() {
                return Packed {
                    data: compressed,
                    packed_from,
                };
            }
        }
        Packed {
            data: chunk,
            packed_from: None,
        }
    }
}

/// A compressed chunk's octets, checked to be exactly the `packed_from` it was stored with.
pub(crate) fn unpack(data: &[u8], packed_from: i32) -> io::Result<Vec<u8>> {
    let damaged = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
    let size = usize::try_from(packed_from)
        .ok()
        .filter(|&n| n > 0 && n <= CHUNK)
        .ok_or_else(|| damaged(format!("a chunk claims {packed_from} octets")))?;
    let chunk = lz4_flex::block::decompress(data, size)
        .map_err(|e| damaged(format!("a compressed chunk does not decompress: {e}")))?;
    if chunk.len() != size {
        return Err(damaged(format!(
            "a compressed chunk gave {} octets, not {size}",
            chunk.len()
        )));
    }
    Ok(chunk)
}
