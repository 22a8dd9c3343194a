//! SASL exchanges (PLAIN, LOGIN, SCRAM-SHA-256) driven by arbitrary client responses.

use std::collections::HashMap;
use std::sync::OnceLock;

use postie_auth::{
    AuthError, Authenticator, Mechanism, PasswordHash, SaslExchange, SaslStep, UserDb, UserRecord,
};

struct Users(HashMap<String, UserRecord>);

impl UserDb for Users {
    fn lookup(&self, user: &str) -> Result<Option<UserRecord>, AuthError> {
        Ok(self.0.get(user).cloned())
    }
}

fn authenticator() -> &'static Authenticator<Users> {
    static AUTH: OnceLock<Authenticator<Users>> = OnceLock::new();
    AUTH.get_or_init(|| {
        let mut users = HashMap::new();
        for (name, hash) in [
            ("alice", "{PLAIN}secret"),
            // Password "secret", made by `postie pw hash -s SCRAM-SHA-256`.
            ("bob", "{SCRAM-SHA-256}4096,TUHs+ir4S4OQ/5Pq7gSBKw==,g9BTb1Q2vFvLs3wdw/4qXtpwtvjLYAj3EJDfWZ4Kzjk=,K0/p+RVAJY4bwFO0NKKqLcLClnN3Iq7tV92K7X3Khkk="),
        ] {
            let record = UserRecord::new(name, PasswordHash::parse(hash).expect("valid hash"));
            users.insert(name.to_owned(), record);
        }
        Authenticator::new(Users(users))
    })
}

/// The first byte picks the mechanism; the rest, split at 0x00 0xFF pairs, are the client's
/// responses. An exchange must end (accept or reject) without panicking, and never accept a
/// user other than the one whose credentials were given.
pub fn sasl_exchange(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let mechanism = Mechanism::ALL[usize::from(selector) % Mechanism::ALL.len()];
    let mut exchange = SaslExchange::new(mechanism);
    let mut responses = split(rest).into_iter();
    let mut input = if selector & 0x80 != 0 {
        responses.next()
    } else {
        None
    };
    for _ in 0..8 {
        match exchange.step(authenticator(), input.as_deref()) {
            Ok(SaslStep::Challenge(_)) => input = Some(responses.next().unwrap_or_default()),
            Ok(SaslStep::Accepted { user, .. } | SaslStep::AppPasswordRequired { user }) => {
                assert!(
                    user == "alice" || user == "bob",
                    "accepted unknown user {user:?}"
                );
                return;
            }
            Ok(SaslStep::Rejected) | Err(_) => return,
        }
    }
}

fn split(data: &[u8]) -> Vec<Vec<u8>> {
    let mut parts = vec![Vec::new()];
    let mut bytes = data.iter().peekable();
    while let Some(&byte) = bytes.next() {
        if byte == 0 && bytes.peek() == Some(&&0xFF) {
            bytes.next();
            parts.push(Vec::new());
        } else if let Some(last) = parts.last_mut() {
            last.push(byte);
        }
    }
    parts
}
