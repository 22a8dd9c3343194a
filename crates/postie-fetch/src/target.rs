//! Where to connect: host, port and how TLS starts, from `server = "host:port"` plus `tls`,
//! or from a `pop3s://user@host:port` URL.

use std::fmt;

use crate::error::FetchError;

/// How TLS starts on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// TLS from the first byte (POP3S, port 995).
    Implicit,
    /// Plain first, then STLS (RFC 2595, port 110).
    Starttls,
    /// No TLS at all: passwords and mail cross the network readable by anyone on the path.
    None,
}

impl TlsMode {
    pub fn default_port(self) -> u16 {
        match self {
            TlsMode::Implicit => 995,
            TlsMode::Starttls | TlsMode::None => 110,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl Target {
    /// Parses `host`, `host:port`, `[v6]` or `[v6]:port`.
    pub fn parse(server: &str, tls: TlsMode) -> Result<Target, String> {
        let (host, port) = if let Some(rest) = server.strip_prefix('[') {
            let (host, after) = rest
                .split_once(']')
                .ok_or_else(|| format!("{server:?}: missing ']' after the IPv6 address"))?;
            match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None if after.is_empty() => (host, None),
                None => return Err(format!("{server:?}: expected ':port' after ']'")),
            }
        } else if server.matches(':').count() > 1 {
            // A bare IPv6 address.
            (server, None)
        } else {
            match server.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (server, None),
            }
        };
        if host.is_empty() || host.contains(['/', ' ', '@']) {
            return Err(format!("{server:?} is not a host name or address"));
        }
        let port = match port {
            None => tls.default_port(),
            Some(port) => port
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| format!("{server:?}: the port must be a number from 1 to 65535"))?,
        };
        Ok(Target {
            host: host.to_owned(),
            port,
            tls,
        })
    }
}

/// A `pop3s://[user@]host[:port]` or `pop3://…` URL, as `postie fetch` and `postie probe`
/// take them on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PopUrl {
    pub target: Target,
    pub user: Option<String>,
}

impl PopUrl {
    pub fn parse(url: &str) -> Result<PopUrl, FetchError> {
        let usage = |why: &str| {
            FetchError::Usage(format!(
                "{url:?}: {why}; expected pop3s://[user@]host[:port] (implicit TLS) or pop3://[user@]host[:port] (STLS)"
            ))
        };
        let (tls, rest) = if let Some(rest) = url.strip_prefix("pop3s://") {
            (TlsMode::Implicit, rest)
        } else if let Some(rest) = url.strip_prefix("pop3://") {
            (TlsMode::Starttls, rest)
        } else {
            return Err(usage("unknown scheme"));
        };
        let rest = rest.trim_end_matches('/');
        let (user, server) = match rest.rsplit_once('@') {
            Some((user, server)) => (Some(percent_decode(user).map_err(|e| usage(&e))?), server),
            None => (None, rest),
        };
        let target = Target::parse(server, tls).map_err(|e| usage(&e))?;
        Ok(PopUrl { target, user })
    }
}

fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("a '%' in the user name must start a %XX escape")?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "the user name is not UTF-8".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_and_urls() {
        let t = Target::parse("pop.example.org", TlsMode::Implicit).unwrap();
        assert_eq!((t.host.as_str(), t.port), ("pop.example.org", 995));
        let t = Target::parse("[::1]:1995", TlsMode::Implicit).unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 1995));
        assert_eq!(Target::parse("::1", TlsMode::Starttls).unwrap().port, 110);
        assert!(Target::parse("host:0", TlsMode::Implicit).is_err());
        assert!(Target::parse("", TlsMode::Implicit).is_err());
        let url = PopUrl::parse("pop3s://alice%40example.com@127.0.0.1:1995").unwrap();
        assert_eq!(url.user.as_deref(), Some("alice@example.com"));
        assert_eq!(url.target.port, 1995);
        let url = PopUrl::parse("pop3://a@b@host").unwrap();
        assert_eq!(
            (url.user.as_deref(), url.target.tls),
            (Some("a@b"), TlsMode::Starttls)
        );
        assert!(PopUrl::parse("imap://host").is_err());
    }
}
