//! The POP3 verbs a server understands: the one list the parser, the command tally, CAPA and
//! the fuzz targets share, so that a verb cannot be added to one of them and forgotten in
//! another.

use std::fmt;

/// Declares [`Verb`], [`Verb::ALL`] and [`Verb::as_str`] from one list, so the three cannot
/// disagree.
macro_rules! verbs {
    ($($(#[$doc:meta])* $variant:ident = $keyword:literal,)*) => {
        /// A POP3 command keyword.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Verb {
            $($(#[$doc])* $variant,)*
        }

        impl Verb {
            /// Every verb, in declaration order (the order of the command tally).
            pub const ALL: &'static [Verb] = &[$(Verb::$variant,)*];

            /// The keyword as the RFCs spell it.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Verb::$variant => $keyword,)*
                }
            }
        }
    };
}

verbs! {
    User = "USER",
    Pass = "PASS",
    /// RFC 1939 section 7; offered when the greeting carries a timestamp.
    Apop = "APOP",
    /// RFC 5034.
    Auth = "AUTH",
    /// RFC 2449.
    Capa = "CAPA",
    /// RFC 2595.
    Stls = "STLS",
    /// RFC 6856.
    Utf8 = "UTF8",
    Stat = "STAT",
    List = "LIST",
    Retr = "RETR",
    Dele = "DELE",
    Noop = "NOOP",
    Rset = "RSET",
    Top = "TOP",
    Uidl = "UIDL",
    Quit = "QUIT",
}

impl Verb {
    /// The verb a command line's keyword names, in any case.
    pub fn parse(keyword: &[u8]) -> Option<Verb> {
        Verb::ALL
            .iter()
            .copied()
            .find(|verb| verb.as_str().as_bytes().eq_ignore_ascii_case(keyword))
    }

    /// The CAPA tag that announces this verb (RFC 2449 section 6), if any. The commands
    /// RFC 1939 requires need none; USER announces PASS with it; APOP is announced by the
    /// greeting's timestamp.
    pub const fn capability(self) -> Option<&'static str> {
        match self {
            Verb::User => Some("USER"),
            Verb::Auth => Some("SASL"),
            Verb::Stls => Some("STLS"),
            Verb::Utf8 => Some("UTF8"),
            Verb::Top => Some("TOP"),
            Verb::Uidl => Some("UIDL"),
            Verb::Pass
            | Verb::Apop
            | Verb::Capa
            | Verb::Stat
            | Verb::List
            | Verb::Retr
            | Verb::Dele
            | Verb::Noop
            | Verb::Rset
            | Verb::Quit => None,
        }
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_parse_in_any_case_and_nothing_else_does() {
        for &verb in Verb::ALL {
            assert_eq!(Verb::parse(verb.as_str().as_bytes()), Some(verb));
            assert_eq!(
                Verb::parse(verb.as_str().to_ascii_lowercase().as_bytes()),
                Some(verb)
            );
        }
        for keyword in [&b""[..], b"STA", b"STATS", b"XTND", b"PROXY"] {
            assert_eq!(Verb::parse(keyword), None, "{keyword:?}");
        }
    }
}
