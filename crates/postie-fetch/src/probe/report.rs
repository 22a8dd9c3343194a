//! What `postie probe` found, as one value: printed as text for people, or as JSON.

use std::fmt::{self, Write as _};

use serde::Serialize;

use super::cert::CertReport;

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub target: String,
    pub tls_mode: String,
    pub dns: Option<Dns>,
    pub tcp: Option<Tcp>,
    pub tls: Option<TlsReport>,
    pub greeting: Option<String>,
    pub apop: bool,
    pub capa_before_tls: Option<Vec<String>>,
    pub capa_after_tls: Option<Vec<String>>,
    pub capa_after_login: Option<Vec<String>>,
    pub sasl: Vec<String>,
    pub login: Option<LoginReport>,
    pub stat: Option<Stat>,
    pub verdict: Verdict,
    pub hints: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Dns {
    pub host: String,
    pub addresses: Vec<String>,
    pub millis: f64,
}

#[derive(Debug, Serialize)]
pub struct Tcp {
    pub address: String,
    pub millis: f64,
}

#[derive(Debug, Serialize)]
pub struct TlsReport {
    pub version: String,
    pub cipher: String,
    pub chain: Vec<CertReport>,
    /// The certificate passed the configured check (system roots, CA file, pin).
    pub trusted: bool,
    pub name_matches: Option<bool>,
    pub problem: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct LoginReport {
    pub user: String,
    pub mechanism: String,
    pub ok: bool,
    pub message: String,
}

#[derive(Debug, Serialize)]
pub struct Stat {
    pub messages: u64,
    pub octets: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct Verdict {
    pub ok: bool,
    pub summary: String,
    pub exit_code: u8,
}

fn capa_lines(out: &mut String, title: &str, capa: &Option<Vec<String>>) {
    match capa {
        Some(lines) => {
            let _ = writeln!(out, "{title}: {}", lines.join(", "));
        }
        None => {
            let _ = writeln!(out, "{title}: (no CAPA answer)");
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        let _ = writeln!(out, "target:      {} ({})", self.target, self.tls_mode);
        if let Some(dns) = &self.dns {
            let _ = writeln!(
                out,
                "dns:         {} -> {} ({:.1} ms)",
                dns.host,
                dns.addresses.join(", "),
                dns.millis
            );
        }
        if let Some(tcp) = &self.tcp {
            let _ = writeln!(
                out,
                "tcp:         connected to {} in {:.1} ms",
                tcp.address, tcp.millis
            );
        }
        if let Some(tls) = &self.tls {
            let _ = writeln!(out, "tls:         {}, {}", tls.version, tls.cipher);
            for (i, cert) in tls.chain.iter().enumerate() {
                let _ = writeln!(out, "certificate {i}: subject {}", cert.subject);
                let _ = writeln!(out, "    issuer   {}", cert.issuer);
                if !cert.names.is_empty() {
                    let _ = writeln!(out, "    names    {}", cert.names.join(", "));
                }
                let _ = writeln!(
                    out,
                    "    valid    {} to {}{}",
                    cert.not_before,
                    cert.not_after,
                    if cert.expired {
                        " (EXPIRED)"
                    } else if cert.not_yet_valid {
                        " (NOT YET VALID)"
                    } else {
                        ""
                    }
                );
                let _ = writeln!(out, "    {}", cert.sha256);
            }
            let matches = match tls.name_matches {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "unknown",
            };
            let _ = writeln!(out, "host name:   matches the certificate: {matches}");
            match &tls.problem {
                None => {
                    let _ = writeln!(out, "trust:       certificate accepted");
                }
                Some(problem) => {
                    let _ = writeln!(out, "trust:       REFUSED: {problem}");
                }
            }
        }
        if let Some(greeting) = &self.greeting {
            let _ = writeln!(
                out,
                "greeting:    {greeting}{}",
                if self.apop { " (offers APOP)" } else { "" }
            );
        }
        if self.greeting.is_some() {
            capa_lines(&mut out, "capa", &self.capa_before_tls);
        }
        if self.capa_after_tls.is_some() || self.tls_mode == "STLS" && self.tls.is_some() {
            capa_lines(&mut out, "capa (TLS)", &self.capa_after_tls);
        }
        if !self.sasl.is_empty() {
            let _ = writeln!(out, "sasl:        {}", self.sasl.join(" "));
        }
        if let Some(login) = &self.login {
            let _ = writeln!(
                out,
                "login:       {} as {} with {}: {}",
                if login.ok { "ok" } else { "FAILED" },
                login.user,
                login.mechanism,
                login.message
            );
        }
        if self.login.as_ref().is_some_and(|l| l.ok) {
            capa_lines(&mut out, "capa (login)", &self.capa_after_login);
        }
        if let Some(stat) = &self.stat {
            let _ = writeln!(
                out,
                "stat:        {} messages, {} octets",
                stat.messages, stat.octets
            );
        }
        let _ = writeln!(
            out,
            "verdict:     {}: {}",
            if self.verdict.ok { "OK" } else { "PROBLEM" },
            self.verdict.summary
        );
        for hint in &self.hints {
            let _ = writeln!(out, "hint:        {hint}");
        }
        f.write_str(&out)
    }
}
