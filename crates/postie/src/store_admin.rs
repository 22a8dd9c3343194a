//! `postie store`: what an operator does to the store itself, apart from serving it.

use std::path::Path;

use anyhow::{bail, Context, Result};
use postie::config::{Config, StoreConfig};
use postie_auth::passwd_file;
use postie_store_pg::{Imported, PgStore, SCHEMA_VERSION};

use crate::cli::{ImportArgs, StoreAction, StoreArgs};
use crate::store::ConfiguredStore;

pub fn run(args: StoreArgs) -> Result<()> {
    let config = Config::load_without_tls(&args.config)?;
    if let StoreConfig::Maildir { .. } = config.store {
        bail!(
            "{}: [mail] store is \"maildir\", which has no schema: `postie store` is for store = \"postgres\"",
            config.path.display()
        );
    }
    let ConfiguredStore::Postgres(store) = crate::store::open(&config.store) else {
        unreachable!("a postgres configuration opens a postgres store");
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(async {
        match args.action {
            StoreAction::Migrate => migrate(&store).await,
            StoreAction::Check { dry_run } => check(&store, !dry_run).await,
            StoreAction::ImportMaildir(args) => import(&store, &config, args).await,
            StoreAction::Export { user, maildir } => export(&store, &user, &maildir).await,
        }
    })
}

async fn migrate(store: &PgStore) -> Result<()> {
    let applied = store
        .migrate()
        .await
        .context("cannot migrate the database of [postgres] url")?;
    match applied.as_slice() {
        [] => println!("the schema is current (version {SCHEMA_VERSION}); nothing to do"),
        versions => println!(
            "applied migration(s) {}; the schema is at version {SCHEMA_VERSION}",
            versions
                .iter()
                .map(i32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
    Ok(())
}

async fn check(store: &PgStore, repair: bool) -> Result<()> {
    let report = store
        .check(repair)
        .await
        .context("cannot check the database of [postgres] url")?;
    for checked in &report.findings {
        let outcome = match (checked.repaired, checked.finding.repairable()) {
            (true, _) => "repaired",
            (false, true) if repair => "NOT repaired (changed meanwhile? run the check again)",
            (false, true) => "not repaired (--dry-run)",
            (false, false) => "NOT repairable",
        };
        println!("{}: {outcome}", checked.finding);
    }
    let left: Vec<_> = report.findings.iter().filter(|c| !c.repaired).collect();
    println!(
        "checked {} maildrop(s) and {} bodies: {} finding(s), {} repaired",
        report.maildrops,
        report.bodies,
        report.findings.len(),
        report.findings.len() - left.len()
    );
    if left.iter().any(|c| !c.finding.repairable()) {
        bail!(
            "the database holds damage a check cannot repair (above): the affected messages \
             cannot be read whole; restore them from a backup or delete them"
        );
    }
    if !left.is_empty() {
        bail!("{} finding(s) left unrepaired", left.len());
    }
    Ok(())
}

async fn import(store: &PgStore, config: &Config, args: ImportArgs) -> Result<()> {
    if let (Some(user), Some(maildir)) = (&args.user, &args.maildir) {
        return import_one(store, user, maildir).await;
    }
    let users = passwd_file::list_users(&config.passwd_file).with_context(|| {
        format!(
            "cannot list the users of {} ([auth] passwd_file)",
            config.passwd_file.display()
        )
    })?;
    let mut failed = 0;
    for user in users {
        let maildir = config.maildir_template.replace("{user}", &user);
        let maildir = Path::new(&maildir);
        if !maildir.exists() {
            println!("{user}: no Maildir at {}; skipped", maildir.display());
            continue;
        }
        if let Err(error) = import_one(store, &user, maildir).await {
            eprintln!("postie: {error:#}");
            failed += 1;
        }
    }
    if failed > 0 {
        bail!("{failed} user(s) not imported (above); the others are; run it again once fixed");
    }
    Ok(())
}

async fn import_one(store: &PgStore, user: &str, maildir: &Path) -> Result<()> {
    let imported = store
        .import_maildir(user, maildir)
        .await
        .with_context(|| format!("{user}: cannot import {}", maildir.display()))?;
    match imported {
        Imported::Done {
            messages,
            bytes,
            uidvalidity,
        } => println!(
            "{user}: imported {messages} message(s), {bytes} octets, from {} (uidvalidity {uidvalidity})",
            maildir.display()
        ),
        Imported::AlreadyImported { uidvalidity } => println!(
            "{user}: already imported (the maildrop is numbered with {}'s uidvalidity {uidvalidity}); nothing changed",
            maildir.display()
        ),
    }
    Ok(())
}

async fn export(store: &PgStore, user: &str, maildir: &Path) -> Result<()> {
    let exported = store
        .export_maildir(user, maildir)
        .await
        .with_context(|| format!("{user}: cannot export to {}", maildir.display()))?;
    println!(
        "{user}: exported {} message(s) to {} (uidvalidity {})",
        exported.messages,
        maildir.display(),
        exported.uidvalidity
    );
    Ok(())
}
