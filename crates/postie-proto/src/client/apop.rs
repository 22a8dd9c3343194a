//! The APOP digest (RFC 1939 section 7): MD5 of the greeting's timestamp and the password.

use md5::{Digest, Md5};

/// The lower-case hex digest APOP sends.
pub fn apop_digest(timestamp: &str, password: &[u8]) -> String {
    let digest = Md5::new()
        .chain_update(timestamp.as_bytes())
        .chain_update(password)
        .finalize();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc_1939_example() {
        assert_eq!(
            super::apop_digest("<1896.697170952@dbc.mtview.ca.us>", b"tanstaaf"),
            "c4c9334bac560ecc979e58001b3e22fb"
        );
    }
}
