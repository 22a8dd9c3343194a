//! What the account page needs of the users and the store: a trait the binary implements
//! over its configured user database and mail store, so this crate stays generic.

use std::future::Future;
use std::pin::Pin;

use postie_auth::{AppPasswordInfo, TwoStep};
use postie_store::PopSettings;

/// Why the backend could not do what the page asked.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The user's request cannot be done as asked (a label taken or malformed); the text is
    /// shown to them.
    #[error("{0}")]
    Refused(String),
    /// The user database or the store failed; the page says to try again later.
    #[error("{0}")]
    Unavailable(String),
}

/// What a backend call returns.
pub type AccountFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, AccountError>> + Send + 'a>>;

/// A user whose account password was right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordChecked {
    /// The name as the user database spells it.
    pub user: String,
    /// Changes whenever the stored password does ([`postie_auth::PasswordHash::stamp`]):
    /// sessions signed in under another end.
    pub stamp: [u8; 32],
}

/// A user's app passwords, as the CLI's `list` shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppPasswordList {
    /// Whether the account password is refused over POP3.
    pub required: bool,
    pub passwords: Vec<AppPasswordInfo>,
}

/// What POP3 would answer a password, as the page's "test the login" reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pop3LoginCheck {
    /// Logs in; with the label when it is an app password.
    Accepted {
        app_password: Option<String>,
    },
    /// The account password, right, refused because the user takes app passwords only.
    AppPasswordRequired,
    Rejected,
}

/// The operations behind the page, the same as `postie user app-password` and `postie user
/// pop-settings` run.
pub trait AccountBackend: Send + Sync + 'static {
    /// The account's own password, never an app password; an unknown user costs what a
    /// wrong password costs and answers the same `None`.
    fn check_password<'a>(
        &'a self,
        user: &'a str,
        password: &'a [u8],
    ) -> AccountFuture<'a, Option<PasswordChecked>>;

    /// The stamp of the user's stored password now; `None` once the user is gone.
    fn password_stamp<'a>(&'a self, user: &'a str) -> AccountFuture<'a, Option<[u8; 32]>>;

    fn pop_settings<'a>(&'a self, user: &'a str) -> AccountFuture<'a, PopSettings>;

    fn set_pop_settings<'a>(
        &'a self,
        user: &'a str,
        settings: PopSettings,
    ) -> AccountFuture<'a, ()>;

    fn app_passwords<'a>(&'a self, user: &'a str) -> AccountFuture<'a, AppPasswordList>;

    /// Makes an app password labelled `label` and returns its letters, to be shown once.
    fn add_app_password<'a>(&'a self, user: &'a str, label: &'a str) -> AccountFuture<'a, String>;

    fn revoke_app_password<'a>(&'a self, user: &'a str, label: &'a str) -> AccountFuture<'a, ()>;

    /// What a POP3 login as `user` with `password` would get (USER/PASS, through the same
    /// Authenticator).
    fn check_pop3_login<'a>(
        &'a self,
        user: &'a str,
        password: &'a [u8],
    ) -> AccountFuture<'a, Pop3LoginCheck>;

    /// Whether `user` signs in in two steps.
    fn has_two_step<'a>(&'a self, user: &'a str) -> AccountFuture<'a, bool>;

    /// Turns the second step on (`Some`) or off; app passwords are required exactly while it
    /// is on, so the account password alone no longer reaches the mail over POP3.
    fn set_two_step<'a>(
        &'a self,
        user: &'a str,
        two_step: Option<TwoStep>,
    ) -> AccountFuture<'a, ()>;

    /// Takes a TOTP or recovery code for `user`: whether it was right; either logs in once.
    fn take_two_step_code<'a>(&'a self, user: &'a str, code: &'a str) -> AccountFuture<'a, bool>;
}
