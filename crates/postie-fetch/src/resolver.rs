//! Name resolution for every postie command that resolves a name (`fetch`, `fetch add`,
//! `probe`): the system's resolver, or, when `POSTIE_RESOLV_CONF` names a resolv.conf, a DNS
//! client (hickory) that asks the servers that file lists. Discovery always uses the DNS
//! client, as it needs MX and SRV records, which the system's resolver cannot give; it reads
//! the same file, so discovery and the connections after it see the same names.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use hickory_resolver::config::ResolverConfig;
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::TokioResolver;

/// The environment variable naming a resolv.conf to use instead of the system's.
pub const RESOLV_CONF_VAR: &str = "POSTIE_RESOLV_CONF";
const SYSTEM_RESOLV_CONF: &str = "/etc/resolv.conf";
/// How long one DNS question may take, all its servers and retries included.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum ResolverError {
    #[error("cannot read {path}: {reason}; {hint}", hint = resolv_conf_hint())]
    Config { path: PathBuf, reason: String },
    #[error("cannot start the DNS client: {0}")]
    Runtime(std::io::Error),
}

fn resolv_conf_hint() -> String {
    format!("fix the file, or unset {RESOLV_CONF_VAR} to use the system's resolver")
}

/// The resolv.conf postie uses: `POSTIE_RESOLV_CONF`, if set.
pub fn configured_resolv_conf() -> Option<PathBuf> {
    std::env::var_os(RESOLV_CONF_VAR)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// A DNS answer: records, none (the name or the record type does not exist), or a failure
/// that says nothing about whether they exist.
pub type Answer<T> = Result<Vec<T>, String>;

/// A DNS client reading one resolv.conf, answering blocking calls on a runtime of its own.
pub struct DnsClient {
    runtime: tokio::runtime::Runtime,
    resolver: TokioResolver,
    /// The resolv.conf it was made from, for messages.
    pub source: PathBuf,
}

impl DnsClient {
    /// A client for `POSTIE_RESOLV_CONF`, or for the system's resolv.conf.
    pub fn from_environment() -> Result<DnsClient, ResolverError> {
        let path = configured_resolv_conf().unwrap_or_else(|| SYSTEM_RESOLV_CONF.into());
        let config_error = |reason: String| ResolverError::Config {
            path: path.clone(),
            reason,
        };
        let text = std::fs::read(&path).map_err(|e| config_error(e.to_string()))?;
        let (config, mut options) = hickory_resolver::system_conf::parse_resolv_conf(&text)
            .map_err(|e| config_error(e.to_string()))?;
        if config.name_servers().is_empty() {
            return Err(config_error("it lists no nameserver".into()));
        }
        options.timeout = QUERY_TIMEOUT;
        options.attempts = 1;
        let config = ResolverConfig::from_parts(None, vec![], config.name_servers().to_vec());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(ResolverError::Runtime)?;
        let resolver = {
            let _entered = runtime.enter();
            TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
                .with_options(options)
                .build()
        };
        Ok(DnsClient {
            runtime,
            resolver,
            source: path,
        })
    }

    /// The addresses of `host` (an address stays itself).
    pub fn addresses(&self, host: &str) -> Answer<IpAddr> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        answer(
            self.runtime
                .block_on(self.resolver.lookup_ip(fully_qualified(host)))
                .map(|found| found.iter().collect()),
        )
    }

    /// MX hosts of `domain`, most preferred first.
    pub fn mx(&self, domain: &str) -> Answer<String> {
        let found = self
            .runtime
            .block_on(self.resolver.mx_lookup(fully_qualified(domain)))
            .map(|found| {
                let mut records: Vec<(u16, String)> = found
                    .iter()
                    .map(|mx| (mx.preference(), host_name(&mx.exchange().to_utf8())))
                    .collect();
                records.sort();
                records.into_iter().map(|(_, host)| host).collect()
            });
        answer(found)
    }

    /// SRV targets of `name` as (host, port), in priority order then heaviest weight; RFC
    /// 2782's "." target (the service is not offered) gives none.
    pub fn srv(&self, name: &str) -> Answer<(String, u16)> {
        let found = self
            .runtime
            .block_on(self.resolver.srv_lookup(fully_qualified(name)))
            .map(|found| {
                let mut records: Vec<(u16, std::cmp::Reverse<u16>, String, u16)> = found
                    .iter()
                    .map(|srv| {
                        (
                            srv.priority(),
                            std::cmp::Reverse(srv.weight()),
                            host_name(&srv.target().to_utf8()),
                            srv.port(),
                        )
                    })
                    .filter(|(_, _, host, _)| !host.is_empty())
                    .collect();
                records.sort();
                records
                    .into_iter()
                    .map(|(_, _, host, port)| (host, port))
                    .collect()
            });
        answer(found)
    }
}

/// Names are asked as given, never with the resolv.conf's search domains appended.
fn fully_qualified(name: &str) -> String {
    if name.ends_with('.') {
        name.to_owned()
    } else {
        format!("{name}.")
    }
}

fn host_name(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn answer<T>(result: Result<Vec<T>, hickory_resolver::ResolveError>) -> Answer<T> {
    match result {
        Ok(records) => Ok(records),
        Err(error) if error.is_no_records_found() => Ok(Vec::new()),
        Err(error) => Err(error.to_string()),
    }
}

/// The socket addresses to connect to for `host:port`: through `POSTIE_RESOLV_CONF`'s DNS
/// servers when it is set, through the system's resolver otherwise.
pub fn socket_addresses(host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
    if configured_resolv_conf().is_none() || host.parse::<IpAddr>().is_ok() {
        return Ok((host, port).to_socket_addrs()?.collect());
    }
    let client = DnsClient::from_environment().map_err(std::io::Error::other)?;
    match client.addresses(host) {
        Ok(found) if found.is_empty() => Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!(
                "{host} has no address (asked the servers of {})",
                client.source.display()
            ),
        )),
        Ok(found) => Ok(found
            .into_iter()
            .map(|ip| SocketAddr::new(ip, port))
            .collect()),
        Err(reason) => Err(std::io::Error::other(reason)),
    }
}
