//! `postie fetch status`: each account's record from the state folder (last check, last
//! success, messages and octets of the last run and in all, last error, next poll), as text
//! or JSON. The daemon serves the same records on `[daemon] status_listen`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use postie_fetch::config::{default_config_path, resolve_path};
use postie_fetch::poll::unix_now;
use postie_fetch::status::{self, AccountStatus};
use postie_fetch::FetchConfig;

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Account names (default: every account of the configuration).
    pub accounts: Vec<String>,
    /// The accounts file (default: ~/.config/postie/fetch.toml).
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,
    /// The state folder, instead of the configuration's; without a configuration, every
    /// account with a record in it.
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// The records as JSON (the form of the daemon's /status).
    #[arg(long)]
    pub json: bool,
}

/// `parent_config` is a --config given before `status` (`postie fetch -c FILE status`).
pub fn run(args: &StatusArgs, parent_config: Option<&PathBuf>) -> Result<()> {
    let config = args.config.as_ref().or(parent_config);
    let (state_dir, mut names) = folder_and_accounts(args, config)?;
    if !args.accounts.is_empty() {
        if let Some(unknown) = args.accounts.iter().find(|a| !names.contains(a)) {
            anyhow::bail!("no account {unknown:?} (accounts: {})", names.join(", "));
        }
        names.clone_from(&args.accounts);
    }
    let records = names
        .iter()
        .map(|name| AccountStatus::load(&state_dir, name))
        .collect::<Result<Vec<_>, _>>()?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&records)?);
    } else {
        print!("{}", status::text(&records, unix_now()));
    }
    Ok(())
}

/// The state folder and the accounts to show.
fn folder_and_accounts(
    args: &StatusArgs,
    config: Option<&PathBuf>,
) -> Result<(PathBuf, Vec<String>)> {
    let here = std::env::current_dir()?;
    let state_dir = args
        .state_dir
        .as_ref()
        .map(|dir| resolve_path(&dir.to_string_lossy(), &here));
    match (config, state_dir) {
        (None, Some(dir)) => {
            let names = recorded_accounts(&dir)?;
            Ok((dir, names))
        }
        (config, state_dir) => {
            let path = config.cloned().unwrap_or_else(default_config_path);
            let config = FetchConfig::load(&path)?;
            let names = config.accounts.iter().map(|a| a.name.clone()).collect();
            Ok((state_dir.unwrap_or(config.state_dir), names))
        }
    }
}

/// Every account with a status record in `dir`.
fn recorded_accounts(dir: &std::path::Path) -> Result<Vec<String>> {
    let entries = std::fs::read_dir(dir).with_context(|| {
        format!(
            "cannot read the state folder {} (the first run of postie fetch makes it)",
            dir.display()
        )
    })?;
    let mut names: Vec<String> = entries
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".status.json")
                .filter(|n| !n.starts_with('.'))
                .map(str::to_owned)
        })
        .collect();
    names.sort();
    Ok(names)
}
