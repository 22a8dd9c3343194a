//! What the LMTP and SMTP listeners need, resolved from the configuration file.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use postie_proto::proxy::ProxyNetworks;

use crate::delivery::DeliveryPolicy;

/// Where a listener listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    Tcp(SocketAddr),
    /// A Unix socket, as Postfix's `lmtp:unix:` and Exim's `lmtp` transport use.
    Unix(PathBuf),
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Listen::Tcp(addr) => write!(f, "{addr}"),
            Listen::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct IntakeConfig {
    /// Named in greetings and `Received` headers.
    pub hostname: String,
    pub lmtp_listen: Vec<Listen>,
    pub smtp_listen: Vec<SocketAddr>,
    pub lmtp_max_message_size: u64,
    pub smtp_max_message_size: u64,
    /// Offered with STARTTLS on the SMTP listeners.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub policy: DeliveryPolicy,
    /// Where message bodies are spooled while they arrive.
    pub spool_dir: PathBuf,
    /// Waiting for a command (RFC 5321 section 4.5.3.2: 5 minutes).
    pub command_timeout: Duration,
    /// Waiting for more of a message body (RFC 5321: 3 minutes per block; we allow more).
    pub data_timeout: Duration,
    pub tls_handshake_timeout: Duration,
    pub max_connections: usize,
    pub max_recipients: usize,
    /// Load balancers whose LMTP connections start with a PROXY header.
    pub lmtp_proxy_from: ProxyNetworks,
    /// Load balancers whose SMTP connections start with a PROXY header.
    pub smtp_proxy_from: ProxyNetworks,
}

impl IntakeConfig {
    pub fn new(hostname: impl Into<String>) -> Self {
        IntakeConfig {
            hostname: hostname.into(),
            lmtp_listen: Vec::new(),
            smtp_listen: Vec::new(),
            lmtp_max_message_size: 50 << 20,
            smtp_max_message_size: 50 << 20,
            tls: None,
            policy: DeliveryPolicy::default(),
            spool_dir: std::env::temp_dir(),
            command_timeout: Duration::from_secs(300),
            data_timeout: Duration::from_secs(600),
            tls_handshake_timeout: Duration::from_secs(30),
            max_connections: 1000,
            max_recipients: 1000,
            lmtp_proxy_from: ProxyNetworks::default(),
            smtp_proxy_from: ProxyNetworks::default(),
        }
    }

    /// Whether any listener is configured.
    pub fn is_enabled(&self) -> bool {
        !self.lmtp_listen.is_empty() || !self.smtp_listen.is_empty()
    }
}
