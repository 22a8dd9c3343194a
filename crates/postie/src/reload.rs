//! SIGHUP: the certificate and key, the passwd-file and the POP3 settings, each reloaded on
//! its own so that one broken file leaves the others' reload in effect and its own old
//! version in use, with the reason logged.

use std::path::PathBuf;
use std::sync::Arc;

use postie::config::{StoreConfig, UserSource};
use postie_metrics::METRICS;
use postie_net::ReloadableCert;
use postie_server::Pop3Reloader;
use tracing::{info, warn};

use postie::config::Config;

use crate::open_files::cap_connections;
use crate::user_db::ConfiguredUsers;

/// What a reload touches, and what it compares against to say what needs a restart.
pub struct Reloader {
    pub config_path: PathBuf,
    pub cert: Option<Arc<ReloadableCert>>,
    pub users: Arc<ConfiguredUsers>,
    pub pop3: Pop3Reloader<crate::store::ConfiguredStore, Arc<ConfiguredUsers>>,
    /// The settings read at start that only a restart changes.
    pub fixed: Fixed,
    /// The open-file limit `max_connections` is kept under.
    pub open_files: Option<u64>,
}

/// Settings whose change needs a restart.
#[derive(Debug, PartialEq, Eq)]
pub struct Fixed {
    passwd_file: PathBuf,
    users: UserSource,
    store: StoreConfig,
    tls_files: Option<(PathBuf, PathBuf)>,
    http_listen: Vec<std::net::SocketAddr>,
    http_trusted_proxies: postie_proto::proxy::ProxyNetworks,
    user: Option<String>,
}

impl Fixed {
    pub fn of(config: &Config) -> Self {
        Fixed {
            passwd_file: config.passwd_file.clone(),
            users: config.users,
            store: config.store.clone(),
            tls_files: config.tls_files.clone(),
            http_listen: config.http_listen.clone(),
            http_trusted_proxies: config.http_trusted_proxies.clone(),
            user: config.user.clone(),
        }
    }
}

impl Reloader {
    pub fn reload(&self) {
        let mut ok = true;
        if let Some(cert) = &self.cert {
            let (cert_path, key_path) = cert.paths();
            match cert.reload() {
                Ok(()) => {
                    info!(cert = %cert_path.display(), "reloaded the TLS certificate and key")
                }
                Err(error) => {
                    ok = false;
                    warn!(
                        cert = %cert_path.display(),
                        key = %key_path.display(),
                        %error,
                        "kept the TLS certificate in use: fix the files (PEM chain and its matching key) and send SIGHUP again"
                    );
                }
            }
        }
        // A database's users need no reload: every lookup reads the table.
        if let ConfiguredUsers::PasswdFile(users) = &*self.users {
            match users.reload() {
                Ok(count) => {
                    info!(path = %users.path().display(), users = count, "reloaded the passwd-file")
                }
                Err(error) => {
                    ok = false;
                    warn!(%error, "kept the users loaded before: fix the passwd-file and send SIGHUP again");
                }
            }
        }
        match Config::load_without_tls(&self.config_path) {
            Ok(mut config) => {
                cap_connections(&mut config, self.open_files);
                let mut restart = Vec::new();
                if Fixed::of(&config) != self.fixed {
                    restart.push(
                        "user, [auth] users or passwd_file, [mail], [tls] or [http]".to_owned(),
                    );
                }
                restart.extend(self.pop3.apply(config.pop3));
                info!(config = %self.config_path.display(), "reloaded the POP3 settings");
                for setting in restart {
                    warn!(%setting, "changed in the configuration: restart postie to apply it");
                }
            }
            Err(error) => {
                ok = false;
                warn!(error = %format!("{error:#}"), "kept the settings in use: fix the configuration file and send SIGHUP again");
            }
        }
        METRICS.reloads.inc([if ok { "ok" } else { "failed" }]);
    }
}
