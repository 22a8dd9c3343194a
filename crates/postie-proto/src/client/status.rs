//! Status lines as a client reads them: `+OK text`, `-ERR [CODE] text`, and the greeting.

use std::fmt;

/// A server's `+OK` or `-ERR` line, decoded for display and decisions. The text is the
/// server's, made valid UTF-8 for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub ok: bool,
    /// The extended response code (RFC 2449 section 8), e.g. `AUTH`, `SYS/TEMP`, `IN-USE`.
    pub code: Option<String>,
    pub text: String,
}

impl Status {
    /// Parses a status line; `None` when it is neither `+OK` nor `-ERR`.
    pub fn parse(line: &[u8]) -> Option<Status> {
        let (ok, rest) = if let Some(rest) = strip_keyword(line, b"+OK") {
            (true, rest)
        } else if let Some(rest) = strip_keyword(line, b"-ERR") {
            (false, rest)
        } else {
            return None;
        };
        let rest = String::from_utf8_lossy(rest);
        let rest = rest.trim_start();
        let (code, text) = match rest.strip_prefix('[').and_then(|r| r.split_once(']')) {
            Some((code, text)) if is_code(code) => {
                (Some(code.to_ascii_uppercase()), text.trim_start())
            }
            _ => (None, rest),
        };
        Some(Status {
            ok,
            code,
            text: text.to_owned(),
        })
    }

    /// Whether the code says the failure is temporary (RFC 2449, RFC 3206).
    pub fn is_temporary(&self) -> bool {
        matches!(
            self.code.as_deref(),
            Some("SYS/TEMP" | "IN-USE" | "LOGIN-DELAY")
        )
    }

    /// Whether the code blames the credentials (RFC 3206 `[AUTH]`).
    pub fn is_auth(&self) -> bool {
        self.code.as_deref() == Some("AUTH")
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.ok { "+OK" } else { "-ERR" })?;
        if let Some(code) = &self.code {
            write!(f, " [{code}]")?;
        }
        if !self.text.is_empty() {
            write!(f, " {}", self.text)?;
        }
        Ok(())
    }
}

/// `+OK` must be followed by the end of the line or a space; `+OKAY` is no status.
fn strip_keyword<'a>(line: &'a [u8], keyword: &[u8]) -> Option<&'a [u8]> {
    let rest = line.strip_prefix(keyword)?;
    match rest.first() {
        None | Some(b' ') => Some(rest),
        Some(_) => None,
    }
}

fn is_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= 64
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'/' || b == b'-')
}

/// The server's first line, when it is `+OK`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Greeting {
    pub status: Status,
    /// The APOP timestamp (`<…@…>`) if the server offers APOP (RFC 1939 section 7).
    pub apop_timestamp: Option<String>,
}

impl Greeting {
    pub(crate) fn new(status: Status) -> Greeting {
        let apop_timestamp = status.text.find('<').and_then(|start| {
            let candidate = &status.text[start..];
            let end = candidate.find('>')?;
            let timestamp = &candidate[..=end];
            (timestamp.contains('@') && timestamp.is_ascii()).then(|| timestamp.to_owned())
        });
        Greeting {
            status,
            apop_timestamp,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        let ok = Status::parse(b"+OK 2 320").unwrap();
        assert!(ok.ok && ok.code.is_none() && ok.text == "2 320");
        assert_eq!(Status::parse(b"+OK").unwrap().text, "");
        let err = Status::parse(b"-ERR [SYS/TEMP] try later").unwrap();
        assert!(!err.ok && err.is_temporary());
        assert_eq!(err.text, "try later");
        assert!(Status::parse(b"-ERR [auth] no").unwrap().is_auth());
        assert_eq!(Status::parse(b"-ERR [not a code] x").unwrap().code, None);
        assert_eq!(Status::parse(b"+OKAY"), None);
        assert_eq!(Status::parse(b"* OK imap"), None);
        assert_eq!(err.to_string(), "-ERR [SYS/TEMP] try later");
    }

    #[test]
    fn apop_timestamp_from_the_greeting() {
        let greeting = Greeting::new(
            Status::parse(b"+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>").unwrap(),
        );
        assert_eq!(
            greeting.apop_timestamp.as_deref(),
            Some("<1896.697170952@dbc.mtview.ca.us>")
        );
        let plain = Greeting::new(Status::parse(b"+OK Dovecot ready.").unwrap());
        assert_eq!(plain.apop_timestamp, None);
    }
}
