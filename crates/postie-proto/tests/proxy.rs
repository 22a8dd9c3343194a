//! The PROXY protocol parser: headers HAProxy writes, round trips, the "never read past the
//! header" promise, and refusals.

use std::net::SocketAddr;

use postie_proto::proxy::{parse, Parsed, ProxyError, ProxyHeader};
use proptest::prelude::*;

/// Feeds `stream` to the parser as a shell does: exactly the bytes it asks for, no more.
fn read_as_shell(stream: &[u8]) -> Result<(ProxyHeader, usize), ProxyError> {
    let mut have = 0;
    loop {
        match parse(&stream[..have])? {
            Parsed::Complete { header, length } => {
                assert_eq!(
                    length, have,
                    "a shell reading what was asked holds exactly the header"
                );
                return Ok((header, length));
            }
            Parsed::Incomplete { need } => {
                assert!(need > 0);
                if have + need > stream.len() {
                    return Err(ProxyError::NotProxy);
                }
                have += need;
            }
        }
    }
}

fn proxied(source: &str, destination: &str) -> ProxyHeader {
    ProxyHeader::Proxied {
        source: source.parse().unwrap(),
        destination: destination.parse().unwrap(),
    }
}

#[test]
fn haproxy_v1_headers() {
    let cases: &[(&[u8], ProxyHeader)] = &[
        (
            b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 995\r\n",
            proxied("192.0.2.1:56324", "198.51.100.2:995"),
        ),
        (
            b"PROXY TCP6 2001:db8::1 2001:db8::2 4000 110\r\n",
            proxied("[2001:db8::1]:4000", "[2001:db8::2]:110"),
        ),
        (b"PROXY UNKNOWN\r\n", ProxyHeader::Local),
        (
            b"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n",
            ProxyHeader::Local,
        ),
    ];
    for (bytes, expected) in cases {
        let mut stream = bytes.to_vec();
        stream.extend_from_slice(b"USER alice\r\n");
        assert_eq!(read_as_shell(&stream).unwrap(), (*expected, bytes.len()));
        assert_eq!(
            parse(&stream).unwrap(),
            Parsed::Complete {
                header: *expected,
                length: bytes.len()
            }
        );
    }
}

#[test]
fn v2_headers_with_tlvs() {
    let mut header = proxied("203.0.113.9:40000", "192.0.2.10:995").to_v2();
    // A PP2_TYPE_UNIQUE_ID TLV as HAProxy adds it; postie skips TLVs.
    let tlv = [0x05u8, 0x00, 0x04, b'a', b'b', b'c', b'd'];
    let length = u16::from_be_bytes([header[14], header[15]]) + tlv.len() as u16;
    header[14..16].copy_from_slice(&length.to_be_bytes());
    header.extend_from_slice(&tlv);
    let total = header.len();
    header.extend_from_slice(&[0x16, 0x03, 0x01]); // a TLS ClientHello begins
    assert_eq!(
        read_as_shell(&header).unwrap(),
        (proxied("203.0.113.9:40000", "192.0.2.10:995"), total)
    );
    assert_eq!(
        read_as_shell(&ProxyHeader::Local.to_v2()).unwrap().0,
        ProxyHeader::Local
    );
}

#[test]
fn refusals() {
    let cases: &[&[u8]] = &[
        b"USER alice\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        b"PROXY TCP5 1.2.3.4 1.2.3.4 1 2\r\n",
        b"PROXY TCP4 1.2.3.4 1.2.3.4 1 65536\r\n",
        b"PROXY TCP4 1.2.3.4 1.2.3.4 01 2\r\n",
        b"PROXY TCP4 1.2.3.4  1.2.3.4 1 2\r\n",
        b"PROXY TCP4 1.2.3.4 1.2.3.4 1\r\n",
        b"PROXY TCP4 ::1 ::1 1 2\r\n",
        b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2\r\r\n",
        b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2\n",
        b"PROXY \xff\r\n",
        b"\r\n\r\n\0\r\nQUIT\n\x11\x11\x00\x0c",
        b"\r\n\r\n\0\r\nQUIT\n\x21\x12\x00\x0c000000000000",
        b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x04abcd",
        b"\r\n\r\n\0\r\nQUIT\n\x21\x11\xff\xff",
        b"\r\n\r\nX",
    ];
    for bytes in cases {
        assert!(
            parse(bytes).is_err(),
            "accepted {:?}",
            String::from_utf8_lossy(bytes)
        );
    }
    let long = [b"PROXY UNKNOWN ".as_slice(), &[b'x'; 120]].concat();
    assert_eq!(parse(&long), Err(ProxyError::V1TooLong));
}

#[test]
fn nothing_yet_asks_for_the_shortest_header() {
    assert_eq!(parse(b""), Ok(Parsed::Incomplete { need: 15 }));
    assert_eq!(
        parse(b"PROXY UNKNOWN\r"),
        Ok(Parsed::Incomplete { need: 1 })
    );
}

fn socket_addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::from((ip, port))),
        (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::from((ip, port))),
    ]
}

proptest! {
    #[test]
    fn round_trips_in_both_versions(source in socket_addr(), destination in socket_addr(), tail in proptest::collection::vec(any::<u8>(), 0..64)) {
        let header = ProxyHeader::Proxied { source, destination };
        for encoded in [header.to_v1(), header.to_v2()] {
            let mut stream = encoded.clone();
            stream.extend_from_slice(&tail);
            let (parsed, length) = read_as_shell(&stream).unwrap();
            prop_assert_eq!(length, encoded.len());
            let ProxyHeader::Proxied { source: s, destination: d } = parsed else {
                panic!("lost the addresses");
            };
            prop_assert_eq!((s.ip().to_canonical(), s.port()), (source.ip().to_canonical(), source.port()));
            prop_assert_eq!((d.ip().to_canonical(), d.port()), (destination.ip().to_canonical(), destination.port()));
        }
    }

    #[test]
    fn never_panics_and_never_claims_more_than_given(input in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(Parsed::Complete { length, .. }) = parse(&input) {
            prop_assert!(length <= input.len());
        }
    }

    #[test]
    fn prefixes_of_a_header_are_incomplete_never_wrong(source in socket_addr(), destination in socket_addr(), cut in 0usize..200) {
        let header = ProxyHeader::Proxied { source, destination };
        for encoded in [header.to_v1(), header.to_v2()] {
            let cut = cut.min(encoded.len() - 1);
            match parse(&encoded[..cut]) {
                Ok(Parsed::Incomplete { need }) => prop_assert!(cut + need <= encoded.len()),
                other => prop_assert!(false, "prefix of {} bytes gave {:?}", cut, other),
            }
        }
    }
}
