//! The headers a delivery adds on top of a message, as Dovecot's LMTP adds them:
//! `Return-Path` (the envelope sender), `Delivered-To` (the envelope recipient) and, for mail
//! that came over the network, a `Received` trace line (RFC 5321 section 4.4).
//!
//! They take the line ending the message itself uses, so a file stays all-CRLF or all-LF.

use std::time::SystemTime;

use postie_types::UtcTime;

/// How the message arrived, for the `Received` header.
#[derive(Debug, Clone)]
pub struct Received {
    /// The name the client greeted with.
    pub helo: String,
    /// The client's address, `None` on a Unix socket.
    pub peer: Option<std::net::IpAddr>,
    /// This server's name.
    pub by: String,
    /// `LMTP`, `ESMTP`, `ESMTPS`, `UTF8SMTPS`… (RFC 3848, RFC 6531).
    pub with: String,
    /// An id for the logs.
    pub id: String,
    pub when: SystemTime,
}

/// The trace headers of one recipient's copy, in the order they go on top of the message.
pub fn trace_headers(
    from: &[u8],
    recipient: &[u8],
    received: Option<&Received>,
    crlf: bool,
) -> Vec<u8> {
    let eol: &[u8] = if crlf { b"\r\n" } else { b"\n" };
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"Return-Path: <");
    out.extend_from_slice(from);
    out.extend_from_slice(b">");
    out.extend_from_slice(eol);
    out.extend_from_slice(b"Delivered-To: ");
    out.extend_from_slice(recipient);
    out.extend_from_slice(eol);
    if let Some(r) = received {
        let peer = match r.peer {
            Some(ip) => format!("[{ip}]"),
            None => "local".to_owned(),
        };
        out.extend_from_slice(format!("Received: from {} ({peer})", r.helo).as_bytes());
        out.extend_from_slice(eol);
        out.extend_from_slice(format!("\tby {} with {}", r.by, r.with).as_bytes());
        out.extend_from_slice(eol);
        out.extend_from_slice(format!("\tid {} (envelope-from <", r.id).as_bytes());
        out.extend_from_slice(from);
        out.extend_from_slice(b">)");
        out.extend_from_slice(eol);
        out.extend_from_slice(b"\tfor <");
        out.extend_from_slice(recipient);
        out.extend_from_slice(format!(">; {}", rfc5322_date(r.when)).as_bytes());
        out.extend_from_slice(eol);
    }
    out
}

/// Whether a message uses CRLF line endings, judged by its first line (a message without a
/// line ending gets CRLF, the wire form).
pub fn uses_crlf(start: &[u8]) -> bool {
    match start.iter().position(|&b| b == b'\n') {
        Some(lf) => lf > 0 && start[lf - 1] == b'\r',
        None => true,
    }
}

/// `Fri, 27 Nov 2026 09:00:00 +0000`: the date in UTC, which needs no time zone database.
pub fn rfc5322_date(when: SystemTime) -> String {
    UtcTime::from_system(when).rfc5322()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn dates() {
        assert_eq!(rfc5322_date(UNIX_EPOCH), "Thu, 1 Jan 1970 00:00:00 +0000");
        let t = UNIX_EPOCH + Duration::from_secs(1_795_770_000);
        assert_eq!(rfc5322_date(t), "Fri, 27 Nov 2026 09:00:00 +0000");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc5322_date(leap), "Tue, 29 Feb 2000 00:00:00 +0000");
    }

    #[test]
    fn headers_follow_the_message_line_endings() {
        let received = Received {
            helo: "mx.example.net".into(),
            peer: Some("192.0.2.1".parse().unwrap()),
            by: "mail.example.org".into(),
            with: "LMTP".into(),
            id: "abc".into(),
            when: UNIX_EPOCH,
        };
        let crlf = trace_headers(b"a@b", b"u@example.org", Some(&received), true);
        assert_eq!(
            String::from_utf8(crlf).unwrap(),
            "Return-Path: <a@b>\r\nDelivered-To: u@example.org\r\n\
             Received: from mx.example.net ([192.0.2.1])\r\n\tby mail.example.org with LMTP\r\n\
             \tid abc (envelope-from <a@b>)\r\n\tfor <u@example.org>; Thu, 1 Jan 1970 00:00:00 +0000\r\n"
        );
        let lf = trace_headers(b"", b"u", None, false);
        assert_eq!(lf, b"Return-Path: <>\nDelivered-To: u\n");
        assert!(uses_crlf(b"Subject: x\r\n"));
        assert!(!uses_crlf(b"Subject: x\n"));
        assert!(!uses_crlf(b"\n"));
        assert!(uses_crlf(b"no newline"));
    }
}
