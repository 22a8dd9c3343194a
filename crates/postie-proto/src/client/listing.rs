//! The lines of LIST and UIDL responses: `n size` and `n unique-id`.

use postie_types::{parse_decimal, MsgNum, Uidl};

/// One line of a LIST response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListEntry {
    pub msg: MsgNum,
    /// Octets as the server counts them (CRLF form, before byte-stuffing).
    pub size: u64,
}

/// One line of a UIDL response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UidlEntry {
    pub msg: MsgNum,
    pub uidl: Uidl,
}

/// Splits `n rest`, tolerating extra spaces and trailing text (some servers add comments).
fn number_and_word(line: &[u8]) -> Option<(MsgNum, &[u8])> {
    let mut words = line.split(|&b| b == b' ').filter(|w| !w.is_empty());
    let msg = MsgNum::parse(words.next()?)?;
    Some((msg, words.next()?))
}

pub(crate) fn parse_list(line: &[u8]) -> Option<ListEntry> {
    let (msg, size) = number_and_word(line)?;
    Some(ListEntry {
        msg,
        size: parse_decimal(size)?,
    })
}

pub(crate) fn parse_uidl(line: &[u8]) -> Option<UidlEntry> {
    let (msg, uidl) = number_and_word(line)?;
    let uidl = Uidl::new(std::str::from_utf8(uidl).ok()?).ok()?;
    Some(UidlEntry { msg, uidl })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries() {
        assert_eq!(parse_list(b"2 200").unwrap().size, 200);
        assert_eq!(parse_list(b"2  200 extra").unwrap().size, 200);
        assert_eq!(parse_list(b"0 200"), None);
        assert_eq!(parse_list(b"2 -1"), None);
        assert_eq!(parse_list(b"2"), None);
        let entry = parse_uidl(b"1 whqtswO00WBw418f9t5JxYwZ").unwrap();
        assert_eq!(entry.msg.get(), 1);
        assert_eq!(entry.uidl.as_str(), "whqtswO00WBw418f9t5JxYwZ");
        assert_eq!(parse_uidl(b"1 \xff"), None);
    }
}
