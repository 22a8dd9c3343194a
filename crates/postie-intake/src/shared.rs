//! What every intake session shares.

use std::sync::Arc;

use postie_net::ConnectionLimits;
use postie_types::limits::SMTP_MAX_PER_ADDRESS;
use tokio_rustls::TlsAcceptor;

use crate::config::IntakeConfig;
use crate::delivery::Deliverer;

/// What every session of the intake reads: its settings, the delivery pipeline, TLS.
pub(crate) struct Shared<S, U> {
    pub(crate) config: IntakeConfig,
    pub(crate) deliverer: Arc<Deliverer<S, U>>,
    pub(crate) acceptor: Option<TlsAcceptor>,
    /// All connections of both doors, and those of each address on the SMTP door.
    pub(crate) limits: Arc<ConnectionLimits>,
}

impl<S, U> Shared<S, U> {
    pub(crate) fn new(config: IntakeConfig, deliverer: Deliverer<S, U>) -> Self {
        Shared {
            acceptor: config.tls.clone().map(TlsAcceptor::from),
            limits: ConnectionLimits::new(config.max_connections, SMTP_MAX_PER_ADDRESS),
            deliverer: Arc::new(deliverer),
            config,
        }
    }
}
