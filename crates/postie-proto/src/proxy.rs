//! The PROXY protocol (HAProxy's v1 text and v2 binary headers), free of I/O.
//!
//! A load balancer in front of postie opens its own connection and starts it with a header
//! naming the real client. [`parse`] reads that header from the first bytes of a connection
//! and says either what it found and how long it was, or how many more bytes it needs *at
//! least*. Every valid header is at least that much longer, so a shell that reads exactly
//! that many bytes each time never reads past the header into the client's own data (a TLS
//! ClientHello, a pipelined command) and needs no buffer to hand over.
//!
//! [`ProxyNetworks`] is the list of addresses allowed to send a header.

mod networks;
mod v1;
mod v2;

use std::net::SocketAddr;

pub use networks::{NetworkError, ProxyNetworks};

/// The shortest header of either version (`PROXY UNKNOWN\r\n` is 15 bytes, v2 16).
pub const MIN_HEADER: usize = 15;
/// A v1 header is at most 107 bytes, CRLF included.
pub const MAX_V1_HEADER: usize = 107;
/// The longest v2 header accepted: addresses and the TLVs load balancers add (SSL details, a
/// unique id) fit easily; anything longer is refused rather than buffered.
pub const MAX_V2_HEADER: usize = 4096;

/// What a header says about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyHeader {
    /// The proxy speaks for itself (v2 LOCAL, v1 UNKNOWN, or an address family other than
    /// TCP over IPv4/IPv6): the connection's own addresses apply.
    Local,
    /// A proxied TCP connection from `source` to `destination`.
    Proxied {
        source: SocketAddr,
        destination: SocketAddr,
    },
}

/// The outcome of looking at the first bytes of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// Not enough bytes yet: at least `need` more belong to the header.
    Incomplete { need: usize },
    /// A whole header, `length` bytes long; what follows it is the client's.
    Complete { header: ProxyHeader, length: usize },
}

/// Why the first bytes of a connection are not an acceptable PROXY header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    #[error("the connection does not start with a PROXY protocol header")]
    NotProxy,
    #[error("PROXY v1 header longer than 107 bytes")]
    V1TooLong,
    #[error("malformed PROXY v1 header: {0}")]
    V1Syntax(&'static str),
    #[error("PROXY v2 header of {0} bytes is longer than the {MAX_V2_HEADER} accepted")]
    V2TooLong(usize),
    #[error("malformed PROXY v2 header: {0}")]
    V2Syntax(&'static str),
}

/// Parses the header at the start of `input`, which may hold more bytes than the header.
pub fn parse(input: &[u8]) -> Result<Parsed, ProxyError> {
    match input.first() {
        None => Ok(Parsed::Incomplete { need: MIN_HEADER }),
        Some(b'P') => v1::parse(input),
        Some(b'\r') => v2::parse(input),
        Some(_) => Err(ProxyError::NotProxy),
    }
}

impl ProxyHeader {
    /// The v1 text form (`PROXY TCP4 …\r\n`), as HAProxy's `send-proxy` writes it.
    pub fn to_v1(&self) -> Vec<u8> {
        v1::encode(self)
    }

    /// The v2 binary form, as HAProxy's `send-proxy-v2` writes it (without TLVs).
    pub fn to_v2(&self) -> Vec<u8> {
        v2::encode(self)
    }
}
