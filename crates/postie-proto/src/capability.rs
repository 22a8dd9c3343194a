//! The CAPA list (RFC 2449), which depends on the session's state and security.

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
        line("TOP");
        line("UIDL");
        line("RESP-CODES");
        line("AUTH-RESP-CODE");
        line("PIPELINING");
        if !ctx.authenticated {
            if ctx.plaintext_allowed {
                line("USER");
            }
            let mechanisms: Vec<&str> = self
                .sasl
                .iter()
                .filter(|m| ctx.plaintext_allowed || !self.plaintext_sasl.contains(m))
                .map(String::as_str)
                .collect();
            if !mechanisms.is_empty() {
                line(&format!("SASL {}", mechanisms.join(" ")));
            }
            if ctx.stls_offered {
                line("STLS");
            }
            line("UTF8 USER");
        }
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
}
