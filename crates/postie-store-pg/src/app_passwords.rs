//! App passwords in the `app_passwords` table (`migrations/0007_app_passwords.sql`): what
//! `postie user app-password` edits when `[auth] users = "postgres"`. Logins read them with
//! the user ([`PgUsers::get`]).

use std::time::SystemTime;

use postie_auth::{validate_label, AppPasswordDigest, AppPasswordInfo, AppPasswordUse};

use crate::users::{PgUsers, UsersError};

impl PgUsers {
    /// Adds an app password for `user`, who must exist; refuses a label in use.
    pub async fn add_app_password(
        &self,
        user: &str,
        label: &str,
        digest: AppPasswordDigest,
    ) -> Result<(), UsersError> {
        validate_label(label).map_err(|source| UsersError::BadRecord {
            name: user.to_owned(),
            source,
        })?;
        let digest = digest.to_string();
        let added = self
            .run(
                &(user, label, digest.as_str()),
                |tx, (user, label, digest)| {
                    Box::pin(async move {
                        Ok(tx
                            .execute(
                                "INSERT INTO app_passwords (user_name, label, digest)
                             SELECT name, $2, $3 FROM users WHERE name = $1
                             ON CONFLICT (user_name, label) DO NOTHING",
                                &[user, label, digest],
                            )
                            .await?)
                    })
                },
            )
            .await?;
        if added == 1 {
            return Ok(());
        }
        match self.get(user).await? {
            None => Err(UsersError::NoSuchUser(user.to_owned())),
            Some(_) => Err(UsersError::AppPasswordExists {
                user: user.to_owned(),
                label: label.to_owned(),
            }),
        }
    }

    /// Ends `user`'s app password `label` at once: the next login with it fails.
    pub async fn revoke_app_password(&self, user: &str, label: &str) -> Result<(), UsersError> {
        let removed = self
            .run(&(user, label), |tx, (user, label)| {
                Box::pin(async move {
                    Ok(tx
                        .execute(
                            "DELETE FROM app_passwords WHERE user_name = $1 AND label = $2",
                            &[user, label],
                        )
                        .await?)
                })
            })
            .await?;
        match removed {
            0 => Err(UsersError::NoSuchAppPassword {
                user: user.to_owned(),
                label: label.to_owned(),
            }),
            _ => Ok(()),
        }
    }

    /// Whether `user`'s own password is refused over POP3 (only app passwords log in).
    pub async fn require_app_passwords(&self, user: &str, on: bool) -> Result<(), UsersError> {
        let changed = self
            .run(&(user, on), |tx, (user, on)| {
                Box::pin(async move {
                    Ok(tx
                        .execute(
                            "UPDATE users SET app_passwords_required = $2 WHERE name = $1",
                            &[user, on],
                        )
                        .await?)
                })
            })
            .await?;
        match changed {
            0 => Err(UsersError::NoSuchUser(user.to_owned())),
            _ => Ok(()),
        }
    }

    /// Whether `user` requires app passwords, and each of theirs, oldest first.
    pub async fn list_app_passwords(
        &self,
        user: &str,
    ) -> Result<(bool, Vec<AppPasswordInfo>), UsersError> {
        let rows = self
            .run(user, |tx, user| {
                Box::pin(async move {
                    Ok(tx
                        .query(
                            "SELECT u.app_passwords_required, a.label, a.created_at,
                                    a.last_used_at, a.last_used_from, a.last_used_over
                               FROM users u
                               LEFT JOIN app_passwords a ON a.user_name = u.name
                              WHERE u.name = $1
                              ORDER BY a.created_at, a.label",
                            &[&user],
                        )
                        .await?)
                })
            })
            .await?;
        let Some(first) = rows.first() else {
            return Err(UsersError::NoSuchUser(user.to_owned()));
        };
        let required = first.get(0);
        let mut infos = Vec::new();
        for row in &rows {
            let Some(label) = row.get::<_, Option<String>>(1) else {
                continue;
            };
            let last_use = match (
                row.get::<_, Option<SystemTime>>(3),
                row.get::<_, Option<String>>(4),
                row.get::<_, Option<String>>(5),
            ) {
                (Some(at), Some(from), Some(over)) => from
                    .parse()
                    .ok()
                    .map(|from| AppPasswordUse { at, from, over }),
                _ => None,
            };
            infos.push(AppPasswordInfo {
                label,
                created: row.get(2),
                last_use,
            });
        }
        Ok((required, infos))
    }

    /// Writes down a login by `user`'s app password `label`. The statement matches no row
    /// when the use adds nothing to the last one recorded (same place and mechanism within
    /// [`postie_auth::USE_RECORD_INTERVAL`]), and then writes nothing: no WAL flush for a
    /// phone that polls every minute.
    pub async fn record_app_password_use(
        &self,
        user: &str,
        label: &str,
        usage: &AppPasswordUse,
    ) -> Result<(), UsersError> {
        let from = usage.from.to_string();
        let interval = postie_auth::USE_RECORD_INTERVAL.as_secs_f64();
        let params = (
            user,
            label,
            usage.at,
            from.as_str(),
            usage.over.as_str(),
            interval,
        );
        self.run(&params, |tx, (user, label, at, from, over, interval)| {
            Box::pin(async move {
                Ok(tx
                    .execute(
                        "UPDATE app_passwords
                            SET last_used_at = $3, last_used_from = $4, last_used_over = $5
                          WHERE user_name = $1 AND label = $2
                            AND (last_used_at IS NULL
                                 OR last_used_from IS DISTINCT FROM $4
                                 OR last_used_over IS DISTINCT FROM $5
                                 OR last_used_at <= $3::timestamptz - $6::float8 * interval '1 second')",
                        &[user, label, at, from, over, interval],
                    )
                    .await?)
            })
        })
        .await
        .map(drop)
    }
}
