//! What every session of one server shares, and the cell that holds the current settings.

use std::sync::{Arc, RwLock};

use postie_auth::{Authenticator, BearerMechanism, Mechanism};
use postie_net::ConnectionLimits;
use postie_proto::Capabilities;
use tokio_rustls::TlsAcceptor;

use crate::config::Pop3Config;
use crate::login_policy::{FailureBrake, LoginRecords};
use crate::recent_sessions::RecentSessions;

/// What every session of one server shares. Rebuilt on reload; the limits, the failure and
/// login records, the store and the users carry over.
pub(crate) struct Shared<S, U> {
    pub(crate) config: Pop3Config,
    pub(crate) store: Arc<S>,
    pub(crate) auth: Arc<Authenticator<U>>,
    pub(crate) acceptor: Option<TlsAcceptor>,
    pub(crate) limits: Arc<ConnectionLimits>,
    pub(crate) brake: Arc<FailureBrake>,
    pub(crate) login_records: Arc<dyn LoginRecords>,
    pub(crate) recent_sessions: Arc<RecentSessions>,
    pub(crate) capabilities: Capabilities,
}

impl<S, U> Shared<S, U> {
    pub(crate) fn new(
        config: Pop3Config,
        store: S,
        auth: Authenticator<U>,
        login_records: Arc<dyn LoginRecords>,
    ) -> Self {
        Shared {
            acceptor: config.tls.clone().map(TlsAcceptor::from),
            limits: ConnectionLimits::new(config.max_connections, config.max_connections_per_ip),
            brake: Arc::new(FailureBrake::new(config.failure_delay)),
            login_records,
            recent_sessions: Arc::default(),
            capabilities: capabilities(&config),
            store: Arc::new(store),
            auth: Arc::new(auth),
            config,
        }
    }

    /// The same server with new settings.
    pub(crate) fn with_config(&self, config: Pop3Config) -> Self {
        self.limits
            .set_maxima(config.max_connections, config.max_connections_per_ip);
        self.brake.set_base(config.failure_delay);
        Shared {
            acceptor: config.tls.clone().map(TlsAcceptor::from),
            capabilities: capabilities(&config),
            store: Arc::clone(&self.store),
            auth: Arc::clone(&self.auth),
            limits: Arc::clone(&self.limits),
            brake: Arc::clone(&self.brake),
            login_records: Arc::clone(&self.login_records),
            recent_sessions: Arc::clone(&self.recent_sessions),
            config,
        }
    }
}

/// The settings new connections get; replaced whole on reload.
pub(crate) type Current<S, U> = Arc<RwLock<Arc<Shared<S, U>>>>;

pub(crate) fn latest<S, U>(cell: &Current<S, U>) -> Arc<Shared<S, U>> {
    Arc::clone(&cell.read().unwrap_or_else(|e| e.into_inner()))
}

fn capabilities(config: &Pop3Config) -> Capabilities {
    // A bearer token is as good as a password to whoever reads it: offered like PLAIN.
    let bearer: &[BearerMechanism] = match config.bearer_tokens {
        Some(_) => &BearerMechanism::ALL,
        None => &[],
    };
    let bearer = bearer.iter().map(|m| m.as_str().to_owned());
    Capabilities {
        sasl: Mechanism::ALL
            .iter()
            .map(|m| m.as_str().to_owned())
            .chain(bearer.clone())
            .collect(),
        plaintext_sasl: [Mechanism::Plain, Mechanism::Login]
            .iter()
            .map(|m| m.as_str().to_owned())
            .chain(bearer)
            .collect(),
        implementation: format!("postie-{}", env!("CARGO_PKG_VERSION")),
        login_delay_secs: config
            .login_delay
            .map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX)),
        expire: config.expire,
    }
}
