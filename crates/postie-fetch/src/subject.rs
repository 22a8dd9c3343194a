//! The Subject of a fetched message, for the `on_new_mail` hook: the header is kept as the
//! message streams by (at most [`HEADER_MAX`] octets), then the field is unfolded and its
//! RFC 2047 encoded words in UTF-8, US-ASCII or ISO-8859-1 decoded. Anything else stays as
//! written: the subject is for a notification, and octets are never lost, only left encoded.

use base64::Engine as _;

/// The header octets kept per message; a Subject further down is not looked for.
pub const HEADER_MAX: usize = 64 * 1024;

/// The header of a message arriving in pieces.
#[derive(Debug, Default)]
pub struct HeaderCapture {
    head: Vec<u8>,
    complete: bool,
}

impl HeaderCapture {
    pub fn push(&mut self, data: &[u8]) {
        if self.complete {
            return;
        }
        let room = HEADER_MAX - self.head.len();
        let start = self.head.len().saturating_sub(3);
        self.head.extend_from_slice(&data[..data.len().min(room)]);
        if let Some(end) = header_end(&self.head[start..]) {
            self.head.truncate(start + end);
            self.complete = true;
        } else if self.head.len() == HEADER_MAX {
            self.complete = true;
        }
    }

    /// The header kept so far (all of it once the message is past its empty line).
    pub fn header(&self) -> &[u8] {
        &self.head
    }

    /// The Subject field, unfolded and decoded; `None` when the header has none.
    pub fn subject(&self) -> Option<Vec<u8>> {
        subject(&self.head)
    }
}

/// Where the empty line ending a header starts, LF or CRLF.
fn header_end(bytes: &[u8]) -> Option<usize> {
    let lf = bytes.windows(2).position(|w| w == b"\n\n");
    let crlf = bytes.windows(4).position(|w| w == b"\r\n\r\n");
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The first Subject field of `header`.
pub fn subject(header: &[u8]) -> Option<Vec<u8>> {
    let mut lines = header.split(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        if trim_cr(line).is_empty() {
            return None;
        }
        let Some(value) = field_value(line, b"subject") else {
            continue;
        };
        let mut unfolded = trim_cr(value).to_vec();
        while let Some(next) =
            lines.next_if(|l| l.first().is_some_and(|b| *b == b' ' || *b == b'\t'))
        {
            unfolded.extend_from_slice(trim_cr(next));
        }
        return Some(decode_words(unfolded.trim_ascii()));
    }
    None
}

fn field_value<'a>(line: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let colon = line.iter().position(|&b| b == b':')?;
    line[..colon]
        .trim_ascii_end()
        .eq_ignore_ascii_case(name)
        .then(|| &line[colon + 1..])
}

pub(crate) fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Decodes each `=?charset?B|Q?text?=` it can; white space between two encoded words goes,
/// as RFC 2047 says.
pub(crate) fn decode_words(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut pending_space: Vec<u8> = Vec::new();
    let mut last_was_word = false;
    for token in split_keeping_space(text) {
        if token.iter().all(|b| b.is_ascii_whitespace()) {
            pending_space = token.to_vec();
            continue;
        }
        match decode_word(token) {
            Some(decoded) => {
                if !last_was_word {
                    out.append(&mut pending_space);
                }
                out.extend_from_slice(&decoded);
                last_was_word = true;
            }
            None => {
                out.append(&mut pending_space);
                out.extend_from_slice(token);
                last_was_word = false;
            }
        }
        pending_space.clear();
    }
    out
}

/// Runs of white space and runs of anything else, in order.
fn split_keeping_space(text: &[u8]) -> Vec<&[u8]> {
    let mut tokens = Vec::new();
    let mut start = 0;
    for i in 1..=text.len() {
        if i == text.len() || text[i].is_ascii_whitespace() != text[start].is_ascii_whitespace() {
            tokens.push(&text[start..i]);
            start = i;
        }
    }
    tokens
}

fn decode_word(word: &[u8]) -> Option<Vec<u8>> {
    let inner = word.strip_prefix(b"=?")?.strip_suffix(b"?=")?;
    let mut parts = inner.splitn(3, |&b| b == b'?');
    let charset = parts.next()?;
    let encoding = parts.next()?;
    let text = parts.next()?;
    // RFC 2231 allows a language after '*': "UTF-8*en".
    let charset = charset.split(|&b| b == b'*').next()?;
    let raw = if encoding.eq_ignore_ascii_case(b"b") {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .ok()?
    } else if encoding.eq_ignore_ascii_case(b"q") {
        decode_q(text)?
    } else {
        return None;
    };
    if charset.eq_ignore_ascii_case(b"utf-8") || charset.eq_ignore_ascii_case(b"us-ascii") {
        Some(raw)
    } else if charset.eq_ignore_ascii_case(b"iso-8859-1") || charset.eq_ignore_ascii_case(b"latin1")
    {
        Some(
            raw.iter()
                .map(|&b| b as char)
                .collect::<String>()
                .into_bytes(),
        )
    } else {
        None
    }
}

fn decode_q(text: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'_' => out.push(b' '),
            b'=' => {
                let hex = text.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
                i += 2;
            }
            other => out.push(other),
        }
        i += 1;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn captured(message: &[u8], piece: usize) -> Option<Vec<u8>> {
        let mut capture = HeaderCapture::default();
        for chunk in message.chunks(piece) {
            capture.push(chunk);
        }
        capture.subject()
    }

    #[test]
    fn plain_folded_and_encoded_subjects() {
        let message = b"From: a@b\nSubject: Hello\n  there\nTo: c@d\n\nSubject: body\n";
        for piece in [1, 3, 1000] {
            assert_eq!(
                captured(message, piece).as_deref(),
                Some(&b"Hello  there"[..])
            );
        }
        let crlf = b"SUBJECT: =?UTF-8?Q?caf=C3=A9_cr=C3=A8me?=\r\n\r\n";
        assert_eq!(captured(crlf, 7).as_deref(), Some("café crème".as_bytes()));
        assert_eq!(
            subject(b"Subject: =?utf-8?B?w6l0w6k=?= =?ISO-8859-1?Q?=E9t=E9?= ok\n").as_deref(),
            Some("étéété ok".as_bytes())
        );
        assert_eq!(
            subject(b"Subject: =?koi8-r?B?8NLJ18XU?= raw \xff\n").as_deref(),
            Some(&b"=?koi8-r?B?8NLJ18XU?= raw \xff"[..]),
            "an unknown charset and raw octets stay as they are"
        );
        assert_eq!(subject(b"From: a\n\nSubject: in the body\n"), None);
        assert_eq!(
            subject(b"Subject: =?utf-8?Q?bad=Z?=\n").as_deref(),
            Some(&b"=?utf-8?Q?bad=Z?="[..])
        );
    }

    #[test]
    fn the_header_kept_is_bounded() {
        let mut capture = HeaderCapture::default();
        let long = vec![b'x'; HEADER_MAX];
        capture.push(b"X-Long: ");
        capture.push(&long);
        capture.push(b"\nSubject: too far\n\n");
        assert_eq!(capture.head.len(), HEADER_MAX);
        assert_eq!(capture.subject(), None);
    }
}
