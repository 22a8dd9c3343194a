//! Freshly generated hashes, for every scheme, accept their password and nothing else.

use postie_auth::{hash_password, AuthError, PasswordHash, Scheme, MAX_PASSWORD_LEN};

#[test]
fn every_scheme_round_trips() {
    for scheme in Scheme::ALL {
        for password in ["correct horse", "pässwörd €"] {
            let stored = hash_password(password.as_bytes(), scheme).unwrap();
            let prefix = format!("{{{}}}", scheme.as_str());
            assert!(stored.starts_with(&prefix), "{stored}");
            let hash = PasswordHash::parse(&stored).unwrap_or_else(|e| panic!("{stored}: {e}"));
            assert_eq!(hash.scheme(), scheme);
            assert!(hash.verify(password.as_bytes()), "{stored}");
            assert!(!hash.verify(b"correct horsf"), "{stored}");
            // Fresh salt each time, except for the scheme that has none.
            if scheme != Scheme::Plain {
                assert_ne!(stored, hash_password(password.as_bytes(), scheme).unwrap());
            }
        }
    }
}

#[test]
fn generated_forms_match_dovecot() {
    let sha512 = hash_password(b"x", Scheme::Sha512Crypt).unwrap();
    assert!(sha512.starts_with("{SHA512-CRYPT}$6$"), "{sha512}");
    let bcrypt = hash_password(b"x", Scheme::BlfCrypt).unwrap();
    assert!(bcrypt.starts_with("{BLF-CRYPT}$2y$"), "{bcrypt}");
    let argon = hash_password(b"x", Scheme::default()).unwrap();
    assert!(argon.starts_with("{ARGON2ID}$argon2id$v=19$"), "{argon}");
    let pbkdf2 = hash_password(b"x", Scheme::Pbkdf2).unwrap();
    assert!(pbkdf2.starts_with("{PBKDF2}$1$"), "{pbkdf2}");
    let scram = hash_password(b"x", Scheme::ScramSha256).unwrap();
    assert!(scram.starts_with("{SCRAM-SHA-256}4096,"), "{scram}");
}

#[test]
fn unusable_passwords_are_refused() {
    for password in [&b"a:b"[..], b"a\nb", b"\xff"] {
        assert!(matches!(
            hash_password(password, Scheme::Plain),
            Err(AuthError::InvalidPassword(_))
        ));
    }
    assert!(matches!(
        hash_password(&[b'x'; 73], Scheme::BlfCrypt),
        Err(AuthError::InvalidPassword(_))
    ));
    let huge = vec![b'x'; MAX_PASSWORD_LEN + 1];
    assert!(matches!(
        hash_password(&huge, Scheme::Ssha256),
        Err(AuthError::InvalidPassword(_))
    ));
    // Non-UTF-8 bytes are fine wherever the stored form is not the password itself.
    let stored = hash_password(b"\xff\x00\x01", Scheme::Sha256Crypt).unwrap();
    assert!(PasswordHash::parse(&stored)
        .unwrap()
        .verify(b"\xff\x00\x01"));
}

#[test]
fn overlong_passwords_never_match() {
    let long = vec![b'x'; MAX_PASSWORD_LEN + 1];
    let hash =
        PasswordHash::parse(&format!("{{PLAIN}}{}", "x".repeat(MAX_PASSWORD_LEN + 1))).unwrap();
    assert!(!hash.verify(&long));
}
