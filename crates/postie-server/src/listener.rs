//! Listeners: accept connections, apply limits, hand each to a session task; stop cleanly.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use postie_auth::{Authenticator, Mechanism, UserDb};
use postie_proto::Capabilities;
use postie_store::MailStore;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tracing::{info, warn};

use crate::config::Pop3Config;
use crate::conn::Conn;
use crate::error::ServerError;
use crate::limits::{ConnectionLimits, FailureTracker, LoginTimes, Refusal};
use crate::session;

/// What every session of one server shares.
pub(crate) struct Shared<S, U> {
    pub(crate) config: Pop3Config,
    pub(crate) store: Arc<S>,
    pub(crate) auth: Arc<Authenticator<U>>,
    pub(crate) acceptor: Option<TlsAcceptor>,
    pub(crate) limits: Arc<ConnectionLimits>,
    pub(crate) failures: FailureTracker,
    pub(crate) login_times: LoginTimes,
    pub(crate) capabilities: Capabilities,
}

/// A POP3 server, configured but not yet listening.
pub struct Pop3Server<S, U> {
    shared: Arc<Shared<S, U>>,
}

impl<S: MailStore, U: UserDb> Pop3Server<S, U> {
    pub fn new(config: Pop3Config, store: S, auth: Authenticator<U>) -> Result<Self, ServerError> {
        if !config.listen_tls.is_empty() && config.tls.is_none() {
            return Err(ServerError::TlsMissing);
        }
        let capabilities = Capabilities {
            sasl: Mechanism::ALL
                .iter()
                .map(|m| m.as_str().to_owned())
                .collect(),
            plaintext_sasl: [Mechanism::Plain, Mechanism::Login]
                .iter()
                .map(|m| m.as_str().to_owned())
                .collect(),
            implementation: format!("postie-{}", env!("CARGO_PKG_VERSION")),
            login_delay_secs: config
                .login_delay
                .map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX)),
            expire: config.expire,
        };
        let shared = Shared {
            acceptor: config.tls.clone().map(TlsAcceptor::from),
            limits: ConnectionLimits::new(config.max_connections, config.max_connections_per_ip),
            failures: FailureTracker::new(config.failure_delay),
            login_times: LoginTimes::default(),
            capabilities,
            store: Arc::new(store),
            auth: Arc::new(auth),
            config,
        };
        Ok(Pop3Server {
            shared: Arc::new(shared),
        })
    }

    /// Binds every configured listener.
    pub async fn bind(self) -> Result<RunningServer<S, U>, ServerError> {
        let mut listeners = Vec::new();
        let plain = self.shared.config.listen.iter().map(|a| (*a, false));
        let tls = self.shared.config.listen_tls.iter().map(|a| (*a, true));
        for (addr, implicit_tls) in plain.chain(tls).collect::<Vec<_>>() {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| ServerError::Bind { addr, source })?;
            listeners.push((listener, implicit_tls));
        }
        Ok(RunningServer {
            listeners,
            shared: self.shared,
        })
    }
}

/// A server whose listeners are bound.
pub struct RunningServer<S, U> {
    listeners: Vec<(TcpListener, bool)>,
    shared: Arc<Shared<S, U>>,
}

impl<S: MailStore, U: UserDb> RunningServer<S, U> {
    /// The bound addresses, with whether each is implicit TLS.
    pub fn local_addrs(&self) -> Vec<(SocketAddr, bool)> {
        self.listeners
            .iter()
            .filter_map(|(l, tls)| l.local_addr().ok().map(|a| (a, *tls)))
            .collect()
    }

    /// Serves until `shutdown` completes, then stops accepting, tells open sessions to end
    /// (a session that has not sent QUIT deletes nothing) and waits up to `grace` for them.
    pub async fn serve(self, shutdown: impl Future<Output = ()>, grace: Duration) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
        for (listener, implicit_tls) in self.listeners {
            let shared = Arc::clone(&self.shared);
            let stop = stop_rx.clone();
            let done = done_tx.clone();
            tokio::spawn(accept_loop(listener, implicit_tls, shared, stop, done));
        }
        drop(done_tx);
        shutdown.await;
        info!("shutting down: no new connections, ending open sessions");
        let _ = stop_tx.send(true);
        if tokio::time::timeout(grace, done_rx.recv()).await.is_err() {
            warn!("sessions still open after the shutdown grace period; closing them");
        }
    }
}

async fn accept_loop<S: MailStore, U: UserDb>(
    listener: TcpListener,
    implicit_tls: bool,
    shared: Arc<Shared<S, U>>,
    mut stop: watch::Receiver<bool>,
    done: mpsc::Sender<()>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                // Out of file descriptors and the like: back off instead of spinning.
                warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let shared = Arc::clone(&shared);
        let stop = stop.clone();
        let done = done.clone();
        tokio::spawn(async move {
            handle_connection(stream, peer, implicit_tls, shared, stop).await;
            drop(done);
        });
    }
}

async fn handle_connection<S: MailStore, U: UserDb>(
    stream: TcpStream,
    peer: SocketAddr,
    implicit_tls: bool,
    shared: Arc<Shared<S, U>>,
    stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let _slot = match shared.limits.admit(peer.ip()) {
        Ok(slot) => slot,
        Err(refusal) => {
            let text: &[u8] = match refusal {
                Refusal::ServerFull => b"-ERR [SYS/TEMP] Server is busy, try again later.\r\n",
                Refusal::AddressFull => {
                    b"-ERR [SYS/TEMP] Too many connections from your address.\r\n"
                }
            };
            warn!(%peer, ?refusal, "connection refused by limits");
            if !implicit_tls {
                let _ = stream.try_write(text);
            }
            return;
        }
    };
    let conn = if implicit_tls {
        let Some(acceptor) = &shared.acceptor else {
            return;
        };
        match tokio::time::timeout(shared.config.tls_handshake_timeout, acceptor.accept(stream))
            .await
        {
            Ok(Ok(tls)) => Conn::Tls(Box::new(tls)),
            Ok(Err(error)) => {
                info!(%peer, %error, "TLS handshake failed");
                return;
            }
            Err(_) => {
                info!(%peer, "TLS handshake timed out");
                return;
            }
        }
    } else {
        Conn::Plain(stream)
    };
    session::run(conn, peer, shared, stop).await;
}
