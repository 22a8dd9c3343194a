//! Listeners: LMTP on TCP and Unix sockets, SMTP on TCP; accept, limit, hand each connection
//! to a session task; stop cleanly.

use std::future::Future;
use std::net::IpAddr;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use postie_auth::UserDb;
use postie_metrics::{OpenConnection, METRICS};
use postie_proto::proxy::ProxyHeader;
use postie_proto::smtp::Role;
use postie_store::MailStore;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_rustls::TlsAcceptor;
use tracing::{info, warn};

use crate::config::{IntakeConfig, Listen};
use crate::delivery::Deliverer;
use crate::error::IntakeError;
use crate::per_address::{PerAddress, SMTP_MAX_PER_ADDRESS};
use postie_server::conn::Conn;
use postie_server::proxy;

use crate::session;

/// What every session shares.
pub(crate) struct Shared<S, U> {
    pub(crate) config: IntakeConfig,
    pub(crate) deliverer: Arc<Deliverer<S, U>>,
    pub(crate) acceptor: Option<TlsAcceptor>,
    connections: Arc<Semaphore>,
    smtp_per_address: Arc<PerAddress>,
}

/// The LMTP and SMTP listeners, configured but not yet bound.
pub struct IntakeServer<S, U> {
    shared: Arc<Shared<S, U>>,
}

enum Bound {
    Tcp(TcpListener),
    Unix(UnixListener),
}

/// A socket bound by someone else (systemd socket activation) for a configured listener.
#[derive(Debug)]
pub enum Inherited {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener),
}

impl<S: MailStore, U: UserDb> IntakeServer<S, U> {
    pub fn new(config: IntakeConfig, store: S, users: U) -> Self {
        let deliverer = Deliverer::new(store, users, config.policy.clone());
        IntakeServer {
            shared: Arc::new(Shared {
                acceptor: config.tls.clone().map(TlsAcceptor::from),
                connections: Arc::new(Semaphore::new(config.max_connections)),
                smtp_per_address: PerAddress::new(SMTP_MAX_PER_ADDRESS),
                deliverer: Arc::new(deliverer),
                config,
            }),
        }
    }

    /// Binds every configured listener. A Unix socket left over by an earlier run is replaced;
    /// its folder is created if needed.
    pub async fn bind(self) -> Result<RunningIntake<S, U>, IntakeError> {
        self.bind_with(|_, _| None).await
    }

    /// Binds every configured listener, except those `inherited` hands over already bound
    /// (systemd socket activation).
    pub async fn bind_with(
        self,
        mut inherited: impl FnMut(&Listen, Role) -> Option<Inherited>,
    ) -> Result<RunningIntake<S, U>, IntakeError> {
        let mut listeners = Vec::new();
        let lmtp = self
            .shared
            .config
            .lmtp_listen
            .iter()
            .map(|l| (l.clone(), Role::Lmtp));
        let smtp = self
            .shared
            .config
            .smtp_listen
            .iter()
            .map(|a| (Listen::Tcp(*a), Role::Smtp));
        for (listen, role) in lmtp.chain(smtp).collect::<Vec<_>>() {
            let bound = match (inherited(&listen, role), &listen) {
                (Some(Inherited::Tcp(listener)), _) => listener
                    .set_nonblocking(true)
                    .and_then(|()| TcpListener::from_std(listener))
                    .map(Bound::Tcp),
                (Some(Inherited::Unix(listener)), _) => listener
                    .set_nonblocking(true)
                    .and_then(|()| UnixListener::from_std(listener))
                    .map(Bound::Unix),
                (None, Listen::Tcp(addr)) => TcpListener::bind(addr).await.map(Bound::Tcp),
                (None, Listen::Unix(path)) => bind_unix(path).map(Bound::Unix),
            }
            .map_err(|source| IntakeError::Bind {
                listen: listen.to_string(),
                source,
            })?;
            listeners.push((bound, listen, role));
        }
        Ok(RunningIntake {
            listeners,
            shared: self.shared,
        })
    }
}

fn bind_unix(path: &Path) -> std::io::Result<UnixListener> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path)?,
        _ => {}
    }
    let listener = UnixListener::bind(path)?;
    // As Dovecot's LMTP socket: the MTA runs as another user, and any local user may send
    // mail anyway.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    Ok(listener)
}

/// Listeners that are bound.
pub struct RunningIntake<S, U> {
    listeners: Vec<(Bound, Listen, Role)>,
    shared: Arc<Shared<S, U>>,
}

impl<S: MailStore, U: UserDb> RunningIntake<S, U> {
    /// The bound listeners (real ports for port 0) and their protocol.
    pub fn local_addrs(&self) -> Vec<(Listen, Role)> {
        self.listeners
            .iter()
            .map(|(bound, listen, role)| match bound {
                Bound::Tcp(l) => (l.local_addr().map_or(listen.clone(), Listen::Tcp), *role),
                Bound::Unix(_) => (listen.clone(), *role),
            })
            .collect()
    }

    /// Serves until `shutdown` completes, then stops accepting, tells open sessions to end
    /// (a message not yet answered is not delivered; the client retries) and waits up to
    /// `grace` for them.
    pub async fn serve(self, shutdown: impl Future<Output = ()>, grace: Duration) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
        for (bound, _, role) in self.listeners {
            let shared = Arc::clone(&self.shared);
            tokio::spawn(accept_loop(
                bound,
                role,
                shared,
                stop_rx.clone(),
                done_tx.clone(),
            ));
        }
        drop(done_tx);
        shutdown.await;
        let _ = stop_tx.send(true);
        if tokio::time::timeout(grace, done_rx.recv()).await.is_err() {
            warn!("intake sessions still open after the shutdown grace period; closing them");
        }
    }
}

async fn accept_loop<S: MailStore, U: UserDb>(
    listener: Bound,
    role: Role,
    shared: Arc<Shared<S, U>>,
    mut stop: watch::Receiver<bool>,
    done: mpsc::Sender<()>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = accept(&listener) => accepted,
            _ = stop.changed() => return,
        };
        let (conn, peer) = match accepted {
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
            handle(conn, role, peer, shared, stop).await;
            drop(done);
        });
    }
}

async fn accept(listener: &Bound) -> std::io::Result<(Conn, Option<IpAddr>)> {
    match listener {
        Bound::Tcp(l) => {
            let (stream, peer) = l.accept().await?;
            let _ = stream.set_nodelay(true);
            Ok((Conn::Tcp(stream), Some(peer.ip())))
        }
        Bound::Unix(l) => {
            let (stream, _) = l.accept().await?;
            Ok((Conn::Unix(stream), None))
        }
    }
}

async fn handle<S: MailStore, U: UserDb>(
    mut conn: Conn,
    role: Role,
    peer: Option<IpAddr>,
    shared: Arc<Shared<S, U>>,
    stop: watch::Receiver<bool>,
) {
    let (listener, trusted) = match role {
        Role::Lmtp => ("lmtp", &shared.config.lmtp_proxy_from),
        Role::Smtp => ("smtp", &shared.config.smtp_proxy_from),
    };
    let _open = OpenConnection::new(listener);
    let peer = match (&mut conn, peer) {
        (Conn::Tcp(stream), Some(ip)) if trusted.contains(ip) => {
            match proxy::read_header(stream).await {
                Ok(header) => {
                    METRICS.proxy_headers.inc([listener, "accepted"]);
                    match header {
                        ProxyHeader::Proxied { source, .. } => Some(source.ip()),
                        ProxyHeader::Local => peer,
                    }
                }
                Err(error) => {
                    METRICS.proxy_headers.inc([listener, "refused"]);
                    info!(proxy = %ip, %error, "connection from a trusted proxy refused: it must start with a valid PROXY header");
                    return;
                }
            }
        }
        _ => peer,
    };
    let Ok(_permit) = Arc::clone(&shared.connections).try_acquire_owned() else {
        METRICS.connections_refused.inc([listener, "server_full"]);
        warn!(?peer, "connection refused: too many open connections");
        let _ = conn
            .write_all(b"421 4.3.2 Too many connections, try again later\r\n")
            .await;
        return;
    };
    let _slot = match (role, peer) {
        (Role::Smtp, Some(ip)) => {
            match shared.smtp_per_address.admit(ip) {
                Some(slot) => Some(slot),
                None => {
                    METRICS.connections_refused.inc([listener, "address_full"]);
                    warn!(%ip, "connection refused: too many open connections from this address");
                    let _ = conn
                    .write_all(b"421 4.7.0 Too many connections from your address, try again later\r\n")
                    .await;
                    return;
                }
            }
        }
        _ => None,
    };
    session::run(conn, role, peer, shared, stop).await;
}

/// Logs the listeners as `postie serve` shows them.
pub fn log_listeners(addrs: &[(Listen, Role)]) {
    for (listen, role) in addrs {
        let kind = match role {
            Role::Lmtp => "lmtp",
            Role::Smtp => "smtp",
        };
        match listen {
            Listen::Tcp(addr) => info!(%addr, kind, "listening"),
            Listen::Unix(path) => info!(path = %path.display(), kind, "listening"),
        }
    }
}
