//! The trace fields `received_header = true` puts on top of each message delivered, so
//! filters downstream can tell the accounts mail came through apart. They are written into
//! the message like its own content (after a stub's marker, which stays first so stubs are
//! still found by it); the journal's keys (UIDL, or the SHA-256 of what the server sent)
//! never include them.

use crate::dest::maildir::host_name;
use postie_types::UtcTime;

/// `Received:` and `X-Postie-Account:` for one message, CRLF-terminated as RETR gives
/// content. `server` is the POP3 host, `uidl` the message's UIDL when the server has them,
/// `now` the time of delivery (seconds since the epoch).
pub fn fields(server: &str, account: &str, uidl: Option<&str>, now: u64) -> Vec<u8> {
    let uidl = uidl.map(|u| format!(", uidl {u}")).unwrap_or_default();
    format!(
        "Received: from {server} by {} (postie fetch) with POP3\r\n\t(account {account}{uidl}); {}\r\nX-Postie-Account: {account}\r\n",
        host_name(),
        rfc5322_date(now)
    )
    .into_bytes()
}

/// `Thu, 1 Jan 1970 00:00:00 +0000`.
fn rfc5322_date(secs: u64) -> String {
    UtcTime::from_unix(secs).rfc5322()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_name_the_account_and_the_message() {
        assert_eq!(rfc5322_date(0), "Thu, 1 Jan 1970 00:00:00 +0000");
        assert_eq!(
            rfc5322_date(1_796_083_209),
            "Tue, 1 Dec 2026 00:00:09 +0000"
        );
        let text = String::from_utf8(fields("pop.example.org", "work", Some("u1"), 0)).unwrap();
        assert!(text.starts_with("Received: from pop.example.org by "));
        assert!(
            text.contains("(postie fetch) with POP3\r\n\t(account work, uidl u1); Thu, 1 Jan 1970")
        );
        assert!(text.ends_with("\r\nX-Postie-Account: work\r\n"));
        let text = String::from_utf8(fields("h", "work", None, 0)).unwrap();
        assert!(text.contains("(account work); "));
    }
}
