//! The HTTP listener: `/metrics` (Prometheus), `/healthz`, Thunderbird's autoconfig and
//! Outlook's Autodiscover.
//!
//! A small handler of its own rather than hyper: four fixed routes, one request per
//! connection, a head of at most 8 KiB and a body of at most 64 KiB, each connection capped
//! in time and their number capped. Strict parsing refuses what it does not need (chunked
//! bodies, folded headers) instead of interpreting it, which keeps the code short enough to
//! read in full; TLS for autoconfig is for the reverse proxy in front.

mod autoconfig;
mod autodiscover;
mod request;
mod routes;
mod settings;
mod xml;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use postie_net::{Conn, ConnectionLimits, Door, Gate, Listener, Refusal, Serving};
use postie_proto::proxy::ProxyNetworks;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use settings::{MailSettings, UsernameForm};

use crate::error::ServerError;
use postie_types::limits::{
    HTTP_MAX_BODY, HTTP_MAX_CONNECTIONS, HTTP_MAX_HEAD, HTTP_REQUEST_TIMEOUT,
};
use request::{Parsed, Refused};
use routes::Response;

/// What `/healthz` asks beyond the process answering: Ok, or why the server cannot serve
/// (say, no database host that takes writes).
pub type HealthCheck =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// How long `/healthz` waits for its check before it reports failure: well inside the
/// request's own limit, and what a load balancer's probe would wait.
const HEALTH_CHECK_LIMIT: Duration = Duration::from_secs(5);

/// The HTTP listeners, bound.
pub struct HttpServer {
    listeners: Vec<TcpListener>,
    mail: Option<Arc<MailSettings>>,
    health: Option<HealthCheck>,
}

impl HttpServer {
    /// Binds `listen` (or takes the already bound sockets `inherited` hands over); `mail`
    /// enables autoconfig and Autodiscover.
    pub async fn bind(
        listen: &[SocketAddr],
        mut inherited: impl FnMut(SocketAddr) -> Option<std::net::TcpListener>,
        mail: Option<MailSettings>,
    ) -> Result<Self, ServerError> {
        let mut listeners = Vec::new();
        for &addr in listen {
            let listener = match inherited(addr) {
                Some(listener) => listener
                    .set_nonblocking(true)
                    .and_then(|()| TcpListener::from_std(listener)),
                None => TcpListener::bind(addr).await,
            }
            .map_err(|source| ServerError::Bind { addr, source })?;
            listeners.push(listener);
        }
        Ok(HttpServer {
            listeners,
            mail: mail.map(Arc::new),
            health: None,
        })
    }

    /// `/healthz` answers 503 with the check's reason when `check` fails.
    pub fn with_health_check(mut self, check: HealthCheck) -> Self {
        self.health = Some(check);
        self
    }

    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// Serves until `shutdown` completes; requests in flight are cut off with the process.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        let door = Arc::new(HttpDoor {
            mail: self.mail,
            health: self.health,
            limits: ConnectionLimits::new(HTTP_MAX_CONNECTIONS, HTTP_MAX_CONNECTIONS),
            proxy_from: ProxyNetworks::default(),
        });
        let listeners = self.listeners.into_iter();
        let serving = Serving::start(listeners.map(|l| (Listener::Tcp(l), Arc::clone(&door))));
        shutdown.await;
        serving.stop_accepting();
    }
}

/// The HTTP listeners behind the accept loop: no PROXY headers, and connections beyond the
/// cap are closed at once without an answer.
struct HttpDoor {
    mail: Option<Arc<MailSettings>>,
    health: Option<HealthCheck>,
    limits: Arc<ConnectionLimits>,
    /// None: the reverse proxy in front speaks HTTP and says who the client is its own way.
    proxy_from: ProxyNetworks,
}

impl Door for HttpDoor {
    type Settings = ();

    fn settings(&self) -> Self::Settings {}

    fn gate(&self, (): &()) -> Gate<'_> {
        Gate {
            name: "http",
            proxy_from: &self.proxy_from,
            limits: &self.limits,
            per_address: false,
        }
    }

    fn refusal(&self, _: Refusal) -> Option<&'static [u8]> {
        None
    }

    async fn serve(&self, (): (), mut conn: Conn, _: Option<SocketAddr>, _: watch::Receiver<bool>) {
        let mail = self.mail.as_deref();
        let (response, head_only) =
            match tokio::time::timeout(HTTP_REQUEST_TIMEOUT, read_request(&mut conn)).await {
                Ok(Ok((head, body))) => {
                    let health = match &self.health {
                        Some(check) if routes::asks_health(&head) => Some(
                            tokio::time::timeout(HEALTH_CHECK_LIMIT, check())
                                .await
                                .unwrap_or_else(|_| {
                                    Err(format!("no answer within {HEALTH_CHECK_LIMIT:?}"))
                                }),
                        ),
                        _ => None,
                    };
                    let response = match health {
                        Some(Err(reason)) => routes::unhealthy(&reason),
                        _ => routes::respond(mail, &head, &body),
                    };
                    (response, head.method == "HEAD")
                }
                Ok(Err(Refused(status))) => (Response::error(status), false),
                Err(_) => (Response::error(408), false),
            };
        let _ = conn.write_all(&response.to_bytes(head_only)).await;
        let _ = conn.shutdown().await;
    }
}

async fn read_request(stream: &mut Conn) -> Result<(request::Head, Vec<u8>), Refused> {
    let mut buffer = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let (head, head_length) = loop {
        if let Parsed::Complete(head, length) = request::parse_head(&buffer)? {
            break (head, length);
        }
        let n = stream.read(&mut chunk).await.map_err(|_| Refused(400))?;
        if n == 0 {
            return Err(Refused(400));
        }
        buffer.extend_from_slice(&chunk[..n]);
        if buffer.len() > HTTP_MAX_HEAD + HTTP_MAX_BODY {
            return Err(Refused(413));
        }
    };
    let total = head_length + head.content_length;
    while buffer.len() < total {
        let n = stream.read(&mut chunk).await.map_err(|_| Refused(400))?;
        if n == 0 {
            return Err(Refused(400));
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    let body = buffer.get(head_length..total).unwrap_or_default().to_vec();
    Ok((head, body))
}
