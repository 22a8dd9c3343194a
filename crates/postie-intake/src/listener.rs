//! Listeners: LMTP on TCP and Unix sockets, SMTP on TCP; bound, served through postie-net's
//! accept loop (PROXY headers, limits), stopped cleanly.

use std::future::Future;
use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use postie_auth::UserDb;
use postie_net::{Conn, Door, Gate, Listener, Refusal, Serving};
use postie_proto::smtp::Role;
use postie_store::MailStore;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::{IntakeConfig, Listen};
use crate::delivery::Deliverer;
use crate::error::IntakeError;
use crate::session;
use crate::shared::Shared;

/// The LMTP and SMTP listeners, configured but not yet bound.
pub struct IntakeServer<S, U> {
    shared: Arc<Shared<S, U>>,
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
            shared: Arc::new(Shared::new(config, deliverer)),
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
                    .map(Listener::Tcp),
                (Some(Inherited::Unix(listener)), _) => listener
                    .set_nonblocking(true)
                    .and_then(|()| UnixListener::from_std(listener))
                    .map(Listener::Unix),
                (None, Listen::Tcp(addr)) => TcpListener::bind(addr).await.map(Listener::Tcp),
                (None, Listen::Unix(path)) => bind_unix(path).map(Listener::Unix),
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
    listeners: Vec<(Listener, Listen, Role)>,
    shared: Arc<Shared<S, U>>,
}

impl<S: MailStore, U: UserDb> RunningIntake<S, U> {
    /// The bound listeners (real ports for port 0) and their protocol.
    pub fn local_addrs(&self) -> Vec<(Listen, Role)> {
        self.listeners
            .iter()
            .map(|(bound, listen, role)| match bound {
                Listener::Tcp(l) => (l.local_addr().map_or(listen.clone(), Listen::Tcp), *role),
                Listener::Unix(_) => (listen.clone(), *role),
            })
            .collect()
    }

    /// Serves until `shutdown` completes, then stops accepting, tells open sessions to end
    /// (a message not yet answered is not delivered; the client retries) and waits up to
    /// `grace` for them.
    pub async fn serve(self, shutdown: impl Future<Output = ()>, grace: Duration) {
        let doors = self.listeners.into_iter().map(|(listener, _, role)| {
            let door = IntakeDoor {
                shared: Arc::clone(&self.shared),
                role,
            };
            (listener, Arc::new(door))
        });
        let mut serving = Serving::start(doors);
        shutdown.await;
        serving.stop_accepting();
        serving.end_sessions();
        if !serving.finished_within(grace).await {
            warn!("intake sessions still open after the shutdown grace period; closing them");
        }
    }
}

/// One LMTP or SMTP listener behind the accept loop.
struct IntakeDoor<S, U> {
    shared: Arc<Shared<S, U>>,
    role: Role,
}

impl<S: MailStore, U: UserDb> Door for IntakeDoor<S, U> {
    type Settings = ();

    fn settings(&self) -> Self::Settings {}

    fn gate(&self, (): &()) -> Gate<'_> {
        let config = &self.shared.config;
        let (name, proxy_from) = match self.role {
            Role::Lmtp => ("lmtp", &config.lmtp_proxy_from),
            Role::Smtp => ("smtp", &config.smtp_proxy_from),
        };
        Gate {
            name,
            proxy_from,
            limits: &self.shared.limits,
            per_address: self.role == Role::Smtp,
        }
    }

    fn refusal(&self, why: Refusal) -> Option<&'static [u8]> {
        Some(match why {
            Refusal::ServerFull => b"421 4.3.2 Too many connections, try again later\r\n",
            Refusal::AddressFull => {
                b"421 4.7.0 Too many connections from your address, try again later\r\n"
            }
        })
    }

    async fn serve(
        &self,
        (): (),
        conn: Conn,
        peer: Option<SocketAddr>,
        stop: watch::Receiver<bool>,
    ) {
        let peer = peer.map(|peer| peer.ip());
        session::run(conn, self.role, peer, Arc::clone(&self.shared), stop).await;
    }
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
