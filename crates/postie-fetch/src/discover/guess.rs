//! The last resort: guessing `pop3.D`, `pop.D`, `mail.D` and `D` on 995 (implicit TLS), then
//! on 110 with STLS, all at once, each with a short timeout. A guess counts only when it
//! answers POP3 (`+OK`) over TLS; a port without STLS is never taken (the password would
//! cross in the clear). Certificates are not judged here: the login test does that.

use std::thread;
use std::time::Duration;

use super::{LoginName, OAuth, ServerChoice};
use crate::conn::Connection;
use crate::login;
use crate::target::{Target, TlsMode};
use crate::tls::{self, Trust};

/// How long each guess may take to connect and to answer.
const GUESS_TIMEOUT: Duration = Duration::from_secs(3);

/// The guesses for `domain`, in order of preference.
pub fn candidates(domain: &str) -> Vec<Target> {
    let mut out = Vec::new();
    for tls in [TlsMode::Implicit, TlsMode::Starttls] {
        for prefix in ["pop3.", "pop.", "mail.", ""] {
            out.push(Target {
                host: format!("{prefix}{domain}"),
                port: tls.default_port(),
                tls,
            });
        }
    }
    out
}

/// Tries every candidate in parallel; the first in preference order that speaks POP3 over
/// TLS, and what each of the others answered.
pub fn first_answering(domain: &str) -> (Option<ServerChoice>, Vec<(Target, String)>) {
    let targets = candidates(domain);
    let results: Vec<Result<(), String>> = thread::scope(|scope| {
        let handles: Vec<_> = targets
            .iter()
            .map(|target| scope.spawn(move || try_target(target)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("the probe failed".into())))
            .collect()
    });
    let mut tried = Vec::new();
    let mut found = None;
    for (target, result) in targets.into_iter().zip(results) {
        match result {
            Ok(()) if found.is_none() => {
                found = Some(ServerChoice {
                    target,
                    user: LoginName::AddressThenLocalPart,
                    oauth: OAuth::No,
                    sign_in: None,
                    note: None,
                })
            }
            Ok(()) => tried.push((target, "answers too (not needed)".into())),
            Err(reason) => tried.push((target, reason)),
        }
    }
    (found, tried)
}

fn try_target(target: &Target) -> Result<(), String> {
    let (config, seen) = tls::client_config(&Trust::Insecure, true).map_err(|e| e.to_string())?;
    let mut conn =
        Connection::open(target, config, seen, GUESS_TIMEOUT).map_err(|e| e.to_string())?;
    login::greeting(&mut conn).map_err(|e| e.to_string())?;
    if target.tls == TlsMode::Starttls {
        let capa = login::capa(&mut conn).map_err(|e| e.to_string())?;
        if !capa.is_some_and(|c| c.stls) {
            conn.close();
            return Err(
                "POP3 without STLS: not used, the password would cross in the clear".into(),
            );
        }
        login::starttls(&mut conn).map_err(|e| e.to_string())?;
    }
    conn.session.quit();
    let _ = login::reply(&mut conn, "QUIT");
    conn.close();
    Ok(())
}
