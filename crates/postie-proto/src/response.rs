//! Status lines, and the one place where failures become wire answers.

/// Extended response codes (RFC 2449 section 8, RFC 3206).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RespCode {
    InUse,
    LoginDelay,
    Auth,
    SysTemp,
    SysPerm,
}

impl RespCode {
    pub fn as_str(self) -> &'static str {
        match self {
            RespCode::InUse => "IN-USE",
            RespCode::LoginDelay => "LOGIN-DELAY",
            RespCode::Auth => "AUTH",
            RespCode::SysTemp => "SYS/TEMP",
            RespCode::SysPerm => "SYS/PERM",
        }
    }
}

/// The kinds of failure a service reports to the session. [`ErrorKind::wire`] is the single
/// mapping from these to `-ERR` lines, as rustls maps its errors to alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Wrong user name or password; deliberately the same answer for both.
    BadCredentials,
    /// The account's own password, from a user who logs in with app passwords only.
    AppPasswordRequired,
    /// Password authentication refused on an unencrypted connection.
    PlaintextRefused,
    /// The maildrop is locked by another session.
    InUse,
    /// The user logged in too recently (LOGIN-DELAY).
    LoginDelay,
    /// A failure that may go away: retry later.
    Temporary,
    /// A failure that will not go away by retrying.
    Permanent,
}

impl ErrorKind {
    pub fn wire(self) -> (RespCode, &'static str) {
        match self {
            ErrorKind::BadCredentials => (RespCode::Auth, "Authentication failed."),
            ErrorKind::AppPasswordRequired => (
                RespCode::Auth,
                "This account takes app passwords only: log in with an app password made for this mail client, not the account password.",
            ),
            ErrorKind::PlaintextRefused => (
                RespCode::Auth,
                "Plaintext authentication disallowed on non-secure connections: use STLS or port 995.",
            ),
            ErrorKind::InUse => (RespCode::InUse, "Mailbox is locked by another POP3 session, try again later."),
            ErrorKind::LoginDelay => (RespCode::LoginDelay, "Logged in too recently, try again later."),
            ErrorKind::Temporary => (RespCode::SysTemp, "Temporary server failure, try again later."),
            ErrorKind::Permanent => (RespCode::SysPerm, "Server failure: contact the postmaster."),
        }
    }
}

pub(crate) fn write_ok(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(b"+OK");
    if !text.is_empty() {
        out.push(b' ');
        out.extend_from_slice(text.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

pub(crate) fn write_err(out: &mut Vec<u8>, code: Option<RespCode>, text: &str) {
    out.extend_from_slice(b"-ERR ");
    if let Some(code) = code {
        out.push(b'[');
        out.extend_from_slice(code.as_str().as_bytes());
        out.extend_from_slice(b"] ");
    }
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(b"\r\n");
}

pub(crate) fn write_error_kind(out: &mut Vec<u8>, kind: ErrorKind) {
    let (code, text) = kind.wire();
    write_err(out, Some(code), text);
}
