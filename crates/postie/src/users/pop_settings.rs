//! `postie user pop-settings NAME [--window …] [--after-retrieval …]`: the user's POP3
//! settings in the configured store, the same ones the account page sets.

use std::path::Path;
use std::time::SystemTime;

use anyhow::{bail, Context, Result};
use postie::config::Config;
use postie_auth::UserDb;
use postie_intake::rfc5322_date;
use postie_store::{AfterRetrieval, MailStore, PopSettings};

use crate::cli::{AfterRetrievalChoice, PopSettingsArgs, Window};

pub fn run(config_path: &Path, args: PopSettingsArgs) -> Result<()> {
    let config = Config::load_without_tls(config_path)?;
    let store = crate::store::open(&config.store);
    let users = crate::user_db::open(&config, &store)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(async {
        let name = args.name.clone();
        let known = tokio::task::spawn_blocking(move || users.lookup(&name))
            .await
            .context("looking the user up")??;
        if known.is_none() {
            bail!(
                "no user {:?} in {}: add it with `postie user add`",
                args.name,
                config_path.display()
            );
        }
        let mut settings = store.pop_settings(&args.name).await?;
        let changed = args.window.is_some() || args.after_retrieval.is_some();
        match args.window {
            Some(Window::All) => settings.since = None,
            Some(Window::FromNowOn) => settings.since = Some(SystemTime::now()),
            None => {}
        }
        if let Some(choice) = args.after_retrieval {
            settings.after_retrieval = match choice {
                AfterRetrievalChoice::Keep => AfterRetrieval::Keep,
                AfterRetrievalChoice::Archive => AfterRetrieval::Archive,
                AfterRetrievalChoice::Trash => AfterRetrieval::Trash,
                AfterRetrievalChoice::Delete => AfterRetrieval::Delete,
            };
        }
        if changed {
            store.set_pop_settings(&args.name, settings).await?;
        }
        print(&args.name, &settings);
        Ok(())
    })
}

fn print(name: &str, settings: &PopSettings) {
    match settings.since {
        None => println!("{name}: POP3 lists all mail"),
        Some(since) => println!(
            "{name}: POP3 lists mail that arrived from {} on (older mail stays stored)",
            rfc5322_date(since)
        ),
    }
    let after = match settings.after_retrieval {
        AfterRetrieval::Keep => "keep it listed",
        AfterRetrieval::Archive => "archive it (kept, listed only to recent: logins)",
        AfterRetrieval::Trash => "move it to the trash",
        AfterRetrieval::Delete => "delete it",
    };
    println!("{name}: once a POP3 client has retrieved a message: {after}");
}
