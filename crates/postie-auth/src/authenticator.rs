use std::sync::OnceLock;

use crate::password::{hash_password, PasswordHash};
use crate::sasl::{Mechanism, SaslExchange};
use crate::{apop, random, AuthError, LoginName, Scheme, UserDb, UserRecord};

/// The outcome of a USER/PASS or APOP check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// `user` is the name as the user database spells it; `app_password` the label of the
    /// app password that logged in, `None` for the account's own password.
    Accepted {
        user: String,
        app_password: Option<String>,
    },
    /// The account's own password, right, from a user who requires app passwords: refused,
    /// with an answer that says to use one.
    AppPasswordRequired {
        user: String,
    },
    Rejected,
}

impl Verdict {
    /// The verdict on the account's own password, once it has been found right.
    pub(crate) fn own_password(record: UserRecord) -> Verdict {
        match record.app_passwords.required {
            true => Verdict::AppPasswordRequired { user: record.name },
            false => Verdict::Accepted {
                user: record.name,
                app_password: None,
            },
        }
    }
}

/// The checks the POP3 server runs. Every method may block (hashing, file I/O): call them off
/// the async threads. The `UserDb` bound sits on the methods only, so types that merely hold
/// an `Authenticator<U>` need not repeat it.
#[derive(Debug)]
pub struct Authenticator<U> {
    db: U,
}

impl<U: UserDb> Authenticator<U> {
    pub fn new(db: U) -> Self {
        Authenticator { db }
    }

    pub fn db(&self) -> &U {
        &self.db
    }

    /// USER/PASS, SASL PLAIN and LOGIN: the account's own password or one of its app
    /// passwords. `user` may carry a view prefix ([`LoginName`]). An unknown user costs the same as a wrong password, so response times do
    /// not tell which user names exist. An app password is a fast digest compare, so it is
    /// checked first and spares the slow hash.
    pub fn verify_password(&self, user: &str, password: &[u8]) -> Result<Verdict, AuthError> {
        let Some(record) = self.db.lookup(LoginName::parse(user).user)? else {
            if let Some(dummy) = dummy_hash() {
                dummy.verify(password);
            }
            return Ok(Verdict::Rejected);
        };
        if let Some(label) = record.app_passwords.matching(password) {
            let app_password = Some(label.to_owned());
            return Ok(Verdict::Accepted {
                user: record.name,
                app_password,
            });
        }
        Ok(match record.password.verify(password) {
            true => Verdict::own_password(record),
            false => Verdict::Rejected,
        })
    }

    /// The account's own password alone, never an app password (the account page signs in
    /// with it): the user's record when it is right. An unknown user costs a hash check too.
    pub fn verify_account_password(
        &self,
        user: &str,
        password: &[u8],
    ) -> Result<Option<UserRecord>, AuthError> {
        let Some(record) = self.db.lookup(user)? else {
            if let Some(dummy) = dummy_hash() {
                dummy.verify(password);
            }
            return Ok(None);
        };
        Ok(record.password.verify(password).then_some(record))
    }

    /// APOP: only users stored as `{PLAIN}` can pass, since the digest needs the cleartext.
    /// Unknown users and users without a cleartext are rejected after the same MD5 work. It
    /// proves the account's own password, so a user who requires app passwords is refused.
    pub fn verify_apop(
        &self,
        user: &str,
        timestamp: &[u8],
        digest_hex: &[u8],
    ) -> Result<Verdict, AuthError> {
        let record = self.db.lookup(LoginName::parse(user).user)?;
        let cleartext = record
            .as_ref()
            .and_then(|record| record.password.plaintext());
        let unguessable = random::bytes::<32>();
        let matches =
            apop::digest_matches(cleartext.unwrap_or(&unguessable), timestamp, digest_hex);
        Ok(match record {
            Some(record) if matches && cleartext.is_some() => Verdict::own_password(record),
            _ => Verdict::Rejected,
        })
    }

    /// Whether APOP can work at all. It can whenever some user is stored as `{PLAIN}`, which
    /// this crate cannot know cheaply, so this is always true and offering APOP (the greeting
    /// timestamp) is the server configuration's decision.
    pub fn apop_available(&self) -> bool {
        true
    }

    /// Starts a SASL exchange; drive it with [`SaslExchange::step`].
    pub fn sasl(&self, mechanism: Mechanism) -> SaslExchange {
        SaslExchange::new(mechanism)
    }
}

/// A hash of a random password with the generation defaults, so checking it costs what
/// checking a freshly set password costs. `None` only if hashing itself is broken.
fn dummy_hash() -> Option<&'static PasswordHash> {
    static DUMMY: OnceLock<Option<PasswordHash>> = OnceLock::new();
    DUMMY
        .get_or_init(|| {
            let password = hex::encode(random::bytes::<32>());
            hash_password(password.as_bytes(), Scheme::default())
                .and_then(|hash| PasswordHash::parse(&hash))
                .ok()
        })
        .as_ref()
}
