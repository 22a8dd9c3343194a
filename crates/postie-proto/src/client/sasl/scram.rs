//! SCRAM-SHA-256 client (RFC 5802, RFC 7677), without channel binding ("n,,").

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::SaslError;
use postie_types::Secret;

/// A server asking for more iterations than this is refused: each costs the client an HMAC,
/// and a hostile server could otherwise make it spin for minutes.
pub const MAX_SCRAM_ITERATIONS: u64 = 1_000_000;

#[derive(Debug)]
pub(super) struct ScramClient {
    password: Secret,
    client_first_bare: String,
    client_nonce: String,
    stage: Stage,
}

#[derive(Debug)]
enum Stage {
    Start,
    SentFinal { server_signature: [u8; 32] },
    Verified,
    Failed,
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

impl ScramClient {
    pub(super) fn new(user: &str, password: &Secret, client_nonce: &str) -> ScramClient {
        let name = user.replace('=', "=3D").replace(',', "=2C");
        ScramClient {
            password: password.clone(),
            client_first_bare: format!("n={name},r={client_nonce}"),
            client_nonce: client_nonce.to_owned(),
            stage: Stage::Start,
        }
    }

    pub(super) fn client_first(&self) -> Secret {
        Secret::new(format!("n,,{}", self.client_first_bare).into_bytes())
    }

    pub(super) fn respond(&mut self, challenge: &[u8]) -> Result<Secret, SaslError> {
        match std::mem::replace(&mut self.stage, Stage::Failed) {
            Stage::Start => self.client_final(challenge),
            Stage::SentFinal { server_signature } => {
                verify_server_final(challenge, &server_signature).map(|()| {
                    self.stage = Stage::Verified;
                    // RFC 5034: the server's final message came as a challenge; the client
                    // answers it with an empty response.
                    Secret::new(Vec::new())
                })
            }
            Stage::Verified | Stage::Failed => Err(SaslError::UnexpectedChallenge("SCRAM-SHA-256")),
        }
    }

    pub(super) fn finish(&self) -> Result<(), SaslError> {
        match self.stage {
            Stage::Verified => Ok(()),
            _ => Err(SaslError::ServerNotVerified),
        }
    }

    fn client_final(&mut self, server_first: &[u8]) -> Result<Secret, SaslError> {
        let server_first =
            std::str::from_utf8(server_first).map_err(|_| SaslError::Malformed("not UTF-8"))?;
        if let Some(error) = attribute(server_first, 'e') {
            return Err(SaslError::ServerError(error.to_owned()));
        }
        let nonce = attribute(server_first, 'r').ok_or(SaslError::Malformed("no nonce"))?;
        if !nonce.starts_with(&self.client_nonce) || nonce.len() == self.client_nonce.len() {
            return Err(SaslError::Malformed("the nonce does not extend ours"));
        }
        let salt = attribute(server_first, 's')
            .and_then(|s| BASE64.decode(s).ok())
            .ok_or(SaslError::Malformed("no salt"))?;
        let iterations: u64 = attribute(server_first, 'i')
            .and_then(|i| i.parse().ok())
            .filter(|&i| i > 0)
            .ok_or(SaslError::Malformed("no iteration count"))?;
        if iterations > MAX_SCRAM_ITERATIONS {
            return Err(SaslError::TooManyIterations(iterations));
        }
        let mut salted = [0u8; 32];
        // Checked above to fit: MAX_SCRAM_ITERATIONS < u32::MAX.
        pbkdf2::pbkdf2_hmac::<Sha256>(
            self.password.expose(),
            &salt,
            iterations as u32,
            &mut salted,
        );
        let client_key = hmac(&salted, b"Client Key");
        let stored_key: [u8; 32] = Sha256::digest(client_key).into();
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let signature = hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = hmac(&salted, b"Server Key");
        self.stage = Stage::SentFinal {
            server_signature: hmac(&server_key, auth_message.as_bytes()),
        };
        Ok(Secret::new(
            format!("{without_proof},p={}", BASE64.encode(proof)).into_bytes(),
        ))
    }
}

fn verify_server_final(message: &[u8], expected: &[u8; 32]) -> Result<(), SaslError> {
    let message = std::str::from_utf8(message).map_err(|_| SaslError::Malformed("not UTF-8"))?;
    if let Some(error) = attribute(message, 'e') {
        return Err(SaslError::ServerError(error.to_owned()));
    }
    let given = attribute(message, 'v')
        .and_then(|v| BASE64.decode(v).ok())
        .ok_or(SaslError::Malformed("no verifier"))?;
    if given == expected {
        Ok(())
    } else {
        Err(SaslError::ServerSignature)
    }
}

/// The value of `name=` in a SCRAM message.
fn attribute(message: &str, name: char) -> Option<&str> {
    message.split(',').find_map(|part| {
        let mut chars = part.chars();
        (chars.next() == Some(name) && chars.next() == Some('=')).then(|| &part[2..])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example exchange of RFC 7677 section 3.
    #[test]
    fn rfc_7677_example() {
        let mut client = ScramClient::new(
            "user",
            &Secret::new(b"pencil".to_vec()),
            "rOprNGfwEbeRWgbNEkqO",
        );
        assert_eq!(
            client.client_first().expose(),
            b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
        );
        let server_first = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let client_final = client.respond(server_first).unwrap();
        assert_eq!(
            client_final.expose(),
            &b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="[..]
        );
        assert_eq!(client.finish(), Err(SaslError::ServerNotVerified));
        let done = client
            .respond(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap();
        assert_eq!(done.expose(), b"");
        assert_eq!(client.finish(), Ok(()));
    }

    #[test]
    fn a_wrong_server_signature_is_refused() {
        let mut client = ScramClient::new("user", &Secret::new(b"pencil".to_vec()), "abc");
        client.respond(b"r=abcdef,s=AAAA,i=1").unwrap();
        assert_eq!(
            client.respond(b"v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="),
            Err(SaslError::ServerSignature)
        );
        let mut greedy = ScramClient::new("user", &Secret::new(b"pencil".to_vec()), "abc");
        assert_eq!(
            greedy.respond(b"r=abcdef,s=AAAA,i=999999999").unwrap_err(),
            SaslError::TooManyIterations(999_999_999)
        );
        let mut replay = ScramClient::new("user", &Secret::new(b"pencil".to_vec()), "abc");
        assert!(replay.respond(b"r=abc,s=AAAA,i=1").is_err());
    }
}
