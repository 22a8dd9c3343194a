//! Fetching an autoconfig document (GET) or an Autodiscover answer (POST of the request)
//! over HTTP(S): names resolved by discovery's own DNS client
//! (so `POSTIE_RESOLV_CONF` holds here too), certificates checked against the system's roots
//! (or `SSL_CERT_FILE`, which rustls-native-certs reads instead), no redirects followed to
//! another scheme, a bounded time and size, and never a credential sent.

use std::net::SocketAddr;
use std::time::Duration;

use crate::https::{error_chain, read_body};
use crate::resolver::DnsClient;

/// How long one request may take, connection included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest document read.
const MAX_DOCUMENT: usize = 256 * 1024;

/// GETs `url` (whose host is `host`) and returns its body, or why not.
pub fn get(dns: &DnsClient, host: &str, url: &str) -> Result<String, String> {
    fetch(dns, host, url, None)
}

/// POSTs the XML `body` to `url` and returns the answer's body, or why not.
pub fn post_xml(dns: &DnsClient, host: &str, url: &str, body: String) -> Result<String, String> {
    fetch(dns, host, url, Some(body))
}

fn fetch(dns: &DnsClient, host: &str, url: &str, xml: Option<String>) -> Result<String, String> {
    let addresses = match dns.addresses(host) {
        Ok(found) if found.is_empty() => return Err(format!("{host} has no address")),
        Ok(found) => found,
        Err(reason) => return Err(format!("cannot resolve {host}: {reason}")),
    };
    // The port is the URL's; reqwest takes it from there.
    let addresses: Vec<SocketAddr> = addresses
        .into_iter()
        .map(|ip| SocketAddr::new(ip, 0))
        .collect();
    let client = client(host, &addresses)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the HTTP client: {e}"))?;
    runtime.block_on(async {
        let request = match xml {
            Some(body) => client
                .post(url)
                .header("Content-Type", "text/xml; charset=utf-8")
                .body(body),
            None => client.get(url),
        };
        let response = request.send().await.map_err(|e| error_chain(&e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("answered HTTP {status}"));
        }
        let body = read_body(response, MAX_DOCUMENT).await?;
        String::from_utf8(body).map_err(|_| "the answer is not UTF-8 text".to_owned())
    })
}

fn client(host: &str, addresses: &[SocketAddr]) -> Result<reqwest::Client, String> {
    let tls = crate::https::tls_config()?;
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .resolve_to_addrs(host, addresses)
        .timeout(REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())
}
