//! `[mail] store = "postgres"`: the database is reached, takes writes, and has this
//! postie's schema; with `[auth] users = "postgres"`, how many users it holds.

use std::time::Duration;

use postie::config::{Config, StoreConfig, UserSource};
use postie_store_pg::{PgUsers, SCHEMA_VERSION};

use super::report::Report;
use crate::store::ConfiguredStore;

/// A database that does not answer within this is reported as unreachable.
const CONNECT_LIMIT: Duration = Duration::from_secs(10);

pub(super) fn check(config: &Config, report: &mut Report) {
    let ConfiguredStore::Postgres(store) = crate::store::open(&config.store) else {
        return;
    };
    let (transport, unusable_hint) = match &config.store {
        StoreConfig::Postgres { tls: Some(tls), .. } => (
            format!("over TLS, its certificate verified against [postgres] ca_file {}", tls.ca_file.display()),
            "check the url, the user, password_file and the server's pg_hba.conf; for TLS, that the server has ssl = on and a certificate signed by the ca_file's CA for the url's host name (or IP)",
        ),
        _ => (
            "without TLS (set [postgres] ca_file for TLS)".to_owned(),
            "check the url, the user, password_file and the server's pg_hba.conf (a hostssl-only server needs [postgres] ca_file)",
        ),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            report.error(format!("cannot start a runtime: {error}"), "retry");
            return;
        }
    };
    let status =
        runtime.block_on(async { tokio::time::timeout(CONNECT_LIMIT, store.status()).await });
    let migrate = format!("postie store migrate --config {}", config.path.display());
    match status {
        Err(_) => report.error(
            format!("[postgres] url: no answer within {CONNECT_LIMIT:?}"),
            "check the host names and ports of the url, and that PostgreSQL listens there",
        ),
        Ok(Err(error)) => report.error(
            format!("[postgres] url: cannot use the database: {error}"),
            unusable_hint,
        ),
        Ok(Ok(status)) => {
            if status.read_only {
                report.error(
                    format!("[postgres] reached {}, which is read-only (a standby)", status.server),
                    "list the primary in the url, or every host with ?target_session_attrs=read-write",
                );
            } else {
                report.ok(format!(
                    "[postgres] reached {}, read-write, {transport}",
                    status.server
                ));
            }
            match status.schema_version {
                Some(SCHEMA_VERSION) => {
                    report.ok(format!("[postgres] schema is current (version {SCHEMA_VERSION})"));
                    if config.users == UserSource::Postgres {
                        let users = PgUsers::new(store.pool().clone());
                        match runtime.block_on(users.count()) {
                            Ok(count) => report.ok(format!(
                                "[auth] users = \"postgres\": {count} users in the database"
                            )),
                            Err(error) => report.error(
                                format!("[auth] users = \"postgres\": {error}"),
                                "check the database's users table",
                            ),
                        }
                    }
                }
                Some(version) if version > SCHEMA_VERSION => report.error(
                    format!("[postgres] schema version {version} is newer than this postie's {SCHEMA_VERSION}"),
                    "run the postie version that migrated it",
                ),
                found => report.error(
                    format!(
                        "[postgres] schema is at version {}, this postie needs {SCHEMA_VERSION}",
                        found.unwrap_or(0)
                    ),
                    migrate,
                ),
            }
        }
    }
}
