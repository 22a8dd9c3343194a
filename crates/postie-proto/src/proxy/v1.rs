//! PROXY v1: one line of text, `PROXY TCP4 192.0.2.1 198.51.100.2 56324 995\r\n`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::{Parsed, ProxyError, ProxyHeader, MAX_V1_HEADER, MIN_HEADER};

const PREFIX: &[u8] = b"PROXY ";

pub(super) fn parse(input: &[u8]) -> Result<Parsed, ProxyError> {
    let prefix = input.len().min(PREFIX.len());
    if input[..prefix] != PREFIX[..prefix] {
        return Err(ProxyError::NotProxy);
    }
    let window = &input[..input.len().min(MAX_V1_HEADER)];
    // Checked byte by byte before the end is seen, so garbage is refused without waiting for
    // a line end that may never come.
    for (i, &byte) in window.iter().enumerate() {
        match byte {
            b'\r' => match window.get(i + 1) {
                Some(b'\n') => {
                    let header = parse_line(&window[PREFIX.len().min(i)..i])?;
                    return Ok(Parsed::Complete {
                        header,
                        length: i + 2,
                    });
                }
                Some(_) => return Err(ProxyError::V1Syntax("CR without LF")),
                None => {}
            },
            b' '..=b'~' => {}
            _ => return Err(ProxyError::V1Syntax("a byte that is not printable ASCII")),
        }
    }
    let need = if window.ends_with(b"\r") { 1 } else { 2 };
    let need = need.max(MIN_HEADER.saturating_sub(input.len()));
    if input.len() + need > MAX_V1_HEADER {
        return Err(ProxyError::V1TooLong);
    }
    Ok(Parsed::Incomplete { need })
}

/// The line after `PROXY ` and before CRLF.
fn parse_line(line: &[u8]) -> Result<ProxyHeader, ProxyError> {
    let mut fields = line.split(|&b| b == b' ');
    match fields.next() {
        // The rest of an UNKNOWN line is to be ignored (the proxy may not know the addresses).
        Some(b"UNKNOWN") => return Ok(ProxyHeader::Local),
        Some(b"TCP4") | Some(b"TCP6") => {}
        _ => {
            return Err(ProxyError::V1Syntax(
                "protocol is not TCP4, TCP6 or UNKNOWN",
            ))
        }
    }
    let v6 = line.starts_with(b"TCP6");
    let fields: Vec<&[u8]> = fields.collect();
    let [source, destination, source_port, destination_port] = fields[..] else {
        return Err(ProxyError::V1Syntax(
            "expected two addresses and two ports, one space apart",
        ));
    };
    let source = SocketAddr::new(address(source, v6)?, port(source_port)?);
    let destination = SocketAddr::new(address(destination, v6)?, port(destination_port)?);
    Ok(ProxyHeader::Proxied {
        source,
        destination,
    })
}

fn address(text: &[u8], v6: bool) -> Result<IpAddr, ProxyError> {
    let text = std::str::from_utf8(text).map_err(|_| ProxyError::V1Syntax("bad address"))?;
    let parsed = if v6 {
        text.parse::<Ipv6Addr>().map(IpAddr::V6)
    } else {
        text.parse::<Ipv4Addr>().map(IpAddr::V4)
    };
    parsed.map_err(|_| ProxyError::V1Syntax("bad address"))
}

/// 0 to 65535, without leading zeros or signs.
fn port(text: &[u8]) -> Result<u16, ProxyError> {
    let bad = ProxyError::V1Syntax("bad port");
    if text.is_empty() || text.len() > 5 || (text.len() > 1 && text[0] == b'0') {
        return Err(bad);
    }
    if !text.iter().all(u8::is_ascii_digit) {
        return Err(bad);
    }
    let value = text.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
    u16::try_from(value).map_err(|_| bad)
}

pub(super) fn encode(header: &ProxyHeader) -> Vec<u8> {
    match header {
        ProxyHeader::Local => b"PROXY UNKNOWN\r\n".to_vec(),
        ProxyHeader::Proxied {
            source,
            destination,
        } => match (source.ip(), destination.ip()) {
            (IpAddr::V4(from), IpAddr::V4(to)) => format!(
                "PROXY TCP4 {from} {to} {} {}\r\n",
                source.port(),
                destination.port()
            )
            .into_bytes(),
            // v1 has no mixed line: both sides in IPv6 form.
            (from, to) => format!(
                "PROXY TCP6 {} {} {} {}\r\n",
                as_v6(from),
                as_v6(to),
                source.port(),
                destination.port()
            )
            .into_bytes(),
        },
    }
}

fn as_v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}
