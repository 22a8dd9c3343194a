//! `postie store`: what an operator does to the store itself, apart from serving it.

use anyhow::{bail, Context, Result};
use postie::config::{Config, StoreConfig};
use postie_store_pg::SCHEMA_VERSION;

use crate::cli::{StoreAction, StoreArgs};
use crate::store::ConfiguredStore;

pub fn run(args: StoreArgs) -> Result<()> {
    let config = Config::load_without_tls(&args.config)?;
    if let StoreConfig::Maildir { .. } = config.store {
        bail!(
            "{}: [mail] store is \"maildir\", which has no schema: `postie store migrate` is for store = \"postgres\"",
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
    match args.action {
        StoreAction::Migrate => runtime.block_on(async {
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
        }),
    }
}
