//! Whether a request may see the account page: passwords and session cookies travel only
//! over HTTPS (a reverse proxy the operator named in `[http] trusted_proxies`, saying so in
//! `X-Forwarded-Proto`), or over plain HTTP between two ends of this machine (loopback).

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use postie_proto::proxy::ProxyNetworks;

/// How the request reached postie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Transport {
    /// The browser's address: the loopback peer's, or the trusted proxy's `X-Forwarded-For`.
    pub(crate) client: IpAddr,
    /// Whether the browser spoke HTTPS (to the proxy): cookies are then `Secure`.
    pub(crate) https: bool,
}

/// Why the page is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Plain HTTP from another machine, or through a proxy that says it was plain.
    PlainHttp,
    /// Forwarding headers from a peer not in `trusted_proxies`: a proxy postie was not told
    /// to believe, so who the browser is and how it connected are unknown.
    UntrustedProxy,
}

const FORWARDING: [&str; 3] = ["forwarded", "x-forwarded-for", "x-forwarded-proto"];

pub(crate) fn judge(
    peer: SocketAddr,
    headers: &HeaderMap,
    trusted_proxies: &ProxyNetworks,
) -> Result<Transport, Refusal> {
    if trusted_proxies.contains(peer.ip()) {
        let mut protos = headers.get_all("x-forwarded-proto").iter();
        let https = match (protos.next(), protos.next()) {
            (Some(proto), None) => proto.as_bytes().eq_ignore_ascii_case(b"https"),
            _ => false,
        };
        if !https {
            return Err(Refusal::PlainHttp);
        }
        // The proxy appends the address it saw last; earlier entries are the browser's word.
        let client = headers
            .get_all("x-forwarded-for")
            .iter()
            .next_back()
            .and_then(|value| value.to_str().ok())
            .and_then(|list| list.rsplit(',').next())
            .and_then(|last| last.trim().parse().ok())
            .unwrap_or(peer.ip());
        return Ok(Transport {
            client,
            https: true,
        });
    }
    if FORWARDING.iter().any(|name| headers.contains_key(*name)) {
        return Err(Refusal::UntrustedProxy);
    }
    if peer.ip().to_canonical().is_loopback() {
        return Ok(Transport {
            client: peer.ip(),
            https: false,
        });
    }
    Err(Refusal::PlainHttp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn loopback_plain_proxied_https_and_the_rest_refused() {
        let trusted = ProxyNetworks::parse(&["10.0.0.1".to_owned()]).unwrap();
        let local: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let proxy: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let remote: SocketAddr = "203.0.113.9:5000".parse().unwrap();
        assert_eq!(
            judge(local, &headers(&[]), &trusted),
            Ok(Transport {
                client: local.ip(),
                https: false
            })
        );
        assert_eq!(
            judge(remote, &headers(&[]), &trusted),
            Err(Refusal::PlainHttp)
        );
        assert_eq!(
            judge(local, &headers(&[("x-forwarded-proto", "https")]), &trusted),
            Err(Refusal::UntrustedProxy)
        );
        assert_eq!(
            judge(
                proxy,
                &headers(&[
                    ("x-forwarded-proto", "https"),
                    ("x-forwarded-for", "198.51.100.1, 203.0.113.9")
                ]),
                &trusted
            ),
            Ok(Transport {
                client: remote.ip(),
                https: true
            })
        );
        assert_eq!(
            judge(proxy, &headers(&[("x-forwarded-proto", "http")]), &trusted),
            Err(Refusal::PlainHttp)
        );
    }
}
