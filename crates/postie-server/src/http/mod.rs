//! The HTTP listener: `/metrics` (Prometheus), `/healthz`, Thunderbird's autoconfig,
//! Outlook's Autodiscover and the users' account page (`/account/`).
//!
//! Connections come from postie-net's accept loop, as POP3's do, so the connection cap
//! applies; each is first read by a strict gate (a head of at most 8 KiB, a body of at most
//! 64 KiB with a Content-Length, no chunked bodies, no folded headers: refused, not
//! interpreted), then served by hyper with axum's router, one request per connection, the
//! whole within a time limit.

pub mod account;
mod autoconfig;
mod autodiscover;
mod gate;
mod rewound;
mod routes;
mod settings;
mod xml;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Router;
use hyper_util::rt::TokioIo;
use postie_net::{Conn, ConnectionLimits, Door, Gate, Listener, Refusal, Serving};
use postie_proto::proxy::ProxyNetworks;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

pub use settings::{MailSettings, UsernameForm};

use crate::error::ServerError;
use gate::{Parsed, Refused};
use postie_types::limits::{
    HTTP_MAX_BODY, HTTP_MAX_CONNECTIONS, HTTP_MAX_HEAD, HTTP_REQUEST_TIMEOUT,
};

/// What `/healthz` asks beyond the process answering: Ok, or why the server cannot serve
/// (say, no database host that takes writes).
pub type HealthCheck =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// How long `/healthz` waits for its check before it reports failure: well inside the
/// request's own limit, and what a load balancer's probe would wait.
const HEALTH_CHECK_LIMIT: Duration = Duration::from_secs(5);

/// The client's address as the accept loop gave it (the PROXY header's, if one was read),
/// put into each request's extensions.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer(pub(crate) SocketAddr);

/// The HTTP listeners, bound.
pub struct HttpServer {
    listeners: Vec<TcpListener>,
    mail: Option<Arc<MailSettings>>,
    health: Option<HealthCheck>,
    account: Option<account::AccountPage>,
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
            account: None,
        })
    }

    /// `/healthz` answers 503 with the check's reason when `check` fails.
    pub fn with_health_check(mut self, check: HealthCheck) -> Self {
        self.health = Some(check);
        self
    }

    /// Serves the account page under `/account/`.
    pub fn with_account_page(mut self, page: account::AccountPage) -> Self {
        self.account = Some(page);
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
        let operator = Arc::new(routes::Operator {
            mail: self.mail.clone(),
            health: self.health,
        });
        let mut router = routes::router(operator);
        if let Some(page) = self.account {
            router = router.merge(account::router(page, self.mail));
        }
        let router = router.layer(axum::middleware::map_response(no_store));
        let door = Arc::new(HttpDoor {
            router,
            limits: ConnectionLimits::new(HTTP_MAX_CONNECTIONS, HTTP_MAX_CONNECTIONS),
            proxy_from: ProxyNetworks::default(),
        });
        let listeners = self.listeners.into_iter();
        let serving = Serving::start(listeners.map(|l| (Listener::Tcp(l), Arc::clone(&door))));
        shutdown.await;
        serving.stop_accepting();
    }
}

/// Nothing postie answers over HTTP is for a cache to keep.
async fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The HTTP listeners behind the accept loop: no PROXY headers, and connections beyond the
/// cap are closed at once without an answer.
struct HttpDoor {
    router: Router,
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

    async fn serve(
        &self,
        (): (),
        mut conn: Conn,
        peer: Option<SocketAddr>,
        _: watch::Receiver<bool>,
    ) {
        // HTTP listens on TCP only, so every connection has a client address.
        let Some(peer) = peer else { return };
        let deadline = tokio::time::Instant::now() + HTTP_REQUEST_TIMEOUT;
        let read = match tokio::time::timeout_at(deadline, read_head(&mut conn)).await {
            Ok(Ok(read)) => read,
            Ok(Err(Refused(status))) => return refuse(conn, status).await,
            Err(_) => return refuse(conn, 408).await,
        };
        let router = self.router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
            request.extensions_mut().insert(Peer(peer));
            router.clone().oneshot(request.map(axum::body::Body::new))
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .keep_alive(false)
            .serve_connection(TokioIo::new(rewound::Rewound::new(read, conn)), service);
        let _ = tokio::time::timeout_at(deadline, connection).await;
    }
}

/// Reads until the head is complete and passed the gate; returns every byte read.
async fn read_head(stream: &mut Conn) -> Result<Vec<u8>, Refused> {
    let mut buffer = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        if let Parsed::Complete(_) = gate::parse_head(&buffer)? {
            return Ok(buffer);
        }
        let n = stream.read(&mut chunk).await.map_err(|_| Refused(400))?;
        if n == 0 {
            return Err(Refused(400));
        }
        buffer.extend_from_slice(&chunk[..n]);
        if buffer.len() > HTTP_MAX_HEAD + HTTP_MAX_BODY {
            return Err(Refused(413));
        }
    }
}

/// Answers a request the gate refused, and closes.
async fn refuse(mut conn: Conn, status: u16) {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let body = format!(
        "{} {}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    );
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error"),
        body.len()
    );
    let _ = conn.write_all(format!("{head}{body}").as_bytes()).await;
    let _ = conn.shutdown().await;
}
