//! POP3 commands as a server receives them (RFC 1939, 2449, 2595, 5034, 6856).

use postie_types::{parse_decimal, MsgNum, Secret, UserName, UserNameError};

use crate::verb::Verb;

/// A syntactically valid command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    User(UserName),
    Pass(Secret),
    Apop {
        user: UserName,
        digest: Vec<u8>,
    },
    /// `AUTH` alone lists the mechanisms; with a name it starts an exchange.
    Auth {
        mechanism: Option<String>,
        initial_response: Option<Vec<u8>>,
    },
    Capa,
    Stls,
    Utf8,
    Stat,
    List(Option<MsgNum>),
    Retr(MsgNum),
    Dele(MsgNum),
    Noop,
    Rset,
    Top {
        msg: MsgNum,
        lines: u64,
    },
    Uidl(Option<MsgNum>),
    Quit,
}

/// Why a command line was refused; each maps to one `-ERR` line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("Unknown command")]
    Unknown,
    #[error("Invalid arguments for {0}")]
    Arguments(Verb),
    #[error("Invalid message number")]
    MessageNumber,
    #[error("Invalid user name: {0}")]
    UserName(#[from] UserNameError),
    #[error("Invalid base64 data")]
    Base64,
    #[error("Command line contains a NUL byte")]
    Nul,
    /// A PROXY protocol header where a command belongs: the connection comes from an
    /// address not trusted to send one, or from a client pretending to be a proxy.
    #[error("A PROXY header is accepted only from the configured proxies")]
    ProxyHeader,
}

impl Command {
    /// Parses one command line (without its line ending).
    pub fn parse(line: &[u8]) -> Result<Command, CommandError> {
        if line.contains(&0) {
            return Err(CommandError::Nul);
        }
        if line.starts_with(b"PROXY ") {
            return Err(CommandError::ProxyHeader);
        }
        let (keyword, rest) = match line.iter().position(|&b| b == b' ') {
            Some(space) => (&line[..space], Some(&line[space + 1..])),
            None => (line, None),
        };
        let verb = Verb::parse(keyword).ok_or(CommandError::Unknown)?;
        let args = Args::new(verb, rest);
        match verb {
            Verb::User => Ok(Command::User(UserName::parse(args.exactly_one()?)?)),
            // The whole rest of the line: passwords may contain spaces (RFC 1939 allows it).
            Verb::Pass => match rest {
                Some(password) if !password.is_empty() => {
                    Ok(Command::Pass(Secret::new(password.to_vec())))
                }
                _ => Err(CommandError::Arguments(verb)),
            },
            Verb::Apop => {
                let [user, digest] = args.exactly::<2>()?;
                if digest.len() != 32 || !digest.iter().all(u8::is_ascii_hexdigit) {
                    return Err(CommandError::Arguments(verb));
                }
                Ok(Command::Apop {
                    user: UserName::parse(user)?,
                    digest: digest.to_ascii_lowercase(),
                })
            }
            Verb::Auth => parse_auth(args),
            Verb::Capa => args.none().map(|()| Command::Capa),
            Verb::Stls => args.none().map(|()| Command::Stls),
            Verb::Utf8 => args.none().map(|()| Command::Utf8),
            Verb::Stat => args.none().map(|()| Command::Stat),
            Verb::List => Ok(Command::List(args.optional_msg()?)),
            Verb::Retr => Ok(Command::Retr(msg(args.exactly_one()?)?)),
            Verb::Dele => Ok(Command::Dele(msg(args.exactly_one()?)?)),
            Verb::Noop => args.none().map(|()| Command::Noop),
            Verb::Rset => args.none().map(|()| Command::Rset),
            Verb::Top => {
                let [number, lines] = args.exactly::<2>()?;
                let lines = parse_decimal(lines).ok_or(CommandError::Arguments(verb))?;
                Ok(Command::Top {
                    msg: msg(number)?,
                    lines,
                })
            }
            Verb::Uidl => Ok(Command::Uidl(args.optional_msg()?)),
            Verb::Quit => args.none().map(|()| Command::Quit),
        }
    }

    /// The verb, for logs and counters; never carries arguments (they may be secret).
    pub fn verb(&self) -> Verb {
        match self {
            Command::User(_) => Verb::User,
            Command::Pass(_) => Verb::Pass,
            Command::Apop { .. } => Verb::Apop,
            Command::Auth { .. } => Verb::Auth,
            Command::Capa => Verb::Capa,
            Command::Stls => Verb::Stls,
            Command::Utf8 => Verb::Utf8,
            Command::Stat => Verb::Stat,
            Command::List(_) => Verb::List,
            Command::Retr(_) => Verb::Retr,
            Command::Dele(_) => Verb::Dele,
            Command::Noop => Verb::Noop,
            Command::Rset => Verb::Rset,
            Command::Top { .. } => Verb::Top,
            Command::Uidl(_) => Verb::Uidl,
            Command::Quit => Verb::Quit,
        }
    }
}

fn msg(text: &[u8]) -> Result<MsgNum, CommandError> {
    MsgNum::parse(text).ok_or(CommandError::MessageNumber)
}

fn parse_auth(args: Args<'_>) -> Result<Command, CommandError> {
    let words = args.words();
    match words.as_slice() {
        [] => Ok(Command::Auth {
            mechanism: None,
            initial_response: None,
        }),
        [mechanism] | [mechanism, _] => {
            let mechanism = std::str::from_utf8(mechanism)
                .ok()
                .filter(|m| !m.is_empty() && m.len() <= 20)
                .filter(|m| {
                    m.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                })
                .ok_or(CommandError::Arguments(Verb::Auth))?
                .to_ascii_uppercase();
            let initial_response = match words.get(1) {
                None => None,
                Some(&b"=") => Some(Vec::new()),
                Some(encoded) => Some(decode_base64(encoded)?),
            };
            Ok(Command::Auth {
                mechanism: Some(mechanism),
                initial_response,
            })
        }
        _ => Err(CommandError::Arguments(Verb::Auth)),
    }
}

/// Decodes a SASL response or initial response (RFC 5034: standard base64 with padding).
pub(crate) fn decode_base64(encoded: &[u8]) -> Result<Vec<u8>, CommandError> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| CommandError::Base64)
}

/// The arguments after a verb's keyword, separated by single spaces.
struct Args<'a> {
    verb: Verb,
    rest: Option<&'a [u8]>,
}

impl<'a> Args<'a> {
    fn new(verb: Verb, rest: Option<&'a [u8]>) -> Self {
        Args { verb, rest }
    }

    fn invalid(&self) -> CommandError {
        CommandError::Arguments(self.verb)
    }

    fn words(&self) -> Vec<&'a [u8]> {
        match self.rest {
            None => Vec::new(),
            Some(rest) => rest.split(|&b| b == b' ').collect(),
        }
    }

    fn none(&self) -> Result<(), CommandError> {
        match self.rest {
            None => Ok(()),
            Some(_) => Err(self.invalid()),
        }
    }

    fn exactly<const N: usize>(&self) -> Result<[&'a [u8]; N], CommandError> {
        let words = self.words();
        if words.iter().any(|w| w.is_empty()) {
            return Err(self.invalid());
        }
        words.try_into().map_err(|_| self.invalid())
    }

    fn exactly_one(&self) -> Result<&'a [u8], CommandError> {
        self.exactly::<1>().map(|[word]| word)
    }

    fn optional_msg(&self) -> Result<Option<MsgNum>, CommandError> {
        match self.rest {
            None => Ok(None),
            Some(_) => msg(self.exactly_one()?).map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn n(value: u32) -> MsgNum {
        MsgNum::parse(value.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn rfc1939_commands() {
        assert_eq!(Command::parse(b"stat"), Ok(Command::Stat));
        assert_eq!(Command::parse(b"LIST"), Ok(Command::List(None)));
        assert_eq!(Command::parse(b"LIST 2"), Ok(Command::List(Some(n(2)))));
        assert_eq!(Command::parse(b"RETR 1"), Ok(Command::Retr(n(1))));
        assert_eq!(Command::parse(b"DELE 1"), Ok(Command::Dele(n(1))));
        assert_eq!(
            Command::parse(b"TOP 1 10"),
            Ok(Command::Top {
                msg: n(1),
                lines: 10
            })
        );
        assert_eq!(
            Command::parse(b"TOP 1 0"),
            Ok(Command::Top {
                msg: n(1),
                lines: 0
            })
        );
        assert_eq!(Command::parse(b"UIDL"), Ok(Command::Uidl(None)));
        assert_eq!(Command::parse(b"Quit"), Ok(Command::Quit));
        assert_eq!(
            Command::parse(b"APOP mrose c4c9334bac560ecc979e58001b3e22fb"),
            Ok(Command::Apop {
                user: UserName::parse(b"mrose").unwrap(),
                digest: b"c4c9334bac560ecc979e58001b3e22fb".to_vec()
            })
        );
    }

    #[test]
    fn password_keeps_its_spaces() {
        assert_eq!(
            Command::parse(b"PASS  my secret "),
            Ok(Command::Pass(Secret::new(b" my secret ".to_vec())))
        );
        assert_eq!(
            Command::parse(b"PASS"),
            Err(CommandError::Arguments(Verb::Pass))
        );
    }

    #[test]
    fn auth_forms() {
        assert_eq!(
            Command::parse(b"AUTH"),
            Ok(Command::Auth {
                mechanism: None,
                initial_response: None
            })
        );
        assert_eq!(
            Command::parse(b"AUTH plain AGRlbW8AZGVtbw=="),
            Ok(Command::Auth {
                mechanism: Some("PLAIN".into()),
                initial_response: Some(b"\0demo\0demo".to_vec())
            })
        );
        assert_eq!(
            Command::parse(b"AUTH PLAIN ="),
            Ok(Command::Auth {
                mechanism: Some("PLAIN".into()),
                initial_response: Some(Vec::new())
            })
        );
        assert_eq!(Command::parse(b"AUTH PLAIN !!!"), Err(CommandError::Base64));
    }

    #[test]
    fn malformed_lines() {
        assert_eq!(Command::parse(b""), Err(CommandError::Unknown));
        assert_eq!(Command::parse(b":STAT"), Err(CommandError::Unknown));
        assert_eq!(Command::parse(b"STATUS"), Err(CommandError::Unknown));
        assert_eq!(Command::parse(b"RETR 0"), Err(CommandError::MessageNumber));
        assert_eq!(
            Command::parse(b"RETR"),
            Err(CommandError::Arguments(Verb::Retr))
        );
        assert_eq!(
            Command::parse(b"RETR 1 2"),
            Err(CommandError::Arguments(Verb::Retr))
        );
        assert_eq!(
            Command::parse(b"LIST  1"),
            Err(CommandError::Arguments(Verb::List))
        );
        assert_eq!(
            Command::parse(b"STAT x"),
            Err(CommandError::Arguments(Verb::Stat))
        );
        assert_eq!(Command::parse(b"NO\0OP"), Err(CommandError::Nul));
        assert_eq!(
            Command::parse(b"TOP 1 -1"),
            Err(CommandError::Arguments(Verb::Top))
        );
        assert!(Command::parse(b"APOP mrose short").is_err());
    }

    #[test]
    fn verbs_never_carry_arguments() {
        let pass = Command::parse(b"PASS secret").unwrap();
        assert_eq!(pass.verb(), Verb::Pass);
        assert!(!format!("{pass:?}").contains("secret"));
    }

    proptest! {
        #[test]
        fn never_panics(line in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Command::parse(&line);
        }

        #[test]
        fn keyword_case_does_not_matter(verb in "(?i)(stat|noop|rset|quit|capa|stls|list|uidl)") {
            prop_assert_eq!(Command::parse(verb.as_bytes()), Command::parse(verb.to_ascii_uppercase().as_bytes()));
        }
    }
}
