//! `postie fetch login NAME`: signs an account in at its OAuth provider (a browser and a
//! loopback redirect, or `--device` for a code typed on another device) and keeps the tokens
//! in the account's state folder, from where every fetch renews them.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use clap::Args;
use postie_fetch::config::{default_config_path, resolve_path};
use postie_fetch::oauth::tokens::Grant;
use postie_fetch::oauth::{device, loopback, SignInSettings, TokenStore};
use postie_fetch::{ExitStatus, FetchConfig, FetchError};

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The account, as named in the accounts file; it needs oauth_provider or oauth_issuer,
    /// and oauth_client_id.
    pub name: String,
    /// Sign in on another device (a phone, another computer) with a code shown here, rather
    /// than in a browser on this machine.
    #[arg(long)]
    pub device: bool,
}

/// Runs the sign-in for `account`, telling the user what to do as `command` (the command
/// they ran): what the provider granted, for a [`TokenStore`].
pub fn sign_in(
    settings: &SignInSettings,
    account: &str,
    device: bool,
    command: &str,
) -> Result<Grant, FetchError> {
    let grant = if device {
        device::sign_in(settings, account, &mut |code| {
            eprintln!("{command}: to sign in, open this address on any device:");
            eprintln!("  {}", code.verification_uri);
            eprintln!("and enter the code:");
            eprintln!("  {}", code.user_code);
            if let Some(complete) = &code.verification_uri_complete {
                eprintln!("(or open {complete}, which has the code in it)");
            }
            eprintln!("{command}: waiting for the sign-in…");
        })?
    } else {
        loopback::sign_in(settings, account, &mut |url| {
            eprintln!("{command}: open this address in a browser on this machine to sign in:");
            eprintln!("  {url}");
            eprintln!(
                "{command}: waiting for the browser to come back (no browser here? use --device)…"
            );
            open_browser(url);
        })?
    };
    if grant.refresh_token.is_none() {
        eprintln!("{command}: warning: the provider gave no refresh token, so this sign-in lasts only as long as its access token; check that oauth_scopes asks for offline access");
    }
    Ok(grant)
}

/// Opens `url` with xdg-open when there is one; the address is printed either way.
fn open_browser(url: &str) {
    let opened = Command::new("xdg-open")
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if let Ok(mut child) = opened {
        // xdg-open returns once the browser has it; reaped in the background.
        std::thread::spawn(move || child.wait());
    }
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `postie fetch [--config FILE] [--state-dir DIR] login NAME`.
pub fn run(
    args: &LoginArgs,
    config: Option<&PathBuf>,
    state_dir: Option<&Path>,
) -> Result<ExitStatus> {
    let path = config.cloned().unwrap_or_else(default_config_path);
    let config = FetchConfig::load(&path)?;
    let account = config
        .accounts
        .iter()
        .find(|a| a.name == args.name)
        .with_context(|| format!("{}: no account {:?}", path.display(), args.name))?;
    let Some(settings) = &account.sign_in else {
        anyhow::bail!(
            "{}: account {} has no sign-in to do: set oauth_provider (or oauth_issuer) and oauth_client_id in its table",
            path.display(),
            account.name
        );
    };
    let state_dir = match state_dir {
        Some(dir) => resolve_path(&dir.to_string_lossy(), &std::env::current_dir()?),
        None => config.state_dir.clone(),
    };
    let store = TokenStore::for_sign_in(&state_dir, &account.name, settings);
    let grant = sign_in(settings, &account.name, args.device, "postie fetch login")?;
    store.save(&grant, unix_now())?;
    eprintln!(
        "postie fetch login: signed in; the tokens are in {}; fetch with `postie fetch {}`",
        state_dir.display(),
        account.name
    );
    Ok(ExitStatus::Ok)
}
