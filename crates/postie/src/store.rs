//! The one place where the configured store is chosen and opened: `serve`, `deliver`, the
//! demo, `check-config` and reload all call [`open`]. A new backend is a variant here and a
//! `[mail] store` value in the configuration; everything else is generic over
//! [`MailStore`].

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use postie::config::StoreConfig;
use postie_metrics::METRICS;
use postie_server::http::HealthCheck;
use postie_store::{
    Delivery, MailStore, MaildirBody, MaildirDrop, MaildirStore, Maildrop, MessageBody,
    MessageInfo, StoreError, Update, Usage, WireFile,
};
use postie_store::{PopSettings, View};
use postie_store_pg::{PgBody, PgDrop, PgOptions, PgStore, Transport};

/// The store the configuration names.
#[derive(Clone)]
pub enum ConfiguredStore {
    Maildir(MaildirStore),
    Postgres(PgStore),
}

/// A maildrop of a [`ConfiguredStore`].
pub enum ConfiguredDrop {
    Maildir(MaildirDrop),
    Postgres(Box<PgDrop>),
}

/// A message being read from a [`ConfiguredStore`].
pub enum ConfiguredBody {
    Maildir(MaildirBody),
    Postgres(Box<PgBody>),
}

/// Opens the store `config` names. Opening touches nothing yet: a Maildir is created when
/// first used, and the database is connected to on the first call (on the caller's runtime).
pub fn open(config: &StoreConfig) -> ConfiguredStore {
    match config {
        StoreConfig::Maildir { template } => {
            ConfiguredStore::Maildir(MaildirStore::new(template.clone()))
        }
        StoreConfig::Postgres {
            database,
            pool_size,
            lease,
            tls,
        } => ConfiguredStore::Postgres(PgStore::with_transport(
            (**database).clone(),
            PgOptions {
                pool_size: *pool_size,
                lease_ttl: *lease,
                lease_renew_every: *lease / 5,
                ..PgOptions::default()
            },
            tls.as_ref()
                .map_or(Transport::Plain, |tls| Transport::Tls(tls.trust.clone())),
        )),
    }
}

/// How often a front end reclaims space that QUITs left behind in a database store.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// Bodies reclaimed per sweep transaction: each batch is short, whatever the backlog.
const SWEEP_BATCH: u32 = 100;

/// The background task that reclaims a database store's space after QUITs and forgets old
/// delivery fences and login failures, in small batches, for as long as the server runs
/// (any number of front ends may run it); none for a Maildir, which frees space at QUIT.
pub fn sweeper(store: &ConfiguredStore) -> Option<impl Future<Output = ()> + Send + 'static> {
    let ConfiguredStore::Postgres(store) = store else {
        return None;
    };
    let store = store.clone();
    let login_state = crate::login_records::state(&store);
    Some(async move {
        let mut every = tokio::time::interval(SWEEP_EVERY);
        loop {
            every.tick().await;
            in_batches("reclaiming space in the database", || {
                store.sweep(SWEEP_BATCH)
            })
            .await;
            in_batches("forgetting old delivery fences", || {
                store.forget_fences(SWEEP_BATCH)
            })
            .await;
            // Failure counts of addresses and names that went quiet: a flood of made-up
            // ones must not grow the table for ever.
            in_batches("forgetting old login failures", || {
                login_state.forget_stale(SWEEP_BATCH)
            })
            .await;
            match store.sweep_backlog().await {
                Ok(backlog) => METRICS
                    .db_sweep_backlog
                    .set(i64::try_from(backlog).unwrap_or(i64::MAX)),
                Err(error) => tracing::warn!(%error, "counting what the sweep has left"),
            }
        }
    })
}

/// Runs `batch` until a batch does less than [`SWEEP_BATCH`]; a failure waits for the next
/// round.
async fn in_batches<F, E>(what: &str, mut batch: impl FnMut() -> F)
where
    F: Future<Output = Result<u64, E>>,
    E: std::fmt::Display,
{
    loop {
        match batch().await {
            Ok(done) if done == u64::from(SWEEP_BATCH) => continue,
            Ok(_) => break,
            Err(error) => {
                tracing::warn!(%error, "{what} failed; retrying later");
                break;
            }
        }
    }
}

/// What `/healthz` checks beyond the process itself: for a database store, that a host
/// taking writes answers (a front end that cannot store mail should leave the load
/// balancer's rotation); nothing for a Maildir.
pub fn health_check(store: &ConfiguredStore) -> Option<HealthCheck> {
    let ConfiguredStore::Postgres(store) = store else {
        return None;
    };
    let store = store.clone();
    Some(Arc::new(move || {
        let store = store.clone();
        Box::pin(async move { store.check_writable().await.map(drop) })
    }))
}

// The database's futures are boxed: a session's task is as large as the largest future it
// awaits, and every Maildir session, idle ones included, would otherwise carry room for them.
impl MailStore for ConfiguredStore {
    type Maildrop = ConfiguredDrop;

    async fn open(
        &self,
        user: &str,
        exclusive: bool,
        view: View,
    ) -> Result<ConfiguredDrop, StoreError> {
        match self {
            Self::Maildir(store) => store
                .open(user, exclusive, view)
                .await
                .map(ConfiguredDrop::Maildir),
            Self::Postgres(store) => Box::pin(store.open(user, exclusive, view))
                .await
                .map(|drop| ConfiguredDrop::Postgres(Box::new(drop))),
        }
    }

    async fn pop_settings(&self, user: &str) -> Result<PopSettings, StoreError> {
        match self {
            Self::Maildir(store) => store.pop_settings(user).await,
            Self::Postgres(store) => Box::pin(store.pop_settings(user)).await,
        }
    }

    async fn set_pop_settings(&self, user: &str, settings: PopSettings) -> Result<(), StoreError> {
        match self {
            Self::Maildir(store) => store.set_pop_settings(user, settings).await,
            Self::Postgres(store) => Box::pin(store.set_pop_settings(user, settings)).await,
        }
    }

    async fn deliver(&self, delivery: Delivery) -> Vec<Result<(), StoreError>> {
        match self {
            Self::Maildir(store) => store.deliver(delivery).await,
            Self::Postgres(store) => Box::pin(store.deliver(delivery)).await,
        }
    }

    async fn usage(&self, user: &str) -> Result<Usage, StoreError> {
        match self {
            Self::Maildir(store) => store.usage(user).await,
            Self::Postgres(store) => Box::pin(store.usage(user)).await,
        }
    }
}

impl Maildrop for ConfiguredDrop {
    type Body = ConfiguredBody;

    fn messages(&self) -> &[MessageInfo] {
        match self {
            Self::Maildir(drop) => drop.messages(),
            Self::Postgres(drop) => drop.messages(),
        }
    }

    async fn open_message(&mut self, index: usize) -> Result<ConfiguredBody, StoreError> {
        match self {
            Self::Maildir(drop) => drop.open_message(index).await.map(ConfiguredBody::Maildir),
            Self::Postgres(drop) => Box::pin(drop.open_message(index))
                .await
                .map(|body| ConfiguredBody::Postgres(Box::new(body))),
        }
    }

    async fn quit(self, update: Update) -> Result<(), StoreError> {
        match self {
            Self::Maildir(drop) => drop.quit(update).await,
            Self::Postgres(drop) => Box::pin((*drop).quit(update)).await,
        }
    }
}

impl MessageBody for ConfiguredBody {
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Maildir(body) => body.read(buf).await,
            Self::Postgres(body) => Box::pin(body.read(buf)).await,
        }
    }

    fn wire_file(&self) -> Option<WireFile<'_>> {
        match self {
            Self::Maildir(body) => body.wire_file(),
            Self::Postgres(body) => body.wire_file(),
        }
    }
}
