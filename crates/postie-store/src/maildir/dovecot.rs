//! Reading Dovecot's `dovecot-uidlist`, so that a Maildir Dovecot served keeps its UIDLs.
//!
//! Dovecot (and Courier, whose `courierimapuiddb` is version 1) writes:
//!
//! ```text
//! 1 <uidvalidity> <next uid>                  version 1 header
//! <uid> <file name>                           version 1 record
//! 3 V<uidvalidity> N<next uid> G<guid> ...    version 3 header (Dovecot 1.1 and later)
//! <uid> [<key><value> ...] :<file name>       version 3 record, e.g. `6 W21 :1795738100.M1P1.host`
//! ```
//!
//! Version 2 (a few development releases) is version 1 with a flags field before the name.
//! Dovecot appends records without rewriting the header, so the header's next uid may be
//! stale: the next free uid is also above every recorded one. The file name may be one seen
//! with flags (`...:2,S`); messages are matched by base name.

use std::collections::HashMap;

use super::index::parse_u32;
use super::name;

pub const FILE_NAME: &str = "dovecot-uidlist";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DovecotList {
    pub uidvalidity: u32,
    /// Above every uid Dovecot gave, whether the header says so or not.
    pub next_uid: u32,
    /// Base name to uid.
    pub uids: HashMap<Vec<u8>, u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DovecotError {
    #[error("dovecot-uidlist has an unknown or malformed header")]
    BadHeader,
}

enum Version {
    /// `<uid> <name>`, or `<uid> <flags> <name>` for version 2.
    Positional { skip: usize },
    /// `<uid> [fields] :<name>`.
    Extensible,
}

impl DovecotList {
    /// Reads what can be read: records that do not parse are left out, as Dovecot would
    /// recreate them; only an unreadable header makes the whole file useless.
    pub fn parse(bytes: &[u8]) -> Result<Self, DovecotError> {
        let mut lines = bytes.split(|&b| b == b'\n');
        let (version, uidvalidity, header_next) = lines
            .next()
            .and_then(parse_header)
            .ok_or(DovecotError::BadHeader)?;
        let mut uids = HashMap::new();
        let mut max_uid = 0;
        for line in lines {
            let Some((uid, file_name)) = parse_record(&version, line) else {
                continue;
            };
            max_uid = max_uid.max(uid);
            uids.entry(name::base(file_name).to_vec()).or_insert(uid);
        }
        Ok(Self {
            uidvalidity,
            next_uid: header_next.max(max_uid.saturating_add(1)),
            uids,
        })
    }
}

fn parse_header(line: &[u8]) -> Option<(Version, u32, u32)> {
    let mut fields = line.split(|&b| b == b' ').filter(|f| !f.is_empty());
    match fields.next()? {
        version @ (b"1" | b"2") => {
            let uidvalidity = parse_u32(fields.next()?)?;
            let next_uid = parse_u32(fields.next()?)?;
            let skip = if version == b"2" { 1 } else { 0 };
            Some((Version::Positional { skip }, uidvalidity, next_uid))
        }
        b"3" => {
            let (mut uidvalidity, mut next_uid) = (None, None);
            for field in fields {
                match field {
                    [b'V', value @ ..] => uidvalidity = parse_u32(value),
                    [b'N', value @ ..] => next_uid = parse_u32(value),
                    _ => {}
                }
            }
            Some((Version::Extensible, uidvalidity?, next_uid?))
        }
        _ => None,
    }
}

fn parse_record<'a>(version: &Version, line: &'a [u8]) -> Option<(u32, &'a [u8])> {
    let (uid, rest) = split_word(line)?;
    let uid = parse_u32(uid).filter(|&uid| uid > 0)?;
    let file_name = match version {
        Version::Positional { skip } => {
            let mut rest = rest;
            for _ in 0..*skip {
                rest = split_word(rest)?.1;
            }
            rest
        }
        Version::Extensible => {
            let at = line.windows(2).position(|w| w == b" :")?;
            &line[at + 2..]
        }
    };
    (!file_name.is_empty() && !file_name.contains(&b'/')).then_some((uid, file_name))
}

fn split_word(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let at = line.iter().position(|&b| b == b' ')?;
    Some((&line[..at], &line[at + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_what_dovecot_2_3_wrote() {
        // Written by Dovecot 2.3.19 after deliveries, a POP3 session and a resync.
        let text = b"3 V1795738008 N1 Ge792e52b98c9086be720000083ecc375\n\
            1 :1795738008.M736426P8423.vm,S=20,W=23\n\
            3 :1795738008.M760937P8429.vm,S=20,W=23:2,S\n\
            6 W21 :1795738100.M1P1.other\n";
        let list = DovecotList::parse(text).unwrap();
        assert_eq!(list.uidvalidity, 1795738008);
        assert_eq!(list.next_uid, 7);
        assert_eq!(list.uids.len(), 3);
        assert_eq!(list.uids[&b"1795738008.M760937P8429.vm,S=20,W=23"[..]], 3);
        assert_eq!(list.uids[&b"1795738100.M1P1.other"[..]], 6);
    }

    #[test]
    fn reads_version_1() {
        let list = DovecotList::parse(b"1 1000 12\n4 1000.M1P1.h:2,S\n5 broken\nx y\n").unwrap();
        assert_eq!(list.uidvalidity, 1000);
        assert_eq!(list.next_uid, 12);
        assert_eq!(list.uids[&b"1000.M1P1.h"[..]], 4);
    }

    #[test]
    fn rejects_unknown_headers() {
        assert_eq!(
            DovecotList::parse(b"4 V1 N2\n"),
            Err(DovecotError::BadHeader)
        );
        assert_eq!(DovecotList::parse(b"3 N2\n"), Err(DovecotError::BadHeader));
        assert_eq!(DovecotList::parse(b""), Err(DovecotError::BadHeader));
    }

    proptest! {
        #[test]
        fn parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = DovecotList::parse(&bytes);
        }

        #[test]
        fn parser_never_panics_near_valid(
            header in "[1-4] (V?[0-9]{0,11} ?){0,3}",
            lines in proptest::collection::vec("[0-9]{0,11}( [A-Z0-9]{0,3})*( :?[a-z:,=0-9]{0,8})?", 0..8),
        ) {
            let text = format!("{header}\n{}\n", lines.join("\n"));
            let _ = DovecotList::parse(text.as_bytes());
        }
    }
}
