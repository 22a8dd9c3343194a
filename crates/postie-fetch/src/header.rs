//! A message's header as the rules see it: every field unfolded and its RFC 2047 encoded
//! words decoded (with the subject module's decoder), and whether the message carries
//! attachments, judged from the top part's header alone so it can be known before the body
//! is downloaded.

use crate::subject::{decode_words, trim_cr};

/// The fields of one header, in order.
#[derive(Debug, Default, Clone)]
pub struct HeaderFields {
    fields: Vec<(Vec<u8>, Vec<u8>)>,
}

impl HeaderFields {
    /// Reads `header` (LF or CRLF lines) up to its empty line; a line that is neither a field
    /// nor a continuation is skipped, as mail readers do.
    pub fn parse(header: &[u8]) -> HeaderFields {
        let mut fields: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut raw: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for line in header.split(|&b| b == b'\n') {
            let line = trim_cr(line);
            if line.is_empty() {
                break;
            }
            if line[0] == b' ' || line[0] == b'\t' {
                if let Some((_, value)) = raw.last_mut() {
                    value.extend_from_slice(line);
                }
                continue;
            }
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                continue;
            };
            let name = line[..colon].trim_ascii_end().to_ascii_lowercase();
            raw.push((name, line[colon + 1..].to_vec()));
        }
        for (name, value) in raw {
            fields.push((name, decode_words(value.trim_ascii())));
        }
        HeaderFields { fields }
    }

    /// The decoded values of every field called `name` (any case), in order.
    pub fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.fields
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v.as_slice())
    }

    /// Whether the top part says it carries attachments: `Content-Type: multipart/mixed`
    /// (the type mail programs use for a text with files), or `Content-Disposition:
    /// attachment` on the message itself. Parts further down are in the body, which a
    /// header-first decision does not have.
    pub fn has_attachments(&self) -> bool {
        let starts_with = |value: &[u8], prefix: &[u8]| {
            value.len() >= prefix.len() && value[..prefix.len()].eq_ignore_ascii_case(prefix)
        };
        self.values("content-type")
            .any(|v| starts_with(v.trim_ascii_start(), b"multipart/mixed"))
            || self
                .values("content-disposition")
                .any(|v| starts_with(v.trim_ascii_start(), b"attachment"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_unfolded_decoded_and_repeatable() {
        let header = HeaderFields::parse(
            b"Received: one\r\nreceived: two\r\nSubject: =?UTF-8?Q?caf=C3=A9?=\r\n  au lait\r\nnot a field\r\nX-Empty:\r\n\r\nSubject: body\r\n",
        );
        assert_eq!(header.values("RECEIVED").count(), 2);
        assert_eq!(
            header.values("subject").collect::<Vec<_>>(),
            ["café  au lait".as_bytes()]
        );
        assert_eq!(header.values("x-empty").next(), Some(&b""[..]));
        assert_eq!(header.values("to").next(), None);
    }

    #[test]
    fn attachments_from_the_top_header() {
        for (header, expected) in [
            (&b"Content-Type: Multipart/Mixed; boundary=x\n\n"[..], true),
            (b"Content-Disposition: attachment; filename=a.pdf\n\n", true),
            (
                b"Content-Type: multipart/alternative; boundary=x\n\n",
                false,
            ),
            (b"Content-Type: text/plain\n\n", false),
            (b"Subject: x\n\n", false),
        ] {
            assert_eq!(
                HeaderFields::parse(header).has_attachments(),
                expected,
                "{}",
                String::from_utf8_lossy(header)
            );
        }
    }
}
