//! `postie user …` and `postie pw …`: the passwd-file, edited in place.

use std::io::BufRead;
use std::path::Path;

use anyhow::{bail, Context, Result};
use postie_auth::{hash_password, passwd_file, Scheme};

use crate::cli::{PasswordArgs, PwAction, PwArgs, UserAction, UserArgs};
use postie::config::Config;

pub fn user(args: UserArgs) -> Result<()> {
    let path = match &args.passwd_file {
        Some(path) => path.clone(),
        None => Config::passwd_file(&args.config)?,
    };
    match args.action {
        UserAction::Add(password) => set(&path, password, false),
        UserAction::Passwd(password) => set(&path, password, true),
        UserAction::Del { name } => {
            if !passwd_file::remove_user(&path, &name)? {
                bail!("no user {name:?} in {}", path.display());
            }
            eprintln!("removed {name} from {}", path.display());
            Ok(())
        }
        UserAction::List => {
            for name in passwd_file::list_users(&path)? {
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
