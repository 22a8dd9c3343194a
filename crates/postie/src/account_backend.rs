//! The account page's backend: the configured users and store, through the same functions
//! `postie user app-password` and `postie user pop-settings` call.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use postie_auth::{
    passwd_file, validate_label, AuthError, Authenticator, NewAppPassword, TwoStep, UserDb, Verdict,
};
use postie_server::http::account::{
    AccountBackend, AccountError, AccountFuture, AppPasswordList, PasswordChecked, Pop3LoginCheck,
};
use postie_store::{MailStore, PopSettings};
use postie_store_pg::UsersError;

use crate::store::ConfiguredStore;
use crate::user_db::ConfiguredUsers;

pub struct ConfiguredAccounts {
    pub auth: Arc<Authenticator<Arc<ConfiguredUsers>>>,
    pub store: ConfiguredStore,
    /// The server's, where last uses of app passwords of a passwd-file are recorded.
    pub state_dir: PathBuf,
}

/// Runs a blocking user-database call off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, AuthError> + Send + 'static,
) -> Result<T, AccountError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(auth_error),
        Err(error) => Err(AccountError::Unavailable(error.to_string())),
    }
}

fn auth_error(error: AuthError) -> AccountError {
    match error {
        AuthError::InvalidLabel { .. }
        | AuthError::AppPasswordExists { .. }
        | AuthError::NoSuchAppPassword { .. } => AccountError::Refused(error.to_string()),
        other => AccountError::Unavailable(other.to_string()),
    }
}

fn users_error(error: UsersError) -> AccountError {
    match error {
        UsersError::AppPasswordExists { .. } | UsersError::NoSuchAppPassword { .. } => {
            AccountError::Refused(error.to_string())
        }
        other => AccountError::Unavailable(other.to_string()),
    }
}

impl AccountBackend for ConfiguredAccounts {
    fn check_password<'a>(
        &'a self,
        user: &'a str,
        password: &'a [u8],
    ) -> AccountFuture<'a, Option<PasswordChecked>> {
        let auth = Arc::clone(&self.auth);
        let (user, password) = (user.to_owned(), password.to_vec());
        Box::pin(async move {
            let record = blocking(move || auth.verify_account_password(&user, &password)).await?;
            Ok(record.map(|record| PasswordChecked {
                stamp: record.password.stamp(),
                user: record.name,
            }))
        })
    }

    fn password_stamp<'a>(&'a self, user: &'a str) -> AccountFuture<'a, Option<[u8; 32]>> {
        let auth = Arc::clone(&self.auth);
        let user = user.to_owned();
        Box::pin(async move {
            let record = blocking(move || auth.db().lookup(&user)).await?;
            Ok(record.map(|record| record.password.stamp()))
        })
    }

    fn pop_settings<'a>(&'a self, user: &'a str) -> AccountFuture<'a, PopSettings> {
        Box::pin(async move {
            self.store
                .pop_settings(user)
                .await
                .map_err(|error| AccountError::Unavailable(error.to_string()))
        })
    }

    fn set_pop_settings<'a>(
        &'a self,
        user: &'a str,
        settings: PopSettings,
    ) -> AccountFuture<'a, ()> {
        Box::pin(async move {
            self.store
                .set_pop_settings(user, settings)
                .await
                .map_err(|error| AccountError::Unavailable(error.to_string()))
        })
    }

    fn app_passwords<'a>(&'a self, user: &'a str) -> AccountFuture<'a, AppPasswordList> {
        Box::pin(async move {
            let (required, passwords) = match self.auth.db().as_ref() {
                ConfiguredUsers::PasswdFile(file) => {
                    let path = file.path().to_owned();
                    let (user, state_dir) = (user.to_owned(), self.state_dir.clone());
                    blocking(move || {
                        passwd_file::list_app_passwords(&path, &user, Some(&state_dir))
                    })
                    .await?
                }
                ConfiguredUsers::Postgres(users) => {
                    users.list_app_passwords(user).await.map_err(users_error)?
                }
            };
            Ok(AppPasswordList {
                required,
                passwords,
            })
        })
    }

    fn add_app_password<'a>(&'a self, user: &'a str, label: &'a str) -> AccountFuture<'a, String> {
        Box::pin(async move {
            validate_label(label).map_err(auth_error)?;
            let new = NewAppPassword::generate();
            match self.auth.db().as_ref() {
                ConfiguredUsers::PasswdFile(file) => {
                    let path = file.path().to_owned();
                    let (user, label, digest) = (user.to_owned(), label.to_owned(), new.digest);
                    blocking(move || {
                        passwd_file::add_app_password(
                            &path,
                            &user,
                            &label,
                            digest,
                            SystemTime::now(),
                        )
                    })
                    .await?
                }
                ConfiguredUsers::Postgres(users) => users
                    .add_app_password(user, label, new.digest)
                    .await
                    .map_err(users_error)?,
            }
            Ok(new.password)
        })
    }

    fn revoke_app_password<'a>(&'a self, user: &'a str, label: &'a str) -> AccountFuture<'a, ()> {
        Box::pin(async move {
            match self.auth.db().as_ref() {
                ConfiguredUsers::PasswdFile(file) => {
                    let path = file.path().to_owned();
                    let (user, label) = (user.to_owned(), label.to_owned());
                    blocking(move || passwd_file::revoke_app_password(&path, &user, &label)).await
                }
                ConfiguredUsers::Postgres(users) => users
                    .revoke_app_password(user, label)
                    .await
                    .map_err(users_error),
            }
        })
    }

    fn has_two_step<'a>(&'a self, user: &'a str) -> AccountFuture<'a, bool> {
        Box::pin(async move {
            match self.auth.db().as_ref() {
                ConfiguredUsers::PasswdFile(file) => {
                    let (path, user) = (file.path().to_owned(), user.to_owned());
                    let found = blocking(move || passwd_file::read_two_step(&path, &user)).await?;
                    Ok(found.is_some())
                }
                ConfiguredUsers::Postgres(users) => {
                    let found = users.two_step(user).await.map_err(users_error)?;
                    Ok(found.is_some())
                }
            }
        })
    }

    fn set_two_step<'a>(
        &'a self,
        user: &'a str,
        two_step: Option<TwoStep>,
    ) -> AccountFuture<'a, ()> {
        Box::pin(async move {
            match self.auth.db().as_ref() {
                ConfiguredUsers::PasswdFile(file) => {
                    let (path, user) = (file.path().to_owned(), user.to_owned());
                    blocking(move || {
                        // Required first when turning on, last when turning off: never a
                        // moment with the second step on and the account password open.
                        let on = two_step.is_some();
                        if on {
                            passwd_file::require_app_passwords(&path, &user, true)?;
                        }
                        passwd_file::set_two_step(&path, &user, two_step.as_ref())?;
                        if !on {
                            passwd_file::require_app_passwords(&path, &user, false)?;
                        }
                        Ok(())
                    })
                    .await
                }
                ConfiguredUsers::Postgres(users) => users
                    .set_two_step(user, two_step.as_ref())
                    .await
                    .map_err(users_error),
            }
        })
    }

    fn take_two_step_code<'a>(&'a self, user: &'a str, code: &'a str) -> AccountFuture<'a, bool> {
        Box::pin(async move {
            let now = SystemTime::now();
            match self.auth.db().as_ref() {
                ConfiguredUsers::PasswdFile(file) => {
                    let (path, user, code) =
                        (file.path().to_owned(), user.to_owned(), code.to_owned());
                    blocking(move || passwd_file::take_two_step_code(&path, &user, &code, now))
                        .await
                }
                ConfiguredUsers::Postgres(users) => users
                    .take_two_step_code(user, code, now)
                    .await
                    .map_err(users_error),
            }
        })
    }

    fn check_pop3_login<'a>(
        &'a self,
        user: &'a str,
        password: &'a [u8],
    ) -> AccountFuture<'a, Pop3LoginCheck> {
        let auth = Arc::clone(&self.auth);
        let (user, password) = (user.to_owned(), password.to_vec());
        Box::pin(async move {
            let verdict = blocking(move || auth.verify_password(&user, &password)).await?;
            Ok(match verdict {
                Verdict::Accepted { app_password, .. } => Pop3LoginCheck::Accepted { app_password },
                Verdict::AppPasswordRequired { .. } => Pop3LoginCheck::AppPasswordRequired,
                Verdict::Rejected => Pop3LoginCheck::Rejected,
            })
        })
    }
}
