//! What mail clients are told to use: the server's real POP3 settings.

/// How users log in: with the part before the `@`, or the whole address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsernameForm {
    LocalPart,
    Address,
}

/// The settings autoconfig and Autodiscover hand out.
#[derive(Debug, Clone)]
pub struct MailSettings {
    /// The host name clients connect to (it must match the certificate).
    pub host: String,
    /// The implicit-TLS port (995), offered first.
    pub pop3s_port: Option<u16>,
    /// The plain port (110), offered second.
    pub pop3_port: Option<u16>,
    /// Whether the plain port offers STLS; without it the plain port is not offered at all,
    /// since postie refuses passwords there.
    pub starttls: bool,
    pub username: UsernameForm,
    /// The domains whose users this server serves; a request for another gets 404.
    /// Empty: any.
    pub domains: Vec<String>,
    pub display_name: String,
    /// The leave-on-server defaults for clients that honour them (Thunderbird).
    pub leave_on_server: bool,
    /// Days after which a client deletes what it left on the server; `None`: never.
    pub leave_on_server_days: Option<u32>,
    /// A submission server (host, port, STARTTLS on 587 or TLS on 465) for sending, if any.
    pub smtp: Option<(String, u16)>,
}

/// A mail address split into login and domain, when it looks like one.
pub(crate) struct Address<'a> {
    pub(crate) local: &'a str,
    pub(crate) domain: &'a str,
    pub(crate) whole: &'a str,
}

impl MailSettings {
    /// The address, if this server serves its domain.
    pub(crate) fn address<'a>(&self, text: &'a str) -> Option<Address<'a>> {
        let (local, domain) = text.rsplit_once('@')?;
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && local
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b"<>&\"'@".contains(&b));
        let domain_ok = !domain.is_empty()
            && domain.len() <= 253
            && domain
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !local_ok || !domain_ok || !self.serves(domain) {
            return None;
        }
        Some(Address {
            local,
            domain,
            whole: text,
        })
    }

    pub(crate) fn serves(&self, domain: &str) -> bool {
        self.domains.is_empty() || self.domains.iter().any(|d| d.eq_ignore_ascii_case(domain))
    }

    /// The login name for an address.
    pub(crate) fn login<'a>(&self, address: &Address<'a>) -> &'a str {
        match self.username {
            UsernameForm::LocalPart => address.local,
            UsernameForm::Address => address.whole,
        }
    }

    /// The POP3 endpoints to offer, best first: implicit TLS, then STLS.
    pub(crate) fn endpoints(&self) -> Vec<(u16, Security)> {
        let mut endpoints = Vec::new();
        if let Some(port) = self.pop3s_port {
            endpoints.push((port, Security::Tls));
        }
        if let (Some(port), true) = (self.pop3_port, self.starttls) {
            endpoints.push((port, Security::StartTls));
        }
        endpoints
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Security {
    Tls,
    StartTls,
}
