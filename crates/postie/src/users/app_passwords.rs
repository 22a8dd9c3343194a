//! `postie user app-password …`: the same four actions on the passwd-file's side file or on
//! the database's table, and the one way their results are printed.

use std::path::Path;
use std::time::SystemTime;

use anyhow::Result;
use postie_auth::{passwd_file, AppPasswordInfo, NewAppPassword};
use postie_intake::rfc5322_date;
use postie_store_pg::PgUsers;

use crate::cli::AppPasswordAction;

/// `state_dir` is the server's, where it records last uses; unknown with `--passwd-file`.
pub fn in_passwd_file(
    path: &Path,
    state_dir: Option<&Path>,
    action: AppPasswordAction,
) -> Result<()> {
    match action {
        AppPasswordAction::Add { name, label } => {
            let new = NewAppPassword::generate();
            passwd_file::add_app_password(path, &name, &label, new.digest, SystemTime::now())?;
            print_new(&name, &label, &new);
        }
        AppPasswordAction::List { name } => {
            let (required, list) = passwd_file::list_app_passwords(path, &name, state_dir)?;
            print_list(&name, required, &list);
            if state_dir.is_none() && !list.is_empty() {
                println!("(last uses are in the server's state_dir: name its configuration with --config instead of --passwd-file)");
            }
        }
        AppPasswordAction::Revoke { name, label } => {
            passwd_file::revoke_app_password(path, &name, &label)?;
            eprintln!("revoked {name}'s app password {label:?}");
        }
        AppPasswordAction::Require { name, off } => {
            passwd_file::require_app_passwords(path, &name, !off)?;
            print_required(&name, !off);
        }
    }
    Ok(())
}

pub async fn in_database(users: &PgUsers, action: AppPasswordAction) -> Result<()> {
    match action {
        AppPasswordAction::Add { name, label } => {
            let new = NewAppPassword::generate();
            users.add_app_password(&name, &label, new.digest).await?;
            print_new(&name, &label, &new);
        }
        AppPasswordAction::List { name } => {
            let (required, list) = users.list_app_passwords(&name).await?;
            print_list(&name, required, &list);
        }
        AppPasswordAction::Revoke { name, label } => {
            users.revoke_app_password(&name, &label).await?;
            eprintln!("revoked {name}'s app password {label:?}");
        }
        AppPasswordAction::Require { name, off } => {
            users.require_app_passwords(&name, !off).await?;
            print_required(&name, !off);
        }
    }
    Ok(())
}

/// The password goes to standard output alone on the last line, for scripts; the rest is
/// for the person reading.
fn print_new(name: &str, label: &str, new: &NewAppPassword) {
    println!("App password {label:?} for {name}: type it into the mail client as the password.");
    println!("It is shown this once and cannot be shown again.");
    println!("{}", new.password);
}

fn print_list(name: &str, required: bool, list: &[AppPasswordInfo]) {
    println!(
        "{name}: {}",
        match required {
            true => "app passwords required (the account password is refused over POP3)",
            false => "account password and app passwords accepted",
        }
    );
    if list.is_empty() {
        println!(
            "no app passwords: make one with `postie user app-password add {name} --label LABEL`"
        );
        return;
    }
    for info in list {
        let used = match &info.last_use {
            Some(used) => format!(
                "last used {} from {} over {}",
                rfc5322_date(used.at),
                used.from,
                used.over
            ),
            None => "never used".to_owned(),
        };
        println!(
            "{:?}\tcreated {}\t{used}",
            info.label,
            rfc5322_date(info.created)
        );
    }
}

fn print_required(name: &str, on: bool) {
    match on {
        true => eprintln!(
            "{name} now logs in over POP3 with app passwords only: the account password gets -ERR [AUTH]"
        ),
        false => eprintln!("{name} may log in with the account password again"),
    }
}
