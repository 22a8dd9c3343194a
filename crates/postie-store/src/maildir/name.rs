//! Maildir file names: `<base>[:2,<flags>]`, where the base name never changes for the life of
//! a message and may carry `,S=<size>` and `,W=<crlf size>` (Dovecot's fields), and, in names
//! postie gives, `,X=<form>`: what RETR needs to know of the octets (see [`stored_form`]).
//!
//! Names are bytes: a Maildir may hold names that are not UTF-8, and none of them may make us
//! panic.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::crlf::{DotLines, DotOffsets, StoredForm};

/// The base name: everything before the first `:`, as Dovecot matches names (a `:` of the
/// host name is escaped as `\072`, so only the info part starts with one).
pub fn base(name: &[u8]) -> &[u8] {
    match name.iter().position(|&b| b == b':') {
        Some(at) => &name[..at],
        None => name,
    }
}

/// The flags of a `<base>:2,<flags>` name; `None` when the name has no `:2,` info.
pub fn flags(name: &[u8]) -> Option<&[u8]> {
    name.get(base(name).len()..)?.strip_prefix(b":2,")
}

/// `name` with `flag` added to its flags, which stay sorted and unique as Maildir requires;
/// `None` when the name has an info part that is not `2,` (not ours to rewrite) or when the
/// flag is already set.
pub fn with_flag(name: &[u8], flag: u8) -> Option<Vec<u8>> {
    let base = base(name);
    let mut set: Vec<u8> = if base.len() == name.len() {
        Vec::new()
    } else {
        flags(name)?.to_vec()
    };
    if set.contains(&flag) {
        return None;
    }
    set.push(flag);
    set.sort_unstable();
    set.dedup();
    let mut renamed = Vec::with_capacity(base.len() + 3 + set.len());
    renamed.extend_from_slice(base);
    renamed.extend_from_slice(b":2,");
    renamed.extend_from_slice(&set);
    Some(renamed)
}

/// The name a message gets when it moves from new/ to cur/: `:2,` appended, unless the name
/// already has an info part.
pub fn in_cur(name: &[u8]) -> Vec<u8> {
    let mut moved = name.to_vec();
    if base(name).len() == name.len() {
        moved.extend_from_slice(b":2,");
    }
    moved
}

/// The value of a `,<key>=<decimal>` field of the base name, as Dovecot reads `S=` and `W=`.
pub fn size_field(name: &[u8], key: u8) -> Option<u64> {
    base(name)
        .split(|&b| b == b',')
        .skip(1)
        .find_map(|field| match field {
            [k, b'=', digits @ ..] if *k == key => parse_decimal(digits),
            _ => None,
        })
}

/// The form recorded in a `,X=` field: `c` (CRLF throughout, ending with CRLF: the octets are
/// their CRLF form) or `l` (any other line endings), then, when some line starts with `.`, `d`
/// followed by `.<hex offset>` for each such line (the offset of its `.`), or by nothing when
/// they were too many to record. `None` for a name without the field (Dovecot's, older
/// postie's) or with one of another shape: then nothing is known and RETR encodes the message
/// as it reads it.
pub fn stored_form(name: &[u8]) -> Option<StoredForm> {
    let value = base(name)
        .split(|&b| b == b',')
        .skip(1)
        .find_map(|field| field.strip_prefix(b"X="))?;
    let (crlf, dots) = match value.split_first()? {
        (b'c', dots) => (true, dots),
        (b'l', dots) => (false, dots),
        _ => return None,
    };
    let dot_lines = match dots {
        b"" => DotLines::None,
        b"d" => DotLines::Unrecorded,
        [b'd', b'.', offsets @ ..] => {
            let parsed: Option<Vec<u64>> = offsets.split(|&b| b == b'.').map(parse_hex).collect();
            DotLines::At(DotOffsets::from_ascending(parsed?)?)
        }
        _ => return None,
    };
    Some(StoredForm { crlf, dot_lines })
}

/// The delivery time at the start of a `<secs>.M<usecs>...` name, to order new messages the
/// way they arrived. Names of another shape sort after all timed ones, by name.
pub fn arrival_key(name: &[u8]) -> (u64, u64) {
    let mut parts = name.splitn(2, |&b| b == b'.');
    let Some(secs) = parts.next().and_then(parse_decimal) else {
        return (u64::MAX, u64::MAX);
    };
    let usecs = parts
        .next()
        .and_then(|rest| rest.strip_prefix(b"M"))
        .map(|rest| {
            let end = rest
                .iter()
                .position(|b| !b.is_ascii_digit())
                .unwrap_or(rest.len());
            parse_decimal(&rest[..end]).unwrap_or(0)
        })
        .unwrap_or(0);
    (secs, usecs)
}

fn parse_hex(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &d| {
        let value = char::from(d).to_digit(16)?;
        // Lower case only, as written: one spelling per offset.
        (!d.is_ascii_uppercase()).then_some((acc << 4) | u64::from(value))
    })
}

fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &d| {
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// A base name no other delivery, in this process or another, on this host or another sharing
/// the Maildir, will produce: Dovecot's `<secs>.M<usecs>P<pid>Q<counter>.<host>`.
pub fn unique() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let counter = COUNTER.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
    format!(
        "{}.M{}P{}Q{}.{}",
        now.as_secs(),
        now.subsec_micros(),
        std::process::id(),
        counter,
        hostname()
    )
}

/// The longest base name that gets dot-line offsets: file names end at 255 octets, and the
/// flags and whatever other tools add need room after the base.
const MAX_BASE_WITH_OFFSETS: usize = 200;

/// The final name of a delivered message, sizes and form included so that neither opening nor
/// RETR reads it to learn them. Dot-line offsets are recorded only for CRLF messages (others
/// go through the encoder anyway) and only while the name stays short.
pub fn delivered(unique: &str, size: u64, crlf_size: u64, form: StoredForm) -> String {
    let endings = if form.crlf { "c" } else { "l" };
    let mut name = format!("{unique},S={size},W={crlf_size},X={endings}");
    match form.dot_lines {
        DotLines::None => {}
        DotLines::At(offsets) if form.crlf => {
            let mut with_offsets = format!("{name}d");
            for at in offsets.as_slice() {
                with_offsets.push_str(&format!(".{at:x}"));
            }
            name = if with_offsets.len() <= MAX_BASE_WITH_OFFSETS {
                with_offsets
            } else {
                name + "d"
            };
        }
        DotLines::At(_) | DotLines::Unrecorded => name.push('d'),
    }
    name
}

fn hostname() -> &'static str {
    static HOSTNAME: OnceLock<String> = OnceLock::new();
    HOSTNAME.get_or_init(|| escape_hostname(&system_hostname()))
}

fn system_hostname() -> Vec<u8> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    if rc != 0 || len == 0 {
        return b"localhost".to_vec();
    }
    buf[..len].to_vec()
}

/// `/` cannot appear in a file name and `:` starts the info part, so Dovecot writes them as
/// `\057` and `\072`. We also escape `,` (it starts a size field) and octets outside printable
/// ASCII, so that a name stays one plain word.
fn escape_hostname(host: &[u8]) -> String {
    let mut escaped = String::with_capacity(host.len());
    for &b in host {
        match b {
            0x21..=0x7e if !matches!(b, b'/' | b':' | b',') => escaped.push(char::from(b)),
            _ => escaped.push_str(&format!("\\{b:03o}")),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parts_of_a_dovecot_name() {
        let name = b"1795738008.M770636P8431.vm,S=28,W=30:2,S";
        assert_eq!(base(name), b"1795738008.M770636P8431.vm,S=28,W=30");
        assert_eq!(flags(name), Some(&b"S"[..]));
        assert_eq!(size_field(name, b'S'), Some(28));
        assert_eq!(size_field(name, b'W'), Some(30));
        assert_eq!(arrival_key(name), (1795738008, 770636));
        assert_eq!(flags(b"x"), None);
        assert_eq!(size_field(b"1.M1P1.h,W=,S=x:2,W=5", b'W'), None);
    }

    #[test]
    fn stored_forms_round_trip() {
        let offsets = DotOffsets::from_ascending([0, 0x1f4, u64::MAX]).unwrap();
        for crlf in [false, true] {
            for dot_lines in [DotLines::None, DotLines::Unrecorded, DotLines::At(offsets)] {
                let form = StoredForm { crlf, dot_lines };
                let name = delivered("1.M2P3Q4.h", 10, 12, form);
                // An LF message's offsets are not worth a name's room.
                let recorded = match dot_lines {
                    DotLines::At(_) if !crlf => StoredForm {
                        crlf,
                        dot_lines: DotLines::Unrecorded,
                    },
                    _ => form,
                };
                assert_eq!(stored_form(name.as_bytes()), Some(recorded), "{name}");
                assert_eq!(
                    stored_form(format!("{name}:2,S").as_bytes()),
                    Some(recorded)
                );
                assert_eq!(size_field(name.as_bytes(), b'W'), Some(12));
            }
        }
        let form = StoredForm {
            crlf: true,
            dot_lines: DotLines::At(offsets),
        };
        assert!(delivered("1.M2P3Q4.h", 10, 12, form).ends_with(",X=cd.0.1f4.ffffffffffffffff"));
        // A long host name leaves no room for offsets: the name says only that there are some.
        let long = format!("1.M2P3Q4.{}", "h".repeat(170));
        assert!(delivered(&long, 10, 12, form).ends_with(",X=cd"));
        assert_eq!(stored_form(b"1.M2P3.h,S=1,W=2:2,"), None);
        assert_eq!(stored_form(b"1.M2P3.h,X=cx"), None);
        assert_eq!(stored_form(b"1.M2P3.h,X="), None);
        assert_eq!(stored_form(b"1.M2P3.h:2,X=c"), None);
        assert_eq!(stored_form(b"1.M2P3.h,X=cd."), None);
        assert_eq!(stored_form(b"1.M2P3.h,X=cd.5.3"), None);
        assert_eq!(stored_form(b"1.M2P3.h,X=cd.5.5"), None);
        assert_eq!(stored_form(b"1.M2P3.h,X=cd.1F"), None);
        assert_eq!(stored_form(b"1.M2P3.h,X=cd.10000000000000000"), None);
        assert_eq!(stored_form(b"1.M2P3.h,X=cd.1.2.3.4.5.6.7.8.9"), None);
    }

    #[test]
    fn flags_stay_sorted() {
        assert_eq!(with_flag(b"a", b'S').as_deref(), Some(&b"a:2,S"[..]));
        assert_eq!(with_flag(b"a:2,FT", b'S').as_deref(), Some(&b"a:2,FST"[..]));
        assert_eq!(with_flag(b"a:2,RS", b'S'), None);
        assert_eq!(with_flag(b"a:1,xyz", b'S'), None);
        assert_eq!(in_cur(b"a"), b"a:2,");
        assert_eq!(in_cur(b"a:2,S"), b"a:2,S");
    }

    #[test]
    fn hostname_escapes() {
        assert_eq!(escape_hostname(b"mx/1:25"), "mx\\0571\\07225");
        let name = unique();
        assert!(!name.contains('/') && !name.contains(':'), "{name}");
        assert_ne!(unique(), name);
    }

    proptest! {
        #[test]
        fn parser_never_panics(name in proptest::collection::vec(any::<u8>(), 0..64)) {
            let b = base(&name);
            prop_assert!(!b.contains(&b':'));
            let _ = flags(&name);
            let _ = size_field(&name, b'W');
            let _ = stored_form(&name);
            let _ = arrival_key(&name);
            if let Some(renamed) = with_flag(&name, b'S') {
                prop_assert_eq!(base(&renamed), b);
                prop_assert!(flags(&renamed).is_some_and(|f| f.contains(&b'S')));
            }
            let moved = in_cur(&name);
            prop_assert_eq!(base(&moved), b);
        }

        #[test]
        fn parser_reads_structured_names(
            secs in any::<u32>(), usecs in 0u32..1_000_000, size in any::<u64>(),
            flagset in "[A-Za-z]{0,5}",
        ) {
            let name = format!("{secs}.M{usecs}P1.h,S=1,W={size}:2,{flagset}");
            prop_assert_eq!(size_field(name.as_bytes(), b'W'), Some(size));
            prop_assert_eq!(arrival_key(name.as_bytes()), (u64::from(secs), u64::from(usecs)));
        }
    }
}
