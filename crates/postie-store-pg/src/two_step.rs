//! Second steps in the `two_step` table (`migrations/0009_two_step.sql`): what the account
//! page reads and writes when `[auth] users = "postgres"`. Turning one on or off sets the
//! user's `app_passwords_required` in the same transaction.

use std::time::SystemTime;

use postie_auth::{TotpSecret, TwoStep};
use tokio_postgres::Row;

use crate::users::{PgUsers, UsersError};

fn from_row(row: &Row) -> Result<TwoStep, UsersError> {
    let secret: Vec<u8> = row.get(0);
    let used: Option<i64> = row.get(1);
    let recovery: Vec<Vec<u8>> = row.get(2);
    let bad = || UsersError::Database("a malformed two_step row".into());
    Ok(TwoStep {
        secret: TotpSecret::from_bytes(&secret).map_err(|_| bad())?,
        used_step: used.map(|step| u64::try_from(step).unwrap_or(0)),
        recovery: recovery
            .into_iter()
            .map(|digest| <[u8; 32]>::try_from(digest.as_slice()).map_err(|_| bad()))
            .collect::<Result<_, _>>()?,
    })
}

fn columns(two_step: &TwoStep) -> (Vec<u8>, Option<i64>, Vec<Vec<u8>>) {
    (
        two_step.secret.as_bytes().to_vec(),
        two_step
            .used_step
            .map(|step| i64::try_from(step).unwrap_or(i64::MAX)),
        two_step.recovery.iter().map(|d| d.to_vec()).collect(),
    )
}

impl PgUsers {
    /// `user`'s second step, if it is on.
    pub async fn two_step(&self, user: &str) -> Result<Option<TwoStep>, UsersError> {
        let row = self
            .run(user, |tx, user| {
                Box::pin(async move {
                    Ok(tx
                        .query_opt(
                            "SELECT secret, used_step, recovery FROM two_step WHERE user_name = $1",
                            &[&user],
                        )
                        .await?)
                })
            })
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Turns `user`'s second step on (replacing any) or, with `None`, off; app passwords are
    /// required exactly while it is on.
    pub async fn set_two_step(
        &self,
        user: &str,
        two_step: Option<&TwoStep>,
    ) -> Result<(), UsersError> {
        let columns = two_step.map(columns);
        let changed = self
            .run(&(user, columns), |tx, (user, columns)| {
                Box::pin(async move {
                    let changed = tx
                        .execute(
                            "UPDATE users SET app_passwords_required = $2 WHERE name = $1",
                            &[user, &columns.is_some()],
                        )
                        .await?;
                    tx.execute("DELETE FROM two_step WHERE user_name = $1", &[user])
                        .await?;
                    if let Some((secret, used, recovery)) = columns {
                        tx.execute(
                            "INSERT INTO two_step (user_name, secret, used_step, recovery)
                             VALUES ($1, $2, $3, $4)",
                            &[user, secret, used, recovery],
                        )
                        .await?;
                    }
                    Ok(changed)
                })
            })
            .await?;
        match changed {
            0 => Err(UsersError::NoSuchUser(user.to_owned())),
            _ => Ok(()),
        }
    }

    /// Takes `code` for `user` at `now`, the row locked meanwhile: whether it was right (and
    /// is now used up). A user without a second step gets `false`.
    pub async fn take_two_step_code(
        &self,
        user: &str,
        code: &str,
        now: SystemTime,
    ) -> Result<bool, UsersError> {
        self.run(&(user, code, now), |tx, (user, code, now)| {
            Box::pin(async move {
                let Some(row) = tx
                    .query_opt(
                        "SELECT secret, used_step, recovery FROM two_step
                          WHERE user_name = $1 FOR UPDATE",
                        &[user],
                    )
                    .await?
                else {
                    return Ok(false);
                };
                let Ok(mut two_step) = from_row(&row) else {
                    return Ok(false);
                };
                if !two_step.take(code, *now) {
                    return Ok(false);
                }
                let (_, used, recovery) = columns(&two_step);
                tx.execute(
                    "UPDATE two_step SET used_step = $2, recovery = $3 WHERE user_name = $1",
                    &[user, &used, &recovery],
                )
                .await?;
                Ok(true)
            })
        })
        .await
    }
}
