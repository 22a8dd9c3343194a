//! SMTP/LMTP replies (RFC 5321 section 4.2) with enhanced status codes (RFC 3463), and the one
//! place where delivery failures become wire answers.

use std::fmt;

/// An enhanced status code `class.subject.detail` (RFC 3463).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status(pub u8, pub u16, pub u16);

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// One reply: a code, an optional enhanced status and one or more lines of text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub status: Option<Status>,
    pub lines: Vec<String>,
}

impl Reply {
    pub fn new(code: u16, status: Option<Status>, text: impl Into<String>) -> Self {
        Reply {
            code,
            status,
            lines: vec![text.into()],
        }
    }

    /// Whether the reply reports success (2xx) or asks for the data (3xx).
    pub fn is_positive(&self) -> bool {
        self.code < 400
    }

    /// Whether a retry may succeed (4xx).
    pub fn is_temporary(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// Appends the reply in wire form: `250-first`, …, `250 last`, each line CRLF-ended. Text
    /// never carries CR or LF (they would end the reply early), so those become spaces.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let last = self.lines.len().saturating_sub(1);
        for (i, line) in self.lines.iter().enumerate() {
            let separator = if i == last { ' ' } else { '-' };
            let head = match self.status {
                Some(status) => format!("{}{separator}{status} ", self.code),
                None => format!("{}{separator}", self.code),
            };
            out.extend_from_slice(head.as_bytes());
            out.extend(
                line.bytes()
                    .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
            );
            out.extend_from_slice(b"\r\n");
        }
        if self.lines.is_empty() {
            out.extend_from_slice(format!("{}\r\n", self.code).as_bytes());
        }
    }
}

/// Why a recipient cannot get a message. [`DeliveryError::reply`] is the single mapping from
/// these to wire answers, for RCPT, for the per-recipient LMTP replies and for SMTP's one
/// reply after the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryError {
    /// No such user here.
    UnknownUser,
    /// The domain is not ours and we do not relay.
    RelayDenied,
    /// The message would take the user over quota; `temporary` asks the sender to retry later.
    OverQuota { temporary: bool },
    /// The message is bigger than the server accepts.
    TooBig,
    /// A failure that may go away (I/O error, disk full, lock): retry later.
    Temporary,
    /// A failure that will not go away by retrying.
    Permanent,
}

impl DeliveryError {
    pub fn reply(self) -> Reply {
        match self {
            DeliveryError::UnknownUser => {
                Reply::new(550, Some(Status(5, 1, 1)), "No such user here")
            }
            DeliveryError::RelayDenied => Reply::new(
                554,
                Some(Status(5, 7, 1)),
                "Relay access denied: this server only accepts mail for its own domains",
            ),
            DeliveryError::OverQuota { temporary: false } => Reply::new(
                552,
                Some(Status(5, 2, 2)),
                "Mailbox full: the message would exceed the quota",
            ),
            DeliveryError::OverQuota { temporary: true } => Reply::new(
                452,
                Some(Status(4, 2, 2)),
                "Mailbox full: the message would exceed the quota, try again later",
            ),
            DeliveryError::TooBig => Reply::new(
                552,
                Some(Status(5, 3, 4)),
                "Message size exceeds the fixed maximum message size",
            ),
            DeliveryError::Temporary => Reply::new(
                451,
                Some(Status(4, 3, 0)),
                "Temporary local failure, try again later",
            ),
            DeliveryError::Permanent => Reply::new(
                554,
                Some(Status(5, 3, 0)),
                "Local delivery failed permanently",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(reply: &Reply) -> String {
        let mut out = Vec::new();
        reply.encode(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn single_and_multi_line() {
        assert_eq!(
            wire(&Reply::new(250, Some(Status(2, 1, 0)), "Ok")),
            "250 2.1.0 Ok\r\n"
        );
        let ehlo = Reply {
            code: 250,
            status: None,
            lines: vec!["mx".into(), "PIPELINING".into(), "SIZE 10".into()],
        };
        assert_eq!(wire(&ehlo), "250-mx\r\n250-PIPELINING\r\n250 SIZE 10\r\n");
        assert_eq!(wire(&Reply::new(221, None, "a\r\nb")), "221 a  b\r\n");
    }

    #[test]
    fn delivery_errors_have_the_documented_codes() {
        let code = |e: DeliveryError| {
            let r = e.reply();
            (r.code, r.status.map(|s| s.to_string()).unwrap_or_default())
        };
        assert_eq!(code(DeliveryError::UnknownUser), (550, "5.1.1".into()));
        assert_eq!(code(DeliveryError::RelayDenied), (554, "5.7.1".into()));
        assert_eq!(
            code(DeliveryError::OverQuota { temporary: false }),
            (552, "5.2.2".into())
        );
        assert_eq!(
            code(DeliveryError::OverQuota { temporary: true }),
            (452, "4.2.2".into())
        );
        assert!(DeliveryError::Temporary.reply().is_temporary());
    }
}
