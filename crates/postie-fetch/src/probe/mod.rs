//! `postie probe`: "test the connection" as a mail client's setup wizard does, step by step,
//! ending with a verdict and what to change. It goes on past a refused certificate (to show
//! as much as it can) but then never sends a password.

mod cert;
mod report;

use postie_types::UserName;
use std::time::Duration;

use postie_proto::client::{ClientEvent, ServerCapabilities};

pub use cert::CertReport;
pub use report::Report;
use report::{Dns, LoginReport, Stat, Tcp, TlsReport, Verdict};

use crate::config::AuthChoice;
use crate::conn::Connection;
use crate::credentials::CredentialSource;
use crate::error::{ExitStatus, FetchError};
use crate::login::{self, LoginSpec};
use crate::target::{PopUrl, Target, TlsMode};
use crate::tls::{self, Trust};

pub struct ProbeOptions {
    pub url: PopUrl,
    /// Log in as this user (the URL's user if not given).
    pub user: Option<String>,
    pub credential: CredentialSource,
    /// The credential is an OAuth access token (XOAUTH2 or OAUTHBEARER, as CAPA offers).
    pub oauth: bool,
    pub auth: AuthChoice,
    pub trust: Trust,
    pub timeout: Duration,
    /// Seconds since the epoch, for certificate validity.
    pub now: i64,
}

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}

fn capa_lines(capa: &Option<ServerCapabilities>) -> Option<Vec<String>> {
    capa.as_ref().map(|c| c.lines.clone())
}

pub fn run(options: &ProbeOptions) -> Report {
    let target = &options.url.target;
    let mut report = Report {
        target: target.to_string(),
        tls_mode: match target.tls {
            TlsMode::Implicit => "implicit TLS",
            TlsMode::Starttls => "STLS",
            TlsMode::None => "no TLS",
        }
        .into(),
        ..Report::default()
    };
    let outcome = probe(options, &mut report);
    let (ok, exit, summary) = match outcome {
        Ok(summary) => {
            let trusted = report.tls.as_ref().is_none_or(|t| t.trusted);
            // A pinned certificate is accepted whatever its dates, but an expired one will
            // stop other clients and is worth a verdict of its own.
            let expired = report
                .tls
                .as_ref()
                .and_then(|t| t.chain.first())
                .is_some_and(|leaf| leaf.expired);
            if expired {
                (
                    false,
                    ExitStatus::Unavailable,
                    "the server's certificate has expired".to_owned(),
                )
            } else if trusted {
                (true, ExitStatus::Ok, summary)
            } else {
                (
                    false,
                    ExitStatus::Unavailable,
                    "the server's certificate is not acceptable".to_owned(),
                )
            }
        }
        Err(error) => {
            let exit = error.exit_status();
            (false, exit, error.to_string())
        }
    };
    add_hints(&mut report, target);
    report.verdict = Verdict {
        ok,
        summary,
        exit_code: exit.code(),
    };
    report
}

fn probe(options: &ProbeOptions, report: &mut Report) -> Result<String, FetchError> {
    let target = &options.url.target;
    let (config, seen) = tls::client_config(&options.trust, true)?;
    let mut conn = Connection::open_plain(target, config, seen, options.timeout)?;
    report.dns = Some(Dns {
        host: target.host.clone(),
        addresses: conn
            .timings
            .resolved
            .iter()
            .map(|a| a.ip().to_string())
            .collect(),
        millis: millis(conn.timings.resolve),
    });
    report.tcp = Some(Tcp {
        address: conn.timings.connected.to_string(),
        millis: millis(conn.timings.connect),
    });
    if target.tls == TlsMode::Implicit {
        if let Err(error) = conn.handshake() {
            if plain_pop3_answers(target, options.timeout) {
                report.hints.push(format!(
                    "{} answers in plaintext POP3: it is a plain port, not implicit TLS; use pop3://{} (STLS), or the implicit TLS port (995)",
                    target, target
                ));
            }
            return Err(error);
        }
        tls_report(&conn, report, options.now);
    }
    let greeting = match login::greeting(&mut conn) {
        Ok(greeting) => greeting,
        Err(error) => {
            if target.tls != TlsMode::Implicit
                && matches!(
                    error,
                    FetchError::Timeout { .. }
                        | FetchError::Protocol { .. }
                        | FetchError::Disconnected { .. }
                )
            {
                report.hints.push(format!(
                    "{target} sends no POP3 greeting in plaintext: it probably expects TLS at once; use pop3s://{target}"
                ));
            }
            return Err(error);
        }
    };
    report.greeting = Some(greeting.status.to_string());
    report.apop = greeting.apop_timestamp.is_some();
    let before = login::capa(&mut conn)?;
    report.capa_before_tls = capa_lines(&before);
    let mut current = before.clone();
    if target.tls == TlsMode::Starttls {
        if before.as_ref().is_some_and(|c| !c.stls) {
            report
                .hints
                .push("the server does not offer STLS here; try pop3s:// on port 995".into());
        }
        login::starttls(&mut conn)?;
        tls_report(&conn, report, options.now);
        let after = login::capa(&mut conn)?;
        report.capa_after_tls = capa_lines(&after);
        current = after;
    }
    report.sasl = current.as_ref().map(|c| c.sasl.clone()).unwrap_or_default();
    if before
        .as_ref()
        .is_some_and(|c| !c.user && !c.has_sasl("PLAIN") && !c.has_sasl("LOGIN"))
        && current
            .as_ref()
            .is_some_and(|c| c.user || c.has_sasl("PLAIN"))
    {
        report.hints.push("the server accepts passwords only after TLS (plaintext auth is refused before it): keep TLS on".into());
    }
    let user = options.user.clone().or_else(|| options.url.user.clone());
    let Some(user) = user else {
        conn.session.quit();
        let _ = login::reply(&mut conn, "QUIT");
        conn.close();
        return Ok("the server is reachable and speaks POP3; add --user to test a login".into());
    };
    if report.tls.as_ref().is_some_and(|t| !t.trusted) {
        return Err(FetchError::Tls {
            host: target.host.clone(),
            reason: "no login attempted: the certificate is not trusted, so the password could reach someone else".into(),
        });
    }
    let user_name =
        UserName::parse(user.as_bytes()).map_err(|e| FetchError::Usage(format!("--user: {e}")))?;
    let secret = options.credential.resolve()?;
    let plaintext_ok = conn.tls.is_some() || target.tls == TlsMode::None;
    let method = login::choose(
        options.auth,
        current.as_ref(),
        &greeting,
        plaintext_ok,
        options.oauth,
    )?;
    let spec = LoginSpec {
        user: &user_name,
        secret: &secret,
        sasl_initial_response: true,
    };
    let result = login::login(&mut conn, method, &spec);
    report.login = Some(LoginReport {
        user: user.clone(),
        mechanism: method.name().into(),
        ok: result.is_ok(),
        message: match &result {
            Ok(()) => "logged in".into(),
            Err(e) => e.to_string(),
        },
    });
    result?;
    if current.is_some() {
        report.capa_after_login = capa_lines(&login::capa(&mut conn)?);
    }
    conn.session.stat();
    if let ClientEvent::Stat(Ok(maildrop)) = conn.event("STAT")? {
        report.stat = Some(Stat {
            messages: maildrop.count,
            octets: maildrop.octets,
        });
    }
    conn.session.quit();
    let _ = login::reply(&mut conn, "QUIT");
    conn.close();
    Ok(format!("logged in as {user} with {}", method.name()))
}

fn tls_report(conn: &Connection, report: &mut Report, now: i64) {
    let seen = conn.seen();
    let info = conn.tls.clone();
    report.tls = Some(TlsReport {
        version: info.as_ref().map_or("?".into(), |i| i.version.clone()),
        cipher: info.as_ref().map_or("?".into(), |i| i.cipher.clone()),
        chain: seen
            .chain
            .iter()
            .map(|c| CertReport::from_der(c.as_ref(), now))
            .collect(),
        trusted: seen.problem.is_none(),
        name_matches: seen.name_matches,
        problem: seen.problem,
    });
}

/// Whether a fresh plain connection gets a `+OK` greeting (a plain port spoken to with TLS).
fn plain_pop3_answers(target: &Target, timeout: Duration) -> bool {
    let plain = Target {
        tls: TlsMode::None,
        ..target.clone()
    };
    let Ok((config, seen)) = tls::client_config(&Trust::Insecure, true) else {
        return false;
    };
    let Ok(mut conn) =
        Connection::open_plain(&plain, config, seen, timeout.min(Duration::from_secs(5)))
    else {
        return false;
    };
    let answered = matches!(conn.event("greeting"), Ok(ClientEvent::Greeting(_)));
    conn.close();
    answered
}

fn add_hints(report: &mut Report, target: &Target) {
    let Some(tls) = &report.tls else { return };
    let Some(leaf) = tls.chain.first() else {
        return;
    };
    let mut hints = Vec::new();
    if leaf.expired {
        hints.push(format!(
            "the certificate expired on {}: the server's administrator must renew it (clients will refuse it until then)",
            leaf.not_after
        ));
    }
    if leaf.not_yet_valid {
        hints.push(format!(
            "the certificate is valid only from {}: check this computer's clock",
            leaf.not_before
        ));
    }
    if tls.name_matches == Some(false) {
        hints.push(format!(
            "the certificate is for {}, not {}: connect with one of those names, or the server needs a certificate for {}",
            if leaf.names.is_empty() { leaf.subject.clone() } else { leaf.names.join(", ") },
            target.host,
            target.host
        ));
    }
    if !tls.trusted && !leaf.expired && tls.name_matches != Some(false) {
        hints.push(format!(
            "the certificate is not signed by a CA this system trusts: set ca_file to the CA's certificate, or pin this one with fingerprint = \"{}\"",
            leaf.sha256
        ));
    }
    report.hints.extend(hints);
}
