//! What a server announces in its CAPA response (RFC 2449), as the client needs it.

/// A server's capabilities. `Default` is what a server that does not answer CAPA is assumed
/// to offer: only RFC 1939's commands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerCapabilities {
    /// Every line as sent, for display.
    pub lines: Vec<String>,
    pub top: bool,
    pub uidl: bool,
    pub user: bool,
    pub stls: bool,
    pub pipelining: bool,
    pub resp_codes: bool,
    pub utf8: bool,
    /// SASL mechanisms, upper-cased.
    pub sasl: Vec<String>,
    pub login_delay: Option<String>,
    pub expire: Option<String>,
    pub implementation: Option<String>,
}

impl ServerCapabilities {
    /// Adds one line of the CAPA list.
    pub(crate) fn add_line(&mut self, line: &[u8]) {
        let line = String::from_utf8_lossy(line).trim().to_owned();
        let mut words = line.split_ascii_whitespace();
        let keyword = words.next().unwrap_or("").to_ascii_uppercase();
        let argument = || line[keyword.len()..].trim().to_owned();
        match keyword.as_str() {
            "TOP" => self.top = true,
            "UIDL" => self.uidl = true,
            "USER" => self.user = true,
            "STLS" => self.stls = true,
            "PIPELINING" => self.pipelining = true,
            "RESP-CODES" => self.resp_codes = true,
            "UTF8" => self.utf8 = true,
            "SASL" => self.sasl = words.map(str::to_ascii_uppercase).collect(),
            "LOGIN-DELAY" => self.login_delay = Some(argument()),
            "EXPIRE" => self.expire = Some(argument()),
            "IMPLEMENTATION" => self.implementation = Some(argument()),
            _ => {}
        }
        self.lines.push(line);
    }

    pub fn has_sasl(&self, mechanism: &str) -> bool {
        self.sasl.iter().any(|m| m.eq_ignore_ascii_case(mechanism))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dovecot_capa() {
        let mut capa = ServerCapabilities::default();
        for line in [
            "CAPA",
            "TOP",
            "UIDL",
            "RESP-CODES",
            "PIPELINING",
            "AUTH-RESP-CODE",
            "STLS",
            "USER",
            "SASL PLAIN login scram-sha-256",
        ] {
            capa.add_line(line.as_bytes());
        }
        assert!(capa.top && capa.uidl && capa.pipelining && capa.stls && capa.user);
        assert_eq!(capa.sasl, ["PLAIN", "LOGIN", "SCRAM-SHA-256"]);
        assert!(capa.has_sasl("scram-sha-256"));
        assert!(!capa.utf8);
        assert_eq!(capa.lines.len(), 9);
    }
}
