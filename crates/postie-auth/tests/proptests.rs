//! Arbitrary input never panics: scheme names, stored passwords and SASL exchanges.

use std::collections::HashMap;

use postie_auth::{
    AuthError, Authenticator, Mechanism, PasswordHash, SaslStep, Scheme, UserDb, UserRecord,
};
use proptest::prelude::*;

/// Every name exists, with a cheap cleartext password, so exchanges reach the password check
/// without paying for the unknown-user decoy hash in every case; a few names have SCRAM keys.
struct EveryoneExists(HashMap<String, PasswordHash>);

impl EveryoneExists {
    fn new() -> Self {
        let scram = PasswordHash::parse(
            "{SCRAM-SHA-256}4096,W22ZaJ0SNY7soEsUEjb6gQ==,WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=,wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
        )
        .unwrap();
        EveryoneExists(HashMap::from([("user".to_string(), scram)]))
    }
}

impl UserDb for EveryoneExists {
    fn lookup(&self, user: &str) -> Result<Option<UserRecord>, AuthError> {
        let password = match self.0.get(user) {
            Some(hash) => hash.clone(),
            None => PasswordHash::parse("{PLAIN}pencil")?,
        };
        Ok(Some(UserRecord::new(user.to_string(), password)))
    }
}

fn client_message() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        1 => Just(None),
        2 => proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
        4 => "[nyp],(a=[a-z=0-9]{0,6})?,n=(user|[a-z=,0-9]{0,6}),r=[!-~]{0,10}(,[a-z]=[a-z]{0,4})?"
            .prop_map(|s| Some(s.into_bytes())),
        4 => "c=(biws|eSws|[a-zA-Z0-9+/=]{0,8}),r=[!-~]{0,40}(,p=[a-zA-Z0-9+/=]{0,50})?"
            .prop_map(|s| Some(s.into_bytes())),
        2 => "[a-z]{0,4}\0(user|[a-z]{0,4})\0(pencil|[a-z]{0,6})".prop_map(|s| Some(s.into_bytes())),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn sasl_exchanges_never_panic(
        mechanism in proptest::sample::select(Mechanism::ALL.to_vec()),
        nonce in proptest::option::of("[!-~]{0,12}"),
        inputs in proptest::collection::vec(client_message(), 0..6),
    ) {
        let auth = Authenticator::new(EveryoneExists::new());
        let mut exchange = auth.sasl(mechanism);
        if let Some(nonce) = nonce {
            if let Ok(with_nonce) = auth.sasl(mechanism).with_server_nonce(&nonce) {
                exchange = with_nonce;
            }
        }
        let mut finished = false;
        for input in &inputs {
            let step = exchange.step(&auth, input.as_deref()).unwrap();
            if finished {
                prop_assert_eq!(step, SaslStep::Rejected);
            } else if !matches!(step, SaslStep::Challenge(_)) {
                finished = true;
            }
        }
    }

    #[test]
    fn scheme_names_never_panic(name in any::<String>()) {
        if let Ok(scheme) = name.parse::<Scheme>() {
            prop_assert!(scheme.as_str().eq_ignore_ascii_case(&name) || name.eq_ignore_ascii_case("CLEARTEXT"));
        }
    }

    #[test]
    fn stored_passwords_never_panic(
        entry in prop_oneof![
            any::<String>(),
            "\\{(PLAIN|SHA512-CRYPT|SHA256-CRYPT|BLF-CRYPT|ARGON2ID|ARGON2I|SSHA256|SSHA512|PBKDF2|SCRAM-SHA-256|CRYPT|cleartext)\\}[!-~]{0,120}",
            "(\\{CRYPT\\})?\\$(6|5|2y|2b|argon2id|argon2i|1)\\$[$a-zA-Z0-9./+=,]{0,100}",
            "\\{SSHA(256|512)\\}[a-zA-Z0-9+/]{40,100}={0,2}",
        ],
        password in proptest::collection::vec(any::<u8>(), 0..40),
    ) {
        if let Ok(hash) = PasswordHash::parse(&entry) {
            // Only the cheap schemes: a well-formed bcrypt or argon2 string may ask for any cost.
            if matches!(hash.scheme(), Scheme::Plain | Scheme::Ssha256 | Scheme::Ssha512) {
                let _ = hash.verify(&password);
            }
        }
    }
}
