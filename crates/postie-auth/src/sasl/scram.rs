//! SCRAM-SHA-256 (RFC 5802, RFC 7677) without channel binding.
//!
//! Users stored as `{SCRAM-SHA-256}` use their stored keys; users stored as `{PLAIN}` get keys
//! derived on the spot. Anyone else, known or not, is walked through a complete exchange with
//! made-up keys and rejected at the end, so the exchange does not reveal which names exist.

use std::sync::OnceLock;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::SaslStep;
use crate::scram_keys::{hmac_sha256, ScramKeys, DEFAULT_ITERATIONS, KEY_LEN};
use crate::{random, AuthError, Authenticator, LoginName, UserDb};

pub(super) struct Scram {
    server_nonce: Option<String>,
    stage: Stage,
}

enum Stage {
    Start,
    AwaitingFinal(Box<Pending>),
    AwaitingEmpty {
        user: String,
        app_password_required: bool,
    },
}

/// What the server remembers between its first message and the client's final one.
struct Pending {
    /// `None` when the exchange is a decoy that must end in rejection.
    user: Option<String>,
    /// SCRAM proves the account's own password, which such a user refuses over POP3.
    app_password_required: bool,
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
    keys: ScramKeys,
}

impl Scram {
    pub(super) fn new(server_nonce: Option<String>) -> Self {
        Scram {
            server_nonce,
            stage: Stage::Start,
        }
    }

    pub(super) fn step<U: UserDb>(
        &mut self,
        auth: &Authenticator<U>,
        input: Option<&[u8]>,
        claimed: &mut Option<String>,
    ) -> Result<SaslStep, AuthError> {
        match (std::mem::replace(&mut self.stage, Stage::Start), input) {
            (Stage::Start, None) => Ok(SaslStep::Challenge(Vec::new())),
            (Stage::Start, Some(message)) => {
                let Some(pending) = self.client_first(auth, message, claimed)? else {
                    return Ok(SaslStep::Rejected);
                };
                let challenge = pending.server_first.clone().into_bytes();
                self.stage = Stage::AwaitingFinal(Box::new(pending));
                Ok(SaslStep::Challenge(challenge))
            }
            (Stage::AwaitingFinal(pending), Some(message)) => match client_final(&pending, message)
            {
                Some((user, server_final)) => {
                    let app_password_required = pending.app_password_required;
                    self.stage = Stage::AwaitingEmpty {
                        user,
                        app_password_required,
                    };
                    Ok(SaslStep::Challenge(server_final.into_bytes()))
                }
                None => Ok(SaslStep::Rejected),
            },
            // RFC 5034: with no room for success data, the server's final message goes out
            // as a challenge, and the client answers it with an empty response.
            (
                Stage::AwaitingEmpty {
                    user,
                    app_password_required,
                },
                None | Some(b""),
            ) => Ok(match app_password_required {
                true => SaslStep::AppPasswordRequired { user },
                false => SaslStep::Accepted {
                    user,
                    app_password: None,
                },
            }),
            _ => Ok(SaslStep::Rejected),
        }
    }

    /// Parses `gs2-header client-first-message-bare`; `None` means reject now.
    fn client_first<U: UserDb>(
        &self,
        auth: &Authenticator<U>,
        message: &[u8],
        claimed: &mut Option<String>,
    ) -> Result<Option<Pending>, AuthError> {
        let Some(first) = ClientFirst::parse(message) else {
            return Ok(None);
        };
        *claimed = Some(first.user.clone());
        let record = auth.db().lookup(LoginName::parse(&first.user).user)?;
        let salt = decoy_salt(&first.user);
        // Derived on every path, so the work done does not depend on who the user is.
        let cleartext = record
            .as_ref()
            .and_then(|record| record.password.plaintext());
        let unguessable = random::bytes::<32>();
        let derived =
            ScramKeys::derive(cleartext.unwrap_or(&unguessable), &salt, DEFAULT_ITERATIONS);
        let app_password_required = record
            .as_ref()
            .is_some_and(|record| record.app_passwords.required);
        let (user, keys) = match record {
            Some(record) => match record.password.scram_keys() {
                Some(stored) => (Some(record.name), stored.clone()),
                None if record.password.plaintext().is_some() => (Some(record.name), derived),
                None => (None, derived),
            },
            None => (None, derived),
        };
        let server_nonce = match &self.server_nonce {
            Some(nonce) => nonce.clone(),
            None => BASE64.encode(random::bytes::<24>()),
        };
        let nonce = format!("{}{server_nonce}", first.client_nonce);
        let server_first = format!(
            "r={nonce},s={},i={}",
            BASE64.encode(&keys.salt),
            keys.iterations
        );
        Ok(Some(Pending {
            user,
            app_password_required,
            gs2_header: first.gs2_header,
            client_first_bare: first.bare,
            server_first,
            nonce,
            keys,
        }))
    }
}

struct ClientFirst {
    gs2_header: String,
    bare: String,
    user: String,
    client_nonce: String,
}

impl ClientFirst {
    fn parse(message: &[u8]) -> Option<Self> {
        let message = std::str::from_utf8(message).ok()?;
        let (flag, rest) = message.split_once(',')?;
        // "p=" asks for channel binding, which postie does not offer; "y" says the client
        // could bind but believes the server cannot, which is true.
        if flag != "n" && flag != "y" {
            return None;
        }
        let (authzid, bare) = rest.split_once(',')?;
        let authzid = match authzid {
            "" => None,
            _ => Some(decode_saslname(authzid.strip_prefix("a=")?)?),
        };
        let mut attributes = bare.split(',');
        // A leading "m=" is a mandatory extension, which no server may ignore.
        let user = decode_saslname(attributes.next()?.strip_prefix("n=")?)?;
        let client_nonce = attributes.next()?.strip_prefix("r=")?;
        if user.is_empty() || client_nonce.is_empty() || !client_nonce.bytes().all(printable) {
            return None;
        }
        if authzid.is_some_and(|authzid| authzid != user) {
            return None;
        }
        Some(ClientFirst {
            gs2_header: message[..message.len() - bare.len()].to_string(),
            bare: bare.to_string(),
            user,
            client_nonce: client_nonce.to_string(),
        })
    }
}

/// Checks `c=...,r=...[,ext],p=...`; on success the user and the server-final message.
fn client_final(pending: &Pending, message: &[u8]) -> Option<(String, String)> {
    let message = std::str::from_utf8(message).ok()?;
    let (without_proof, proof) = message.rsplit_once(",p=")?;
    let proof: [u8; KEY_LEN] = BASE64.decode(proof).ok()?.try_into().ok()?;
    let mut attributes = without_proof.split(',');
    let binding = BASE64.decode(attributes.next()?.strip_prefix("c=")?).ok()?;
    let nonce = attributes.next()?.strip_prefix("r=")?;
    if binding != pending.gs2_header.as_bytes() || nonce != pending.nonce {
        return None;
    }
    let auth_message = format!(
        "{},{},{without_proof}",
        pending.client_first_bare, pending.server_first
    );
    let keys = &pending.keys;
    let signature = hmac_sha256(&keys.stored_key, &[auth_message.as_bytes()]);
    let client_key: Vec<u8> = proof.iter().zip(signature).map(|(p, s)| p ^ s).collect();
    let proof_ok: bool = Sha256::digest(&client_key).ct_eq(&keys.stored_key).into();
    let user = pending.user.clone().filter(|_| proof_ok)?;
    let server_signature = hmac_sha256(&keys.server_key, &[auth_message.as_bytes()]);
    Some((user, format!("v={}", BASE64.encode(server_signature))))
}

/// RFC 5802 saslname: "," and "=" travel as "=2C" and "=3D"; any other "=" is an error.
fn decode_saslname(encoded: &str) -> Option<String> {
    let mut decoded = String::with_capacity(encoded.len());
    let mut rest = encoded;
    while let Some(index) = rest.find('=') {
        decoded.push_str(&rest[..index]);
        let escape = rest.get(index..index + 3)?;
        decoded.push(match escape {
            "=2C" => ',',
            "=3D" => '=',
            _ => return None,
        });
        rest = &rest[index + 3..];
    }
    decoded.push_str(rest);
    Some(decoded)
}

fn printable(b: u8) -> bool {
    (0x21..=0x7e).contains(&b) && b != b','
}

/// Stable per user name for the life of the process, so asking twice gives the same salt
/// whether or not the user exists, yet unpredictable from outside.
fn decoy_salt(user: &str) -> [u8; 16] {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    let key = KEY.get_or_init(random::bytes::<32>);
    let mac = hmac_sha256(key, &[b"postie scram salt\0", user.as_bytes()]);
    let mut salt = [0u8; 16];
    salt.copy_from_slice(&mac[..16]);
    salt
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saslnames() {
        assert_eq!(decode_saslname("a=2Cb=3Dc").as_deref(), Some("a,b=c"));
        assert_eq!(decode_saslname("jürgen").as_deref(), Some("jürgen"));
        for bad in ["=", "a=2", "=2c", "=41", "a=ü"] {
            assert_eq!(decode_saslname(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn client_first_forms() {
        let first = ClientFirst::parse(b"n,,n=user,r=abc").unwrap();
        assert_eq!(first.gs2_header, "n,,");
        assert_eq!(first.bare, "n=user,r=abc");
        let first = ClientFirst::parse(b"y,a=us=2Cer,n=us=2Cer,r=abc,x=ext").unwrap();
        assert_eq!(first.gs2_header, "y,a=us=2Cer,");
        assert_eq!(first.user, "us,er");
        for bad in [
            &b"p=tls-unique,,n=user,r=abc"[..],
            b"n,a=other,n=user,r=abc",
            b"n,,m=ext,n=user,r=abc",
            b"n,,n=,r=abc",
            b"n,,n=user,r=",
            b"n,,n=user",
            b"n,,r=abc,n=user",
            b"x,,n=user,r=abc",
            b"n,,n=user,r=a\x01",
            b"n,,n=\xff,r=abc",
        ] {
            assert!(ClientFirst::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn decoy_salt_is_stable_per_name() {
        assert_eq!(decoy_salt("a"), decoy_salt("a"));
        assert_ne!(decoy_salt("a"), decoy_salt("b"));
    }
}
