//! The one accept loop both doors use: takes connections off a listener, reads the PROXY
//! header a trusted load balancer sends, counts the connection against the door's limits and
//! hands it to the door; stops taking connections, and tells open sessions to end, on
//! signals.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use postie_metrics::{OpenConnection, METRICS};
use postie_proto::proxy::{ProxyHeader, ProxyNetworks};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::conn::Conn;
use crate::limits::{ConnectionLimits, Refusal};
use crate::proxy;

/// The longest a client turned away may take to accept the line that says why.
const REFUSAL_WRITE_LIMIT: Duration = Duration::from_secs(10);

/// A bound listening socket.
#[derive(Debug)]
pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Listener {
    /// The next connection, and the client's address when it has one.
    async fn accept(&self) -> io::Result<(Conn, Option<SocketAddr>)> {
        match self {
            Listener::Tcp(listener) => {
                let (stream, peer) = listener.accept().await?;
                let _ = stream.set_nodelay(true);
                Ok((Conn::Tcp(stream), Some(peer)))
            }
            Listener::Unix(listener) => {
                let (stream, _) = listener.accept().await?;
                Ok((Conn::Unix(stream), None))
            }
        }
    }
}

/// A protocol behind the accept loop: what it lets in, and how it serves what it let in.
pub trait Door: Send + Sync + 'static {
    /// What a connection is served with, taken when it is accepted, so that settings
    /// replaced later (a reload) are for later connections only.
    type Settings: Send + Sync + 'static;

    fn settings(&self) -> Self::Settings;

    /// Who must send a PROXY header and which limits apply, under `settings`.
    fn gate<'a>(&'a self, settings: &'a Self::Settings) -> Gate<'a>;

    /// What a client turned away by the limits is told, if anything.
    fn refusal(&self, why: Refusal) -> Option<&'static [u8]>;

    /// Serves one admitted connection until it ends, or until `stop` says to end it;
    /// `peer` is the client's address as the PROXY header gave it, if one was read.
    fn serve(
        &self,
        settings: Self::Settings,
        conn: Conn,
        peer: Option<SocketAddr>,
        stop: watch::Receiver<bool>,
    ) -> impl Future<Output = ()> + Send;
}

/// How a door lets connections in.
#[derive(Debug)]
pub struct Gate<'a> {
    /// The listener's name in metrics and logs (`pop3`, `pop3s`, `lmtp`, `smtp`).
    pub name: &'static str,
    /// Load balancers whose connections must start with a PROXY header.
    pub proxy_from: &'a ProxyNetworks,
    pub limits: &'a Arc<ConnectionLimits>,
    /// Whether a connection counts against its client's address, not only the total.
    pub per_address: bool,
}

/// Listeners being served: their accept loops and the sessions these started.
#[derive(Debug)]
pub struct Serving {
    stop_accepting: watch::Sender<bool>,
    end_sessions: watch::Sender<bool>,
    /// Closed when the last accept loop and session have ended.
    finished: mpsc::Receiver<()>,
}

impl Serving {
    /// Starts an accept loop on each listener, each handing its connections to its door.
    pub fn start<D: Door>(listeners: impl IntoIterator<Item = (Listener, Arc<D>)>) -> Serving {
        let (stop_accepting, accepting) = watch::channel(false);
        let (end_sessions, ending) = watch::channel(false);
        let (running, finished) = mpsc::channel(1);
        for (listener, door) in listeners {
            tokio::spawn(accept_loop(
                listener,
                door,
                accepting.clone(),
                ending.clone(),
                running.clone(),
            ));
        }
        Serving {
            stop_accepting,
            end_sessions,
            finished,
        }
    }

    /// Takes no more connections; those open stay open.
    pub fn stop_accepting(&self) {
        let _ = self.stop_accepting.send(true);
    }

    /// Tells every open session to end.
    pub fn end_sessions(&self) {
        let _ = self.end_sessions.send(true);
    }

    /// Whether every accept loop and session has ended, waiting up to `limit` for them.
    pub async fn finished_within(&mut self, limit: Duration) -> bool {
        tokio::time::timeout(limit, self.finished.recv())
            .await
            .is_ok()
    }
}

async fn accept_loop<D: Door>(
    listener: Listener,
    door: Arc<D>,
    mut stop_accepting: watch::Receiver<bool>,
    end_sessions: watch::Receiver<bool>,
    running: mpsc::Sender<()>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop_accepting.changed() => return,
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
        let settings = door.settings();
        let door = Arc::clone(&door);
        let stop = end_sessions.clone();
        let running = running.clone();
        tokio::spawn(async move {
            admit(&*door, settings, conn, peer, stop).await;
            drop(running);
        });
    }
}

/// Lets one connection through the gate and has the door serve it.
async fn admit<D: Door>(
    door: &D,
    settings: D::Settings,
    mut conn: Conn,
    peer: Option<SocketAddr>,
    stop: watch::Receiver<bool>,
) {
    let gate = door.gate(&settings);
    let _open = OpenConnection::new(gate.name);
    let peer = match peer {
        Some(proxy) if gate.proxy_from.contains(proxy.ip()) => {
            match proxy::read_header(&mut conn).await {
                Ok(header) => {
                    METRICS.proxy_headers.inc([gate.name, "accepted"]);
                    match header {
                        ProxyHeader::Proxied { source, .. } => Some(source),
                        ProxyHeader::Local => peer,
                    }
                }
                Err(error) => {
                    METRICS.proxy_headers.inc([gate.name, "refused"]);
                    info!(%proxy, %error, "connection from a trusted proxy refused: it must start with a valid PROXY header");
                    return;
                }
            }
        }
        _ => peer,
    };
    let counted_address = peer.filter(|_| gate.per_address).map(|peer| peer.ip());
    let _slot = match gate.limits.admit(counted_address) {
        Ok(slot) => slot,
        Err(refusal) => {
            METRICS
                .connections_refused
                .inc([gate.name, refusal.label()]);
            warn!(
                listener = gate.name,
                ?peer,
                ?refusal,
                "connection refused by limits"
            );
            if let Some(text) = door.refusal(refusal) {
                let _ = tokio::time::timeout(REFUSAL_WRITE_LIMIT, conn.write_all(text)).await;
            }
            return;
        }
    };
    door.serve(settings, conn, peer, stop).await;
}
