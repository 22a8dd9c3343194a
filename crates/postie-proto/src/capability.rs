//! The CAPA list (RFC 2449), which depends on the session's state and security.

use crate::verb::Verb;

/// The EXPIRE policy a server announces (RFC 2449 section 6.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expire {
    Never,
    Days(u32),
}

/// What this server offers; the session filters it by state when answering CAPA.
#[derive(Debug, Clone)]
pub struct Capabilities {
    /// SASL mechanisms, as their names.
    pub sasl: Vec<String>,
    /// SASL mechanisms that send the password in the clear (hidden where plaintext is refused).
    pub plaintext_sasl: Vec<String>,
    pub implementation: String,
    pub login_delay_secs: Option<u32>,
    pub expire: Option<Expire>,
}

pub(crate) struct CapaContext {
    pub authenticated: bool,
    pub stls_offered: bool,
    pub plaintext_allowed: bool,
}

impl Capabilities {
    pub(crate) fn write(&self, ctx: &CapaContext, out: &mut Vec<u8>) {
        let mut line = |text: &str| {
            out.extend_from_slice(text.as_bytes());
            out.extend_from_slice(b"\r\n");
        };
        line("+OK Capability list follows");
        for &verb in Verb::ALL {
            if let Some(announcement) = self.announcement(verb, ctx) {
                line(&announcement);
            }
        }
        line("RESP-CODES");
        line("AUTH-RESP-CODE");
        line("PIPELINING");
        if let Some(delay) = self.login_delay_secs {
            line(&format!("LOGIN-DELAY {delay}"));
        }
        match self.expire {
            Some(Expire::Never) => line("EXPIRE NEVER"),
            Some(Expire::Days(days)) => line(&format!("EXPIRE {days}")),
            None => {}
        }
        line(&format!("IMPLEMENTATION {}", self.implementation));
        line(".");
    }

    /// The SASL mechanisms a client may use: those sending the password in the clear only
    /// where plaintext is allowed.
    pub(crate) fn mechanisms(&self, plaintext_allowed: bool) -> impl Iterator<Item = &str> {
        self.sasl
            .iter()
            .filter(move |m| plaintext_allowed || !self.plaintext_sasl.contains(m))
            .map(String::as_str)
    }

    /// The CAPA line announcing `verb` where the client may use it now, with its arguments.
    fn announcement(&self, verb: Verb, ctx: &CapaContext) -> Option<String> {
        let tag = verb.capability()?;
        let usable = match verb {
            Verb::User => !ctx.authenticated && ctx.plaintext_allowed,
            Verb::Stls => !ctx.authenticated && ctx.stls_offered,
            Verb::Auth | Verb::Utf8 => !ctx.authenticated,
            _ => true,
        };
        if !usable {
            return None;
        }
        match verb {
            Verb::Auth => {
                let mechanisms: Vec<&str> = self.mechanisms(ctx.plaintext_allowed).collect();
                (!mechanisms.is_empty()).then(|| format!("{tag} {}", mechanisms.join(" ")))
            }
            // RFC 6856 section 2.1: UTF-8 user names and passwords are accepted.
            Verb::Utf8 => Some(format!("{tag} USER")),
            _ => Some(tag.to_owned()),
        }
    }
}
