use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::login_policy::BrakeSettings;
use postie_proto::proxy::ProxyNetworks;
use postie_proto::Expire;
use postie_store::DeletePolicy;
use postie_types::limits::{DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_CONNECTIONS_PER_IP};

use crate::BearerTokens;

/// Everything the POP3 listeners need, resolved from the configuration file.
#[derive(Debug, Clone)]
pub struct Pop3Config {
    /// Named in the greeting and the APOP timestamp.
    pub hostname: String,
    /// Plain listeners (STLS offered when `tls` is set).
    pub listen: Vec<SocketAddr>,
    /// Implicit-TLS listeners.
    pub listen_tls: Vec<SocketAddr>,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Password authentication without TLS from non-loopback peers.
    pub allow_plaintext_auth: bool,
    pub apop: bool,
    /// A second session on a maildrop gets `[IN-USE]`.
    pub lock_session: bool,
    pub deleted: DeletePolicy,
    /// Idle time allowed after login (RFC 1939: at least 10 minutes).
    pub idle_timeout: Duration,
    /// Idle time allowed before login.
    pub login_timeout: Duration,
    pub tls_handshake_timeout: Duration,
    /// The delay after the first failed login; it grows for an address that keeps failing.
    pub failure_delay: Duration,
    /// How the brake counts networks, whom it trusts, when it sees spraying.
    pub brake: BrakeSettings,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// Minimum time between two logins of one user (LOGIN-DELAY), when set.
    pub login_delay: Option<Duration>,
    pub expire: Option<Expire>,
    /// Load balancers whose connections start with a PROXY header naming the real client.
    pub proxy_from: ProxyNetworks,
    /// `[oauth]`: OAUTHBEARER and XOAUTH2 are offered, their tokens checked by this.
    pub bearer_tokens: Option<Arc<dyn BearerTokens>>,
}

impl Pop3Config {
    /// Defaults for a server with these listeners; RFC 1939's 10-minute idle timeout.
    pub fn new(hostname: impl Into<String>) -> Self {
        Pop3Config {
            hostname: hostname.into(),
            listen: Vec::new(),
            listen_tls: Vec::new(),
            tls: None,
            allow_plaintext_auth: false,
            apop: false,
            lock_session: false,
            deleted: DeletePolicy::Expunge,
            idle_timeout: Duration::from_secs(600),
            login_timeout: Duration::from_secs(60),
            tls_handshake_timeout: Duration::from_secs(30),
            failure_delay: Duration::from_secs(2),
            brake: BrakeSettings::default(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            login_delay: None,
            expire: None,
            proxy_from: ProxyNetworks::default(),
            bearer_tokens: None,
        }
    }
}
