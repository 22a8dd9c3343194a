//! Users, passwords and SASL for postie.
//!
//! Contract used by the server shell and the binary (the implementation fills these in):
//!
//! ```ignore
//! // A user database; the passwd-file is the first implementation.
//! pub trait UserDb: Send + Sync + 'static {
//!     fn lookup(&self, user: &str) -> Result<Option<UserRecord>, AuthError>;
//! }
//! pub struct PasswdFile;            // PasswdFile::open(path) -> Result<Self, AuthError>; re-reads on change
//! pub struct UserRecord { pub name: String, pub password: PasswordHash, pub extra: Vec<String> /* … */ }
//! pub struct PasswordHash;          // parse("{SCHEME}data"), verify(&[u8]) -> bool, scheme() -> Scheme
//! pub enum Scheme { Plain, Sha512Crypt, Sha256Crypt, BlfCrypt, Argon2id, Argon2i, Ssha256, Ssha512, Pbkdf2, ScramSha256 }
//! pub fn hash_password(password: &[u8], scheme: Scheme) -> Result<String, AuthError>;  // "{SCHEME}…"
//!
//! // The checks the POP3 server runs; each call is blocking (hashing), run off the async threads.
//! pub struct Authenticator<U: UserDb>;
//! impl Authenticator<U> {
//!     pub fn new(db: U) -> Self;
//!     pub fn verify_password(&self, user: &str, password: &[u8]) -> Result<Verdict, AuthError>;
//!     pub fn verify_apop(&self, user: &str, timestamp: &[u8], digest_hex: &[u8]) -> Result<Verdict, AuthError>;
//!     pub fn apop_available(&self) -> bool;
//!     pub fn sasl(&self, mechanism: Mechanism) -> SaslExchange;     // sans-IO exchange
//! }
//! pub enum Verdict { Accepted { user: String }, Rejected }
//! pub enum Mechanism { Plain, Login, ScramSha256 }               // FromStr, as_str()
//! impl SaslExchange {
//!     // `input` = the decoded client response (None for "no initial response").
//!     pub fn step<U: UserDb>(&mut self, auth: &Authenticator<U>, input: Option<&[u8]>) -> Result<SaslStep, AuthError>;
//! }
//! pub enum SaslStep { Challenge(Vec<u8>), Accepted { user: String }, Rejected }
//! pub struct Secret(Vec<u8>);      // Debug prints [REDACTED]
//! ```
