//! SMTP and LMTP command lines (RFC 5321 section 4.1, RFC 2033, RFC 3030, RFC 6531) parsed
//! into [`Command`]s. Addresses stay bytes: with SMTPUTF8 they may be UTF-8, and nothing here
//! may panic on any input.

/// The greeting command a client used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hello {
    Helo,
    Ehlo,
    Lhlo,
}

/// The BODY parameter of MAIL (RFC 6152).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Body {
    #[default]
    SevenBit,
    EightBitMime,
}

/// The parameters of MAIL that postie understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MailParams {
    /// The size the client declares (RFC 1870).
    pub size: Option<u64>,
    pub body: Body,
    /// Addresses and headers may be UTF-8 (RFC 6531).
    pub smtputf8: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Hello {
        kind: Hello,
        domain: String,
    },
    /// `MAIL FROM:<path>`; the path without its angle brackets, empty for the null sender.
    Mail {
        from: Vec<u8>,
        params: MailParams,
    },
    /// `RCPT TO:<path>`; the path without angle brackets or source route.
    Rcpt {
        to: Vec<u8>,
    },
    Data,
    /// `BDAT <size> [LAST]` (RFC 3030): exactly `size` octets of the message follow.
    Bdat {
        size: u64,
        last: bool,
    },
    Rset,
    Noop,
    Quit,
    StartTls,
    Vrfy,
    Help,
}

/// Why a command line was refused; each maps to one reply in the session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("command unrecognized")]
    Unknown,
    #[error("syntax error: {0}")]
    Syntax(&'static str),
    /// A MAIL or RCPT parameter this server does not offer (RFC 5321: 555).
    #[error("unsupported parameter {0}")]
    Parameter(String),
    /// A `BDAT` whose size is not a number: the chunk cannot be skipped, so the connection must
    /// end.
    #[error("BDAT size is not a number")]
    BadChunkSize,
}

impl Command {
    pub fn parse(line: &[u8]) -> Result<Command, CommandError> {
        let (verb, rest) = match line.iter().position(|&b| b == b' ') {
            Some(space) => (&line[..space], &line[space + 1..]),
            None => (line, &b""[..]),
        };
        let verb = verb.to_ascii_uppercase();
        let no_args = |command: Command| {
            if rest.iter().all(|&b| b == b' ') {
                Ok(command)
            } else {
                Err(CommandError::Syntax("this command takes no arguments"))
            }
        };
        match &verb[..] {
            b"HELO" => hello(Hello::Helo, rest),
            b"EHLO" => hello(Hello::Ehlo, rest),
            b"LHLO" => hello(Hello::Lhlo, rest),
            b"MAIL" => mail(rest),
            b"RCPT" => rcpt(rest),
            b"DATA" => no_args(Command::Data),
            b"BDAT" => bdat(rest),
            b"RSET" => no_args(Command::Rset),
            // NOOP, VRFY and HELP may carry an argument that is ignored.
            b"NOOP" => Ok(Command::Noop),
            b"VRFY" => Ok(Command::Vrfy),
            b"HELP" => Ok(Command::Help),
            b"QUIT" => no_args(Command::Quit),
            b"STARTTLS" => no_args(Command::StartTls),
            _ => Err(CommandError::Unknown),
        }
    }
}

fn hello(kind: Hello, rest: &[u8]) -> Result<Command, CommandError> {
    let domain = rest
        .split(|&b| b == b' ')
        .find(|word| !word.is_empty())
        .ok_or(CommandError::Syntax(
            "a domain or address literal is required",
        ))?;
    if !domain.iter().all(|&b| b.is_ascii_graphic()) {
        return Err(CommandError::Syntax("invalid domain"));
    }
    Ok(Command::Hello {
        kind,
        domain: String::from_utf8_lossy(domain).into_owned(),
    })
}

/// Strips `keyword:` (any case, spaces allowed after the colon as many clients send them).
fn after_keyword<'a>(rest: &'a [u8], keyword: &[u8]) -> Result<&'a [u8], CommandError> {
    let head = rest
        .get(..keyword.len())
        .filter(|head| head.eq_ignore_ascii_case(keyword))
        .ok_or(CommandError::Syntax(
            "expected FROM:<address> or TO:<address>",
        ))?;
    let tail = &rest[head.len()..];
    let start = tail.iter().position(|&b| b != b' ').unwrap_or(tail.len());
    Ok(&tail[start..])
}

/// Splits `<path> params` into the path (brackets, source route removed) and the parameters.
fn path(input: &[u8]) -> Result<(Vec<u8>, &[u8]), CommandError> {
    let inner = input.strip_prefix(b"<").ok_or(CommandError::Syntax(
        "the address must be in angle brackets",
    ))?;
    let mut quoted = false;
    let mut escaped = false;
    let mut end = None;
    for (i, &b) in inner.iter().enumerate() {
        if escaped {
            escaped = false;
        } else if b == b'\\' {
            escaped = true;
        } else if b == b'"' {
            quoted = !quoted;
        } else if b == b'>' && !quoted {
            end = Some(i);
            break;
        }
    }
    let end = end.ok_or(CommandError::Syntax("missing '>' after the address"))?;
    let mut address = &inner[..end];
    if address.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return Err(CommandError::Syntax("control characters in the address"));
    }
    // An obsolete source route `@a,@b:user@dom` is ignored (RFC 5321 section 3.3).
    if address.starts_with(b"@") {
        let colon = address
            .iter()
            .position(|&b| b == b':')
            .ok_or(CommandError::Syntax("malformed source route"))?;
        address = &address[colon + 1..];
    }
    let params = &inner[end + 1..];
    if !params.is_empty() && !params.starts_with(b" ") {
        return Err(CommandError::Syntax("expected a space after the address"));
    }
    Ok((address.to_vec(), params))
}

fn mail(rest: &[u8]) -> Result<Command, CommandError> {
    let (from, params_text) = path(after_keyword(rest, b"FROM:")?)?;
    let mut params = MailParams::default();
    for param in params_text.split(|&b| b == b' ').filter(|p| !p.is_empty()) {
        let (key, value) = match param.iter().position(|&b| b == b'=') {
            Some(eq) => (&param[..eq], Some(&param[eq + 1..])),
            None => (param, None),
        };
        let key = key.to_ascii_uppercase();
        match (&key[..], value) {
            (b"SIZE", Some(value)) => {
                params.size = Some(decimal(value).ok_or(CommandError::Syntax("bad SIZE value"))?)
            }
            (b"BODY", Some(value)) if value.eq_ignore_ascii_case(b"7BIT") => {
                params.body = Body::SevenBit
            }
            (b"BODY", Some(value)) if value.eq_ignore_ascii_case(b"8BITMIME") => {
                params.body = Body::EightBitMime
            }
            (b"SMTPUTF8", None) => params.smtputf8 = true,
            _ => {
                return Err(CommandError::Parameter(
                    String::from_utf8_lossy(param).into_owned(),
                ))
            }
        }
    }
    Ok(Command::Mail { from, params })
}

fn rcpt(rest: &[u8]) -> Result<Command, CommandError> {
    let (to, params) = path(after_keyword(rest, b"TO:")?)?;
    if let Some(param) = params.split(|&b| b == b' ').find(|p| !p.is_empty()) {
        return Err(CommandError::Parameter(
            String::from_utf8_lossy(param).into_owned(),
        ));
    }
    if to.is_empty() {
        return Err(CommandError::Syntax("an empty recipient address"));
    }
    Ok(Command::Rcpt { to })
}

fn bdat(rest: &[u8]) -> Result<Command, CommandError> {
    let mut words = rest.split(|&b| b == b' ').filter(|w| !w.is_empty());
    let size = words
        .next()
        .and_then(decimal)
        .ok_or(CommandError::BadChunkSize)?;
    let last = match words.next() {
        None => false,
        Some(word) if word.eq_ignore_ascii_case(b"LAST") => true,
        Some(_) => return Err(CommandError::BadChunkSize),
    };
    if words.next().is_some() {
        return Err(CommandError::BadChunkSize);
    }
    Ok(Command::Bdat { size, last })
}

fn decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &d| {
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// The local part and the domain of an address (`local@domain`): the domain follows the last
/// `@`, as a quoted local part may hold `@` itself. `None` for the domain when there is none
/// (`postmaster`).
pub fn split_address(address: &[u8]) -> (&[u8], Option<&[u8]>) {
    match address.iter().rposition(|&b| b == b'@') {
        Some(at) => (&address[..at], Some(&address[at + 1..])),
        None => (address, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_the_envelope_commands() {
        assert_eq!(
            Command::parse(b"lhlo mx.example.org"),
            Ok(Command::Hello {
                kind: Hello::Lhlo,
                domain: "mx.example.org".into()
            })
        );
        assert_eq!(
            Command::parse(b"MAIL FROM:<a@b.org> SIZE=1000 BODY=8BITMIME SMTPUTF8"),
            Ok(Command::Mail {
                from: b"a@b.org".to_vec(),
                params: MailParams {
                    size: Some(1000),
                    body: Body::EightBitMime,
                    smtputf8: true
                }
            })
        );
        assert_eq!(
            Command::parse(b"mail from: <>"),
            Ok(Command::Mail {
                from: Vec::new(),
                params: MailParams::default()
            })
        );
        assert_eq!(
            Command::parse(b"RCPT TO:<@relay.org:\"a b\"@x.org>"),
            Ok(Command::Rcpt {
                to: b"\"a b\"@x.org".to_vec()
            })
        );
        assert_eq!(
            Command::parse(b"BDAT 42 LAST"),
            Ok(Command::Bdat {
                size: 42,
                last: true
            })
        );
        assert_eq!(Command::parse(b"STARTTLS"), Ok(Command::StartTls));
    }

    #[test]
    fn refuses_what_it_does_not_offer() {
        assert_eq!(
            Command::parse(b"MAIL FROM:<a@b> RET=FULL"),
            Err(CommandError::Parameter("RET=FULL".into()))
        );
        assert_eq!(
            Command::parse(b"RCPT TO:<a@b> NOTIFY=NEVER"),
            Err(CommandError::Parameter("NOTIFY=NEVER".into()))
        );
        assert_eq!(Command::parse(b"BDAT x"), Err(CommandError::BadChunkSize));
        assert_eq!(Command::parse(b"EXPN x"), Err(CommandError::Unknown));
        assert!(matches!(
            Command::parse(b"MAIL FROM:a@b"),
            Err(CommandError::Syntax(_))
        ));
        assert!(matches!(
            Command::parse(b"RCPT TO:<>"),
            Err(CommandError::Syntax(_))
        ));
    }

    #[test]
    fn splits_addresses() {
        assert_eq!(
            split_address(b"\"a@b\"@x.org"),
            (&b"\"a@b\""[..], Some(&b"x.org"[..]))
        );
        assert_eq!(split_address(b"postmaster"), (&b"postmaster"[..], None));
    }

    proptest! {
        #[test]
        fn parser_never_panics(line in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Command::parse(&line);
        }

        #[test]
        fn paths_survive_parameters(local in "[a-z0-9.+]{1,20}", size in any::<u64>()) {
            let line = format!("MAIL FROM:<{local}@example.org> SIZE={size}");
            match Command::parse(line.as_bytes()) {
                Ok(Command::Mail { from, params }) => {
                    prop_assert_eq!(from, format!("{local}@example.org").into_bytes());
                    prop_assert_eq!(params.size, Some(size));
                }
                other => prop_assert!(false, "{:?}", other),
            }
        }
    }
}
