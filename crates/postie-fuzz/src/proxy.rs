//! The PROXY protocol header parser (v1 and v2), fed the first bytes of a connection.

use postie_proto::proxy::{parse, Parsed, ProxyHeader};

/// Parses; a complete header claims no more than it was given, reading it back in the steps
/// the parser asks for gives the same answer, and its addresses survive re-encoding.
pub fn proxy_header(data: &[u8]) {
    let Ok(Parsed::Complete { header, length }) = parse(data) else {
        return;
    };
    assert!(
        length <= data.len(),
        "claimed {length} of {} bytes",
        data.len()
    );
    let mut have = 0;
    let stepped = loop {
        match parse(&data[..have]) {
            Ok(Parsed::Incomplete { need }) => {
                assert!(
                    need > 0 && have + need <= length,
                    "asked to read past the header"
                );
                have += need;
            }
            other => break other,
        }
    };
    assert_eq!(stepped, Ok(Parsed::Complete { header, length }));
    if let ProxyHeader::Proxied { .. } = header {
        for encoded in [header.to_v1(), header.to_v2()] {
            let Ok(Parsed::Complete { header: again, .. }) = parse(&encoded) else {
                panic!("re-encoded header does not parse");
            };
            let (
                ProxyHeader::Proxied {
                    source: a,
                    destination: b,
                },
                ProxyHeader::Proxied {
                    source: c,
                    destination: d,
                },
            ) = (header, again)
            else {
                panic!("re-encoded header lost its addresses");
            };
            assert_eq!(
                (a.ip().to_canonical(), a.port()),
                (c.ip().to_canonical(), c.port())
            );
            assert_eq!(
                (b.ip().to_canonical(), b.port()),
                (d.ip().to_canonical(), d.port())
            );
        }
    }
}
