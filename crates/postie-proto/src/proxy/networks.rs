//! The networks allowed to send a PROXY header: `10.0.0.0/8`, `2001:db8::/32`, or one
//! address.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// A list of networks; empty means no address may send a header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyNetworks(Vec<Network>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Network {
    address: IpAddr,
    prefix: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a network such as \"10.0.0.0/8\", \"2001:db8::/32\" or \"192.0.2.7\"")]
pub struct NetworkError(pub String);

impl ProxyNetworks {
    pub fn parse<S: AsRef<str>>(list: &[S]) -> Result<Self, NetworkError> {
        list.iter()
            .map(|text| text.as_ref().parse())
            .collect::<Result<_, _>>()
            .map(ProxyNetworks)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` lies in one of the networks. An IPv4 client seen on a dual-stack socket
    /// (`::ffff:10.1.2.3`) counts as the IPv4 address it is.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|network| network.contains(ip))
    }
}

impl Network {
    fn contains(&self, ip: IpAddr) -> bool {
        match (self.address, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Network {
    type Err = NetworkError;

    fn from_str(text: &str) -> Result<Self, NetworkError> {
        let bad = || NetworkError(text.to_owned());
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address: IpAddr = address.parse().map_err(|_| bad())?;
        let address = address.to_canonical();
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().map_err(|_| bad())?
            }
            Some(_) => return Err(bad()),
        };
        if prefix > max {
            return Err(bad());
        }
        Ok(Network { address, prefix })
    }
}

impl FromStr for ProxyNetworks {
    type Err = NetworkError;

    fn from_str(text: &str) -> Result<Self, NetworkError> {
        Ok(ProxyNetworks(vec![text.parse()?]))
    }
}

impl fmt::Display for ProxyNetworks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, network) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}/{}", network.address, network.prefix)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn membership() {
        let networks = ProxyNetworks::parse(&["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"]).unwrap();
        for yes in ["10.1.2.3", "::ffff:10.9.9.9", "2001:db8:1::5", "192.0.2.7"] {
            assert!(networks.contains(yes.parse().unwrap()), "{yes}");
        }
        for no in ["11.0.0.1", "192.0.2.8", "2001:db9::1", "127.0.0.1"] {
            assert!(!networks.contains(no.parse().unwrap()), "{no}");
        }
        assert!(ProxyNetworks::parse(&["0.0.0.0/0"])
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
    }

    #[test]
    fn bad_networks_are_named() {
        for bad in [
            "10.0.0.0/33",
            "10.0.0/8",
            "host",
            "10.0.0.0/",
            "::/129",
            "1.2.3.4/+8",
        ] {
            let error = ProxyNetworks::parse(&[bad]).unwrap_err();
            assert!(error.to_string().contains(bad), "{error}");
        }
    }
}
