//! postie's own index, the file `postie-uidlist` in the Maildir root: which uid each message
//! has, so that UIDLs stay the same forever, plus what saves reading bodies at login.
//!
//! ```text
//! postie-uidlist 1 V<uidvalidity> N<next uid>
//! <uid> [W<crlf size>] [H] :<base name>
//! ```
//!
//! One record per line, every line ending in LF, records in increasing uid order, every uid
//! below the next uid. `W` caches the CRLF size (see [`crate::crlf`]) of a message whose file
//! name has no `,W=`; `H` marks a message hidden by [`crate::DeletePolicy::Hide`]. The base name
//! (the file name before any `:`) runs to the end of the line, so it may hold spaces; file
//! names holding a LF are never indexed. The next uid only grows: a uid is never given twice,
//! even after its message is gone.
//!
//! The file is replaced whole (tmp file, fsync, rename) under the lock `postie-uidlist.lock`.

use std::collections::HashSet;

/// The parsed index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    pub uidvalidity: u32,
    pub next_uid: u32,
    /// In increasing uid order.
    pub records: Vec<Record>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub uid: u32,
    pub crlf_size: Option<u64>,
    pub hidden: bool,
    pub base: Vec<u8>,
}

/// An index that did not parse cleanly, and what could be saved from it.
#[derive(Debug)]
pub struct Damaged {
    pub error: IndexError,
    /// `(uidvalidity, next uid)` when the header survived.
    pub header: Option<(u32, u32)>,
    /// The records that parsed, in increasing uid order, uids and base names unique.
    pub records: Vec<Record>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    #[error("the header line is missing or malformed")]
    BadHeader,
    #[error("line {0} is not a valid record")]
    BadRecord(usize),
    #[error("line {0} is out of uid order or repeats a uid or base name")]
    Disorder(usize),
    #[error("the last line is cut short")]
    Truncated,
}

const MAGIC: &[u8] = b"postie-uidlist 1 ";

impl Index {
    pub fn new(uidvalidity: u32) -> Self {
        Self {
            uidvalidity,
            next_uid: 1,
            records: Vec::new(),
        }
    }

    pub fn parse(bytes: &[u8]) -> Result<Self, Damaged> {
        let mut errors = Vec::new();
        // A last line without its LF was cut short by something other than our writes (they
        // replace the whole file): it may end mid-name, so nothing of it is trusted.
        let complete = match bytes.iter().rposition(|&b| b == b'\n') {
            Some(end) => {
                if end + 1 != bytes.len() {
                    errors.push(IndexError::Truncated);
                }
                &bytes[..end]
            }
            None => {
                errors.push(IndexError::Truncated);
                &[][..]
            }
        };
        let mut lines = complete.split(|&b| b == b'\n');
        let header = lines.next().and_then(parse_header);
        if header.is_none() {
            errors.insert(0, IndexError::BadHeader);
        }
        let next_uid = header.map_or(u32::MAX, |(_, next)| next);

        let mut records: Vec<Record> = Vec::new();
        let mut bases: HashSet<&[u8], foldhash::fast::RandomState> = HashSet::default();
        for (at, line) in lines.enumerate() {
            let line_no = at + 2;
            let Some((record, base)) = parse_record(line) else {
                errors.push(IndexError::BadRecord(line_no));
                continue;
            };
            let in_order = records.last().is_none_or(|last| last.uid < record.uid);
            if !in_order || record.uid >= next_uid || !bases.insert(base) {
                errors.push(IndexError::Disorder(line_no));
                continue;
            }
            records.push(record);
        }
        match (header, errors.into_iter().next()) {
            (Some((uidvalidity, next_uid)), None) => Ok(Self {
                uidvalidity,
                next_uid,
                records,
            }),
            (header, error) => Err(Damaged {
                error: error.unwrap_or(IndexError::BadHeader),
                header,
                records,
            }),
        }
    }

    pub fn serialize(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.records.len() * 64);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(format!("V{} N{}\n", self.uidvalidity, self.next_uid).as_bytes());
        for record in &self.records {
            out.extend_from_slice(record.uid.to_string().as_bytes());
            if let Some(size) = record.crlf_size {
                out.extend_from_slice(format!(" W{size}").as_bytes());
            }
            if record.hidden {
                out.extend_from_slice(b" H");
            }
            out.extend_from_slice(b" :");
            out.extend_from_slice(&record.base);
            out.push(b'\n');
        }
        out
    }
}

fn parse_header(line: &[u8]) -> Option<(u32, u32)> {
    let fields = line.strip_prefix(MAGIC)?;
    let mut fields = fields.split(|&b| b == b' ');
    let uidvalidity = parse_u32(fields.next()?.strip_prefix(b"V")?)?;
    let next_uid = parse_u32(fields.next()?.strip_prefix(b"N")?)?;
    if fields.next().is_some() || next_uid == 0 {
        return None;
    }
    Some((uidvalidity, next_uid))
}

/// The record, and its base name borrowed from the line.
fn parse_record(line: &[u8]) -> Option<(Record, &[u8])> {
    let name_at = line.windows(2).position(|w| w == b" :")?;
    let base = &line[name_at + 2..];
    if base.is_empty() || base.iter().any(|&b| matches!(b, b':' | b'/' | 0)) {
        return None;
    }
    let mut fields = line[..name_at].split(|&b| b == b' ');
    let uid = parse_u32(fields.next()?).filter(|&uid| uid > 0)?;
    let mut record = Record {
        uid,
        crlf_size: None,
        hidden: false,
        base: base.to_vec(),
    };
    for field in fields {
        match field {
            [b'W', size @ ..] if record.crlf_size.is_none() => {
                record.crlf_size = Some(parse_u64(size)?);
            }
            b"H" if !record.hidden => record.hidden = true,
            _ => return None,
        }
    }
    Some((record, base))
}

pub(super) fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 20 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

pub(super) fn parse_u32(digits: &[u8]) -> Option<u32> {
    parse_u64(digits).and_then(|n| u32::try_from(n).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Index {
        Index {
            uidvalidity: 1795738008,
            next_uid: 9,
            records: vec![
                Record {
                    uid: 3,
                    crlf_size: None,
                    hidden: false,
                    base: b"1795738008.M1P2.h,S=3,W=4".to_vec(),
                },
                Record {
                    uid: 7,
                    crlf_size: Some(120),
                    hidden: true,
                    base: b"odd name \xff".to_vec(),
                },
            ],
        }
    }

    #[test]
    fn round_trip() {
        let index = sample();
        let text = index.serialize();
        assert_eq!(
            text,
            b"postie-uidlist 1 V1795738008 N9\n3 :1795738008.M1P2.h,S=3,W=4\n7 W120 H :odd name \xff\n"
        );
        assert_eq!(Index::parse(&text).unwrap(), index);
    }

    #[test]
    fn truncation_keeps_whole_lines_only() {
        let text = sample().serialize();
        let damaged = Index::parse(&text[..text.len() - 3]).unwrap_err();
        assert_eq!(damaged.error, IndexError::Truncated);
        assert_eq!(damaged.header, Some((1795738008, 9)));
        assert_eq!(damaged.records.len(), 1);
    }

    #[test]
    fn bad_lines_are_skipped() {
        let text = b"postie-uidlist 1 V5 N9\n2 :a\nzz :b\n2 :c\n4 :a\n5 X :d\n6 :e\n";
        let damaged = Index::parse(text).unwrap_err();
        assert_eq!(damaged.error, IndexError::BadRecord(3));
        let uids: Vec<u32> = damaged.records.iter().map(|r| r.uid).collect();
        assert_eq!(uids, [2, 6]);
        let damaged = Index::parse(b"garbage\n1 :a\n").unwrap_err();
        assert_eq!(damaged.error, IndexError::BadHeader);
        assert_eq!(damaged.records.len(), 1);
    }

    proptest! {
        #[test]
        fn parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = Index::parse(&bytes);
        }

        #[test]
        fn parser_never_panics_near_valid(
            lines in proptest::collection::vec("[0-9]{0,3}( W[0-9]{0,3})?( H)?( :[a-z:]{0,4})?", 0..8),
            next in "[0-9]{0,3}",
        ) {
            let text = format!("postie-uidlist 1 V1 N{next}\n{}\n", lines.join("\n"));
            if let Err(damaged) = Index::parse(text.as_bytes()) {
                for pair in damaged.records.windows(2) {
                    prop_assert!(pair[0].uid < pair[1].uid);
                }
            }
        }
    }
}
