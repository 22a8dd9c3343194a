//! The POP3 listeners: bound, served through postie-net's accept loop (PROXY headers, limits)
//! with implicit TLS where configured, given new settings on reload, stopped cleanly.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use postie_auth::{Authenticator, UserDb};
use postie_metrics::METRICS;
use postie_net::{Conn, Door, Gate, Listener, Refusal, Serving};
use postie_store::MailStore;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::Pop3Config;
use crate::error::ServerError;
use crate::local_records::LocalRecords;
use crate::login_brake::LoginBrake;
use crate::login_policy::LoginRecords;
use crate::recent_sessions::RecentSessions;
use crate::session;
use crate::shared::{latest, Current, Shared};

/// After the grace period, how long sessions get to notice they are told to end (a deletion
/// being written finishes first; the runtime waits for it in any case).
const FINAL_WAIT: Duration = Duration::from_secs(5);

/// A POP3 server, configured but not yet listening.
pub struct Pop3Server<S, U> {
    shared: Arc<Shared<S, U>>,
}

impl<S: MailStore, U: UserDb> Pop3Server<S, U> {
    /// A server whose login records (failure counts, last logins) live in this process.
    pub fn new(config: Pop3Config, store: S, auth: Authenticator<U>) -> Result<Self, ServerError> {
        Self::with_login_records(config, store, auth, Arc::new(LocalRecords::default()))
    }

    /// A server keeping its login records in `records`, e.g. a database that other front ends
    /// of the same store share.
    pub fn with_login_records(
        config: Pop3Config,
        store: S,
        auth: Authenticator<U>,
        records: Arc<dyn LoginRecords>,
    ) -> Result<Self, ServerError> {
        if !config.listen_tls.is_empty() && config.tls.is_none() {
            return Err(ServerError::TlsMissing);
        }
        Ok(Pop3Server {
            shared: Arc::new(Shared::new(config, store, auth, records)),
        })
    }

    /// Serves one session over an already open stream, as if accepted from `peer`, until it
    /// ends; `stop` turning true ends it as a shutdown does. No listener, no limits, no PROXY
    /// header: for driving the shell in process (an in-memory `tokio::io::duplex`, in tests).
    pub fn serve_stream(
        &self,
        stream: impl postie_net::InProcess + 'static,
        peer: SocketAddr,
        stop: watch::Receiver<bool>,
    ) -> impl Future<Output = ()> + Send + 'static {
        session::run(
            Conn::in_process(stream),
            peer,
            Arc::clone(&self.shared),
            stop,
        )
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

    /// The brake and login records this server's logins go through, for other doors to
    /// share (the account page's sign-in).
    pub fn login_brake(&self) -> LoginBrake {
        let shared = latest(&self.current);
        LoginBrake {
            brake: Arc::clone(&shared.brake),
            records: Arc::clone(&shared.login_records),
            settings: shared.config.brake.clone(),
        }
    }

    /// The last sessions of each user, as they end.
    pub fn recent_sessions(&self) -> Arc<RecentSessions> {
        Arc::clone(&latest(&self.current).recent_sessions)
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
        let doors = self.listeners.into_iter().map(|(listener, implicit_tls)| {
            let door = Pop3Door {
                current: Arc::clone(&self.current),
                implicit_tls,
            };
            (Listener::Tcp(listener), Arc::new(door))
        });
        let mut serving = Serving::start(doors);
        shutdown.await;
        info!(
            grace_secs = grace.as_secs(),
            "shutting down: no new connections, open sessions may finish"
        );
        serving.stop_accepting();
        if serving.finished_within(grace).await {
            return;
        }
        warn!("ending the sessions still open after the grace period; they delete nothing");
        serving.end_sessions();
        if !serving.finished_within(FINAL_WAIT).await {
            warn!("sessions still open after being told to end; closing them");
        }
    }
}

/// One POP3 listener, plain or implicit TLS, behind the accept loop.
struct Pop3Door<S, U> {
    current: Current<S, U>,
    implicit_tls: bool,
}

impl<S: MailStore, U: UserDb> Door for Pop3Door<S, U> {
    type Settings = Arc<Shared<S, U>>;

    fn settings(&self) -> Self::Settings {
        latest(&self.current)
    }

    fn gate<'a>(&'a self, shared: &'a Self::Settings) -> Gate<'a> {
        Gate {
            name: if self.implicit_tls { "pop3s" } else { "pop3" },
            proxy_from: &shared.config.proxy_from,
            limits: &shared.limits,
            per_address: true,
        }
    }

    fn refusal(&self, why: Refusal) -> Option<&'static [u8]> {
        // A client of implicit TLS expects a handshake, not a line in the clear.
        if self.implicit_tls {
            return None;
        }
        Some(match why {
            Refusal::ServerFull => b"-ERR [SYS/TEMP] Server is busy, try again later.\r\n",
            Refusal::AddressFull => b"-ERR [SYS/TEMP] Too many connections from your address.\r\n",
        })
    }

    async fn serve(
        &self,
        shared: Self::Settings,
        mut conn: Conn,
        peer: Option<SocketAddr>,
        stop: watch::Receiver<bool>,
    ) {
        // POP3 listens on TCP only, so every connection has a client address.
        let Some(peer) = peer else { return };
        let started = Instant::now();
        if self.implicit_tls {
            let Some(acceptor) = &shared.acceptor else {
                return;
            };
            let limit = shared.config.tls_handshake_timeout;
            if let Err(error) = conn.start_tls(acceptor, limit, "pop3s").await {
                info!(%peer, %error, "implicit TLS failed");
                return;
            }
        }
        session::run(conn, peer, shared, stop).await;
        METRICS.session_duration.observe(started.elapsed());
    }
}
