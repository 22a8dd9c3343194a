//! The strict gate in front of hyper: the head is at most 8 KiB, a body needs a
//! Content-Length of at most 64 KiB, and anything unusual (chunked bodies, folded headers,
//! HTTP/2 prefaces) is refused rather than interpreted. hyper then parses the same bytes
//! again and serves the request; what passes here is the little postie needs.

use postie_types::limits::{HTTP_MAX_BODY as MAX_BODY, HTTP_MAX_HEAD as MAX_HEAD};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Parsed {
    Incomplete,
    /// A head that passed, and how many bytes it took.
    Complete(usize),
}

/// A request refused with this status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refused(pub(crate) u16);

pub(crate) fn parse_head(input: &[u8]) -> Result<Parsed, Refused> {
    let window = &input[..input.len().min(MAX_HEAD)];
    let Some(end) = window.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if input.len() >= MAX_HEAD {
            Err(Refused(431))
        } else {
            Ok(Parsed::Incomplete)
        };
    };
    let text = std::str::from_utf8(&window[..end]).map_err(|_| Refused(400))?;
    let mut lines = text.split("\r\n");
    let request_line = lines.next().ok_or(Refused(400))?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Refused(400));
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(Refused(400));
    }
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(Refused(505));
    }
    if !target.starts_with('/') || !target.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Refused(400));
    }
    let mut content_length = None;
    for line in lines {
        let (name, value) = line.split_once(':').ok_or(Refused(400))?;
        if name.is_empty() || !name.bytes().all(is_token) {
            // Also catches folded continuation lines, which start with a space.
            return Err(Refused(400));
        }
        let value = value.trim_matches([' ', '\t']);
        if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(Refused(501));
        }
        if name.eq_ignore_ascii_case("content-length") {
            if value.is_empty() || value.len() > 9 || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Refused(400));
            }
            let length: usize = value.parse().map_err(|_| Refused(400))?;
            if content_length.is_some_and(|seen| seen != length) {
                return Err(Refused(400));
            }
            if length > MAX_BODY {
                return Err(Refused(413));
            }
            content_length = Some(length);
        }
    }
    Ok(Parsed::Complete(end + 4))
}

fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The value of `name` in a query string, percent-decoded (`+` is a space).
pub(crate) fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then(|| percent_decode(value))?
    })
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thunderbird_request() {
        let request = b"GET /mail/config-v1.1.xml?emailaddress=fred%40example.org HTTP/1.1\r\nHost: autoconfig.example.org\r\nUser-Agent: Thunderbird\r\n\r\n";
        assert_eq!(parse_head(request), Ok(Parsed::Complete(request.len())));
        assert_eq!(
            query_param("emailaddress=fred%40example.org", "emailaddress").as_deref(),
            Some("fred@example.org")
        );
        assert_eq!(parse_head(&request[..40]), Ok(Parsed::Incomplete));
    }

    #[test]
    fn refusals() {
        for (request, status) in [
            (&b"GET / HTTP/2.0\r\n\r\n"[..], 505),
            (b"PRI * HTTP/2.0\r\n\r\n", 505),
            (b"get / HTTP/1.1\r\n\r\n", 400),
            (b"GET /a b HTTP/1.1\r\n\r\n", 400),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                501,
            ),
            (b"POST / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", 413),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                400,
            ),
            (b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nX: a\r\n folded\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nno colon\r\n\r\n", 400),
        ] {
            assert_eq!(
                parse_head(request),
                Err(Refused(status)),
                "{:?}",
                String::from_utf8_lossy(request)
            );
        }
        assert_eq!(parse_head(&[b'a'; MAX_HEAD]), Err(Refused(431)));
        assert_eq!(query_param("emailaddress=%4", "emailaddress"), None);
        assert_eq!(query_param("a=1&b=x+y", "b").as_deref(), Some("x y"));
    }
}
