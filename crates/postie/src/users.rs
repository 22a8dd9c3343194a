//! `postie user …` and `postie pw …`: the users, in the passwd-file edited in place or, with
//! `[auth] users = "postgres"`, in the database.

use std::io::BufRead;
use std::path::Path;

use anyhow::{bail, Context, Result};
use postie::config::{Config, StoreConfig, UserEditing};
use postie_auth::{hash_password, passwd_file, Scheme};
use postie_store_pg::PgUsers;

mod app_passwords;
mod pop_settings;

use crate::cli::{PasswordArgs, PwAction, PwArgs, UserAction, UserArgs, UserEdit};
use crate::store::ConfiguredStore;

pub fn user(args: UserArgs) -> Result<()> {
    let action = match args.action {
        // The settings live with the mail, in the store the configuration names.
        UserAction::PopSettings(settings) => return pop_settings::run(&args.config, settings),
        UserAction::Edit(action) => action,
    };
    let editing = match &args.passwd_file {
        Some(path) => UserEditing::PasswdFile {
            passwd_file: path.clone(),
            state_dir: None,
        },
        None => Config::user_editing(&args.config)?,
    };
    match editing {
        UserEditing::PasswdFile {
            passwd_file,
            state_dir,
        } => in_passwd_file(&passwd_file, state_dir.as_deref(), action),
        UserEditing::Postgres(store) => in_database(&store, action)
            .with_context(|| format!("{}: [auth] users = \"postgres\"", args.config.display())),
    }
}

fn in_passwd_file(path: &Path, state_dir: Option<&Path>, action: UserEdit) -> Result<()> {
    match action {
        UserEdit::Add(password) => set(path, password, false),
        UserEdit::Passwd(password) => set(path, password, true),
        UserEdit::Del { name } => {
            if !passwd_file::remove_user(path, &name)? {
                bail!("no user {name:?} in {}", path.display());
            }
            passwd_file::remove_user_app_passwords(path, &name)?;
            passwd_file::set_two_step(path, &name, None)?;
            eprintln!("removed {name} from {}", path.display());
            Ok(())
        }
        UserEdit::AppPassword(action) => app_passwords::in_passwd_file(path, state_dir, action),
        UserEdit::List => {
            for name in passwd_file::list_users(path)? {
                println!("{name}");
            }
            Ok(())
        }
    }
}

fn set(path: &Path, args: PasswordArgs, must_exist: bool) -> Result<()> {
    let scheme = parse_scheme(&args.scheme)?;
    passwd_file::validate_user_name(&args.name)?;
    let exists = passwd_file::list_users(path)?.contains(&args.name);
    if must_exist && !exists {
        bail!(
            "no user {:?} in {}: add it with `postie user add {}`",
            args.name,
            path.display(),
            args.name
        );
    }
    let password = read_password(args.password_stdin)?;
    let hash = hash_password(password.as_bytes(), scheme)?;
    passwd_file::set_user(path, &args.name, &hash)?;
    let verb = if exists { "updated" } else { "added" };
    eprintln!("{verb} {} in {}", args.name, path.display());
    Ok(())
}

/// The same actions on the `users` table. Unlike the passwd-file's `add`, the database's
/// refuses a name taken: with several operators and front ends, replacing a password is
/// `passwd`'s job, said explicitly.
fn in_database(store: &StoreConfig, action: UserEdit) -> Result<()> {
    let ConfiguredStore::Postgres(store) = crate::store::open(store) else {
        bail!("[auth] users = \"postgres\" needs [mail] store = \"postgres\"");
    };
    let users = PgUsers::new(store.pool().clone());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(async {
        match action {
            UserEdit::Add(args) => {
                let scheme = parse_scheme(&args.scheme)?;
                passwd_file::validate_user_name(&args.name)?;
                // Before asking for a password that could not be used.
                if users.get(&args.name).await?.is_some() {
                    bail!(postie_store_pg::UsersError::Exists(args.name));
                }
                let hash = hash_password(read_password(args.password_stdin)?.as_bytes(), scheme)?;
                users.add(&args.name, &hash).await?;
                eprintln!("added {} to the database", args.name);
            }
            UserEdit::Passwd(args) => {
                let scheme = parse_scheme(&args.scheme)?;
                if users.get(&args.name).await?.is_none() {
                    bail!(postie_store_pg::UsersError::NoSuchUser(args.name));
                }
                let hash = hash_password(read_password(args.password_stdin)?.as_bytes(), scheme)?;
                users.set_password(&args.name, &hash).await?;
                eprintln!("updated {} in the database", args.name);
            }
            UserEdit::Del { name } => {
                users.remove(&name).await?;
                eprintln!("removed {name} from the database");
            }
            UserEdit::List => {
                for name in users.list().await? {
                    println!("{name}");
                }
            }
            UserEdit::AppPassword(action) => {
                app_passwords::in_database(&users, action).await?;
            }
        }
        Ok(())
    })
}

pub fn pw(args: PwArgs) -> Result<()> {
    match args.action {
        PwAction::Hash {
            scheme,
            password_stdin,
        } => {
            let scheme = parse_scheme(&scheme)?;
            let password = read_password(password_stdin)?;
            println!("{}", hash_password(password.as_bytes(), scheme)?);
            Ok(())
        }
    }
}

fn parse_scheme(name: &str) -> Result<Scheme> {
    name.parse::<Scheme>().map_err(|_| {
        let names: Vec<&str> = Scheme::ALL.iter().map(|s| s.as_str()).collect();
        anyhow::anyhow!(
            "unknown password scheme {name:?}: use one of {}",
            names.join(", ")
        )
    })
}

fn read_password(from_stdin: bool) -> Result<String> {
    let password = if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    } else {
        let first = rpassword::prompt_password("Password: ")
            .context("cannot read the password (no terminal? use --password-stdin)")?;
        let second =
            rpassword::prompt_password("Retype password: ").context("cannot read the password")?;
        if first != second {
            bail!("the passwords differ: nothing changed");
        }
        first
    };
    if password.is_empty() {
        bail!("the password is empty: nothing changed");
    }
    Ok(password)
}
