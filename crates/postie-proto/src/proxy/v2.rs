//! PROXY v2: a 16-byte binary preamble (signature, version and command, family, length),
//! the addresses, and optional TLVs, which postie skips.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::{Parsed, ProxyError, ProxyHeader, MAX_V2_HEADER};

const SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
const PREAMBLE: usize = 16;
const LOCAL: u8 = 0x20;
const PROXY: u8 = 0x21;
const UNSPEC: u8 = 0x00;
const TCP4: u8 = 0x11;
const TCP6: u8 = 0x21;
const UNIX_STREAM: u8 = 0x31;

pub(super) fn parse(input: &[u8]) -> Result<Parsed, ProxyError> {
    let prefix = input.len().min(SIGNATURE.len());
    if input[..prefix] != SIGNATURE[..prefix] {
        return Err(ProxyError::NotProxy);
    }
    if input.len() < PREAMBLE {
        return Ok(Parsed::Incomplete {
            need: PREAMBLE - input.len(),
        });
    }
    let command = input[12];
    if command != LOCAL && command != PROXY {
        return Err(ProxyError::V2Syntax(
            "version is not 2 or command is not LOCAL or PROXY",
        ));
    }
    let family = input[13];
    let length = PREAMBLE + usize::from(u16::from_be_bytes([input[14], input[15]]));
    if length > MAX_V2_HEADER {
        return Err(ProxyError::V2TooLong(length));
    }
    if input.len() < length {
        return Ok(Parsed::Incomplete {
            need: length - input.len(),
        });
    }
    let body = &input[PREAMBLE..length];
    let header = if command == LOCAL {
        ProxyHeader::Local
    } else {
        match family {
            TCP4 => {
                let a = body
                    .get(..12)
                    .ok_or(ProxyError::V2Syntax("too short for IPv4 addresses"))?;
                ProxyHeader::Proxied {
                    source: v4(&a[0..4], &a[8..10]),
                    destination: v4(&a[4..8], &a[10..12]),
                }
            }
            TCP6 => {
                let a = body
                    .get(..36)
                    .ok_or(ProxyError::V2Syntax("too short for IPv6 addresses"))?;
                ProxyHeader::Proxied {
                    source: v6(&a[0..16], &a[32..34]),
                    destination: v6(&a[16..32], &a[34..36]),
                }
            }
            // The proxy could not tell, or its client came over a Unix socket: nothing to
            // learn, and the protocol says to accept the connection as the proxy's own.
            UNSPEC | UNIX_STREAM => ProxyHeader::Local,
            _ => return Err(ProxyError::V2Syntax("not a TCP stream")),
        }
    };
    Ok(Parsed::Complete { header, length })
}

fn v4(ip: &[u8], port: &[u8]) -> SocketAddr {
    let ip = Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]);
    SocketAddr::new(IpAddr::V4(ip), u16::from_be_bytes([port[0], port[1]]))
}

fn v6(ip: &[u8], port: &[u8]) -> SocketAddr {
    let mut octets = [0u8; 16];
    octets.copy_from_slice(ip);
    SocketAddr::new(
        IpAddr::V6(Ipv6Addr::from(octets)),
        u16::from_be_bytes([port[0], port[1]]),
    )
}

pub(super) fn encode(header: &ProxyHeader) -> Vec<u8> {
    let mut out = SIGNATURE.to_vec();
    match header {
        ProxyHeader::Local => out.extend_from_slice(&[LOCAL, UNSPEC, 0, 0]),
        ProxyHeader::Proxied {
            source,
            destination,
        } => match (source.ip(), destination.ip()) {
            (IpAddr::V4(from), IpAddr::V4(to)) => {
                out.extend_from_slice(&[PROXY, TCP4, 0, 12]);
                out.extend_from_slice(&from.octets());
                out.extend_from_slice(&to.octets());
                out.extend_from_slice(&source.port().to_be_bytes());
                out.extend_from_slice(&destination.port().to_be_bytes());
            }
            (from, to) => {
                out.extend_from_slice(&[PROXY, TCP6, 0, 36]);
                out.extend_from_slice(&as_v6(from).octets());
                out.extend_from_slice(&as_v6(to).octets());
                out.extend_from_slice(&source.port().to_be_bytes());
                out.extend_from_slice(&destination.port().to_be_bytes());
            }
        },
    }
    out
}

fn as_v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}
