//! Listeners: accept connections, read PROXY headers from trusted load balancers, apply
//! limits, hand each connection to a session task; reload settings; stop cleanly.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use postie_auth::{Authenticator, Mechanism, UserDb};
use postie_metrics::{OpenConnection, METRICS};
use postie_proto::proxy::ProxyHeader;
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
use crate::{proxy, session};

/// After the grace period, how long sessions get to notice they are told to end (a deletion
/// being written finishes first; the runtime waits for it in any case).
const FINAL_WAIT: Duration = Duration::from_secs(5);

/// What every session of one server shares. Rebuilt on reload; the limits, the failure and
/// login records, the store and the users carry over.
pub(crate) struct Shared<S, U> {
    pub(crate) config: Pop3Config,
    pub(crate) store: Arc<S>,
    pub(crate) auth: Arc<Authenticator<U>>,
    pub(crate) acceptor: Option<TlsAcceptor>,
    pub(crate) limits: Arc<ConnectionLimits>,
    pub(crate) failures: Arc<FailureTracker>,
    pub(crate) login_times: Arc<LoginTimes>,
    pub(crate) capabilities: Capabilities,
}

impl<S, U> Shared<S, U> {
    /// The same server with new settings.
    fn with_config(&self, config: Pop3Config) -> Self {
        self.limits
            .set_maxima(config.max_connections, config.max_connections_per_ip);
        self.failures.set_base(config.failure_delay);
        Shared {
            acceptor: config.tls.clone().map(TlsAcceptor::from),
            capabilities: capabilities(&config),
            store: Arc::clone(&self.store),
            auth: Arc::clone(&self.auth),
            limits: Arc::clone(&self.limits),
            failures: Arc::clone(&self.failures),
            login_times: Arc::clone(&self.login_times),
            config,
        }
    }
}

/// The settings new connections get; replaced whole on reload.
type Current<S, U> = Arc<RwLock<Arc<Shared<S, U>>>>;

fn latest<S, U>(cell: &Current<S, U>) -> Arc<Shared<S, U>> {
    Arc::clone(&cell.read().unwrap_or_else(|e| e.into_inner()))
}

fn capabilities(config: &Pop3Config) -> Capabilities {
    Capabilities {
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
    }
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
        let shared = Shared {
            acceptor: config.tls.clone().map(TlsAcceptor::from),
            limits: ConnectionLimits::new(config.max_connections, config.max_connections_per_ip),
            failures: Arc::new(FailureTracker::new(config.failure_delay)),
            login_times: Arc::new(LoginTimes::default()),
            capabilities: capabilities(&config),
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
        self.bind_with(|_, _| None).await
    }

    /// Binds every configured listener, except those `inherited` hands over already bound
    /// (systemd socket activation); it is asked with each address and whether it is
    /// implicit TLS.
    pub async fn bind_with(
        self,
        mut inherited: impl FnMut(SocketAddr, bool) -> Option<std::net::TcpListener>,
    ) -> Result<RunningServer<S, U>, ServerError> {
        let mut listeners = Vec::new();
        let plain = self.shared.config.listen.iter().map(|a| (*a, false));
        let tls = self.shared.config.listen_tls.iter().map(|a| (*a, true));
        for (addr, implicit_tls) in plain.chain(tls).collect::<Vec<_>>() {
            let listener = match inherited(addr, implicit_tls) {
                Some(listener) => listener
                    .set_nonblocking(true)
                    .and_then(|()| TcpListener::from_std(listener)),
                None => TcpListener::bind(addr).await,
            }
            .map_err(|source| ServerError::Bind { addr, source })?;
            listeners.push((listener, implicit_tls));
        }
        Ok(RunningServer {
            listeners,
            current: Arc::new(RwLock::new(self.shared)),
        })
    }
}

/// A server whose listeners are bound.
pub struct RunningServer<S, U> {
    listeners: Vec<(TcpListener, bool)>,
    current: Current<S, U>,
}

/// Applies new settings to a running server: new connections get them, open sessions keep
/// the ones they started with.
pub struct Pop3Reloader<S, U> {
    current: Current<S, U>,
}

impl<S, U> Pop3Reloader<S, U> {
    /// Takes every setting but the listeners and the TLS configuration (whose certificate
    /// reloads by itself, and which only a restart adds or removes); returns what changed
    /// that only a restart applies.
    pub fn apply(&self, mut config: Pop3Config) -> Vec<String> {
        let mut cell = self.current.write().unwrap_or_else(|e| e.into_inner());
        let old = &cell.config;
        let mut restart = Vec::new();
        if config.listen != old.listen || config.listen_tls != old.listen_tls {
            restart.push("[pop3] listen and listen_tls".to_owned());
        }
        config.listen.clone_from(&old.listen);
        config.listen_tls.clone_from(&old.listen_tls);
        config.tls.clone_from(&old.tls);
        *cell = Arc::new(cell.with_config(config));
        restart
    }
}

impl<S: MailStore, U: UserDb> RunningServer<S, U> {
    /// The bound addresses, with whether each is implicit TLS.
    pub fn local_addrs(&self) -> Vec<(SocketAddr, bool)> {
        self.listeners
            .iter()
            .filter_map(|(l, tls)| l.local_addr().ok().map(|a| (a, *tls)))
            .collect()
    }

    pub fn reloader(&self) -> Pop3Reloader<S, U> {
        Pop3Reloader {
            current: Arc::clone(&self.current),
        }
    }

    /// Serves until `shutdown` completes, then stops accepting and gives open sessions up to
    /// `grace` to finish (a client downloading its mail gets to QUIT). Sessions still open
    /// then are ended at their next wait for the client, without applying their deletions;
    /// a deletion already being applied completes.
    pub async fn serve(self, shutdown: impl Future<Output = ()>, grace: Duration) {
        let (accept_tx, accept_rx) = watch::channel(false);
        let (end_tx, end_rx) = watch::channel(false);
        let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
        for (listener, implicit_tls) in self.listeners {
            tokio::spawn(accept_loop(
                listener,
                implicit_tls,
                Arc::clone(&self.current),
                accept_rx.clone(),
                end_rx.clone(),
                done_tx.clone(),
            ));
        }
        drop(done_tx);
        shutdown.await;
        info!(
            grace_secs = grace.as_secs(),
            "shutting down: no new connections, open sessions may finish"
        );
        let _ = accept_tx.send(true);
        if tokio::time::timeout(grace, done_rx.recv()).await.is_ok() {
            return;
        }
        warn!("ending the sessions still open after the grace period; they delete nothing");
        let _ = end_tx.send(true);
        if tokio::time::timeout(FINAL_WAIT, done_rx.recv())
            .await
            .is_err()
        {
            warn!("sessions still open after being told to end; closing them");
        }
    }
}

async fn accept_loop<S: MailStore, U: UserDb>(
    listener: TcpListener,
    implicit_tls: bool,
    current: Current<S, U>,
    mut stop_accepting: watch::Receiver<bool>,
    end_sessions: watch::Receiver<bool>,
    done: mpsc::Sender<()>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop_accepting.changed() => return,
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
        let shared = latest(&current);
        let stop = end_sessions.clone();
        let done = done.clone();
        tokio::spawn(async move {
            handle_connection(stream, peer, implicit_tls, shared, stop).await;
            drop(done);
        });
    }
}

async fn handle_connection<S: MailStore, U: UserDb>(
    mut stream: TcpStream,
    peer: SocketAddr,
    implicit_tls: bool,
    shared: Arc<Shared<S, U>>,
    stop: watch::Receiver<bool>,
) {
    let listener = if implicit_tls { "pop3s" } else { "pop3" };
    let _open = OpenConnection::new(listener);
    let started = Instant::now();
    let _ = stream.set_nodelay(true);
    let peer = if shared.config.proxy_from.contains(peer.ip()) {
        match proxy::read_header(&mut stream).await {
            Ok(header) => {
                METRICS.proxy_headers.inc([listener, "accepted"]);
                match header {
                    ProxyHeader::Proxied { source, .. } => source,
                    ProxyHeader::Local => peer,
                }
            }
            Err(error) => {
                METRICS.proxy_headers.inc([listener, "refused"]);
                info!(proxy = %peer, %error, "connection from a trusted proxy refused: it must start with a valid PROXY header");
                return;
            }
        }
    } else {
        peer
    };
    let _slot = match shared.limits.admit(peer.ip()) {
        Ok(slot) => slot,
        Err(refusal) => {
            let (text, reason): (&[u8], _) = match refusal {
                Refusal::ServerFull => (
                    b"-ERR [SYS/TEMP] Server is busy, try again later.\r\n",
                    "server_full",
                ),
                Refusal::AddressFull => (
                    b"-ERR [SYS/TEMP] Too many connections from your address.\r\n",
                    "address_full",
                ),
            };
            METRICS.connections_refused.inc([listener, reason]);
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
            Ok(Ok(tls)) => {
                METRICS.tls_handshakes.inc([listener, "ok"]);
                Conn::Tls(Box::new(tls))
            }
            Ok(Err(error)) => {
                METRICS.tls_handshakes.inc([listener, "failed"]);
                info!(%peer, %error, "TLS handshake failed");
                return;
            }
            Err(_) => {
                METRICS.tls_handshakes.inc([listener, "failed"]);
                info!(%peer, "TLS handshake timed out");
                return;
            }
        }
    } else {
        Conn::Tcp(stream)
    };
    session::run(conn, peer, shared, stop).await;
    METRICS.session_duration.observe(started.elapsed());
}
