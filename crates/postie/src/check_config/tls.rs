//! The certificate and key: readable, PEM, belonging together, valid now and for a while,
//! naming the host clients connect to, and the key not readable by everyone.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use postie_net::{read_certs, ReloadableCert};
use x509_parser::extensions::GeneralName;

use super::files::can_read;
use super::report::Report;
use crate::privileges::SystemUser;
use postie::config::Config;

/// Renew before this many days are left (certbot renews at 30).
const RENEW_DAYS: i64 = 21;

pub(super) fn check(config: &Config, user: Option<&SystemUser>, report: &mut Report) {
    let Some((cert, key)) = &config.tls_files else {
        if !config.pop3.listen.is_empty() {
            report.warning(
                "no [tls]: POP3 offers no STLS, so passwords are accepted only from loopback",
                "add [tls] with cert and key (Let's Encrypt's fullchain.pem and privkey.pem)",
            );
        }
        return;
    };
    for (path, what) in [(cert, "certificate"), (key, "key")] {
        if let Some(user) = user {
            if let Ok(meta) = std::fs::metadata(path) {
                if !can_read(&meta, user) {
                    report.warning(
                        format!(
                            "[tls] {what} {}: user {} may not read it, so SIGHUP cannot reload it",
                            path.display(),
                            user.name
                        ),
                        format!(
                            "chgrp {} {} && chmod g+r {}",
                            user.name,
                            path.display(),
                            path.display()
                        ),
                    );
                }
            }
        }
    }
    if let Ok(meta) = std::fs::metadata(key) {
        if meta.permissions().mode() & 0o004 != 0 {
            report.warning(
                format!(
                    "[tls] key {} is readable by every local user (mode {:o})",
                    key.display(),
                    meta.mode() & 0o777
                ),
                format!("chmod o-r {}", key.display()),
            );
        }
    }
    match ReloadableCert::load(cert, key) {
        Ok(_) => report.ok(format!(
            "[tls] {} and {} load and belong together",
            cert.display(),
            key.display()
        )),
        Err(error) => {
            report.error(
                format!("[tls] {error}"),
                "point cert at the PEM chain (leaf first) and key at its private key (Let's Encrypt: fullchain.pem and privkey.pem)",
            );
            return;
        }
    }
    validity(cert, &config.autoconfig.host, report);
}

fn validity(path: &Path, host: &str, report: &mut Report) {
    let Ok(chain) = read_certs(path) else {
        return;
    };
    let Some(leaf) = chain.first() else {
        return;
    };
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(leaf.as_ref()) else {
        report.error(
            format!(
                "[tls] {}: the first certificate does not parse as X.509",
                path.display()
            ),
            "replace it with the certificate your CA issued",
        );
        return;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let validity = parsed.validity();
    let not_after = validity.not_after.timestamp();
    if validity.not_before.timestamp() > now {
        report.error(
            format!(
                "[tls] {}: not valid before {}",
                path.display(),
                validity.not_before
            ),
            "check the system clock, or use a certificate valid now",
        );
    } else if not_after <= now {
        report.error(
            format!(
                "[tls] {}: expired on {}",
                path.display(),
                validity.not_after
            ),
            "renew it (certbot renew), then systemctl reload postie",
        );
    } else if not_after - now < RENEW_DAYS * 86_400 {
        report.warning(
            format!(
                "[tls] {}: expires on {}",
                path.display(),
                validity.not_after
            ),
            "renew it soon, then systemctl reload postie",
        );
    } else {
        report.ok(format!(
            "[tls] certificate valid until {}",
            validity.not_after
        ));
    }
    let names: Vec<String> = match parsed.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|name| match name {
                GeneralName::DNSName(dns) => Some(dns.to_ascii_lowercase()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let host = host.to_ascii_lowercase();
    let covered = names.iter().any(|name| match name.strip_prefix("*.") {
        Some(parent) => host.split_once('.').is_some_and(|(_, rest)| rest == parent),
        None => *name == host,
    });
    if covered {
        report.ok(format!("[tls] the certificate names {host}"));
    } else {
        report.warning(
            format!("[tls] the certificate names {} but clients connect to {host}", if names.is_empty() { "no host".to_owned() } else { names.join(", ") }),
            "get a certificate for that name, or set hostname (or [autoconfig] host) to a name it carries",
        );
    }
}
