//! APOP (RFC 1939 section 7): the client proves it knows the password with
//! MD5(timestamp || password), sent as hex.

use md5::{Digest, Md5};
use subtle::ConstantTimeEq;

/// Upper-case hex is accepted too; RFC 1939 asks clients for lower case but costs nothing
/// to be lenient here.
pub(crate) fn digest_matches(password: &[u8], timestamp: &[u8], digest_hex: &[u8]) -> bool {
    let expected = Md5::new()
        .chain_update(timestamp)
        .chain_update(password)
        .finalize();
    let Some(given) = hex::decode(digest_hex)
        .ok()
        .and_then(|given| <[u8; 16]>::try_from(given).ok())
    else {
        return false;
    };
    expected.as_slice().ct_eq(&given).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_1939_example() {
        let timestamp = b"<1896.697170952@dbc.mtview.ca.us>";
        assert!(digest_matches(
            b"tanstaaf",
            timestamp,
            b"c4c9334bac560ecc979e58001b3e22fb"
        ));
        assert!(digest_matches(
            b"tanstaaf",
            timestamp,
            b"C4C9334BAC560ECC979E58001B3E22FB"
        ));
        assert!(!digest_matches(
            b"tanstaaF",
            timestamp,
            b"c4c9334bac560ecc979e58001b3e22fb"
        ));
        for bad in [
            &b""[..],
            b"c4c9",
            b"zz",
            b"c4c9334bac560ecc979e58001b3e22fb00",
        ] {
            assert!(!digest_matches(b"tanstaaf", timestamp, bad));
        }
    }
}
