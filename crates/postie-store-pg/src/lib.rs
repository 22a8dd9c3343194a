//! postie's mail store in PostgreSQL: any number of front ends (POP3, LMTP, SMTP) on any
//! number of machines share one database, which is the one authority on UIDs, quotas and
//! who holds a maildrop.
//!
//! It keeps the contract of `postie-store` ([`MailStore`]) and passes its suite unchanged.
//! What lives where (`migrations/0001_init.sql` has the tables):
//!
//! * `maildrops`: one row per user, the counter row. A delivery takes its UID and adds its
//!   octets in one `UPDATE … RETURNING` that also checks the quota, so racing deliveries from
//!   any number of front ends never overshoot and a UID is never handed out twice.
//! * `bodies` and `body_chunks`: a message body is stored once per delivery however many
//!   recipients it has, in chunks of at most 256 KiB; `messages` holds one row per recipient
//!   with that recipient's own trace headers.
//! * `leases`: an exclusive POP3 session's hold on a maildrop, with an expiry renewed by a
//!   background task while the session lives. A session whose lease was taken over after it
//!   expired cannot apply its QUIT.
//! * `users` (`migrations/0002_users.sql`): the users of `[auth] users = "postgres"`,
//!   [`PgUsers`], their passwords as Dovecot's `{SCHEME}hash` strings.
//! * `login_failures` and `last_logins` (`migrations/0003_login_state.sql`): the brute-force
//!   counts and LOGIN-DELAY's last logins every front end shares, [`PgLoginState`], with
//!   `known_networks` (`migrations/0006_known_networks.sql`): the networks each user logged
//!   in from, which skip the address's delay.
//! * `app_passwords` (`migrations/0007_app_passwords.sql`): the users' app passwords, read
//!   with the user at login, and `users.app_passwords_required`.
//! * `pop_settings` (`migrations/0008_pop_settings.sql`): each user's POP3 settings, read
//!   with the snapshot.
//!
//! Every transaction goes through [`Pool::transaction`], which retries serialization failures
//! and deadlocks. The SQL keeps to what CockroachDB and YugabyteDB also run: no advisory
//! locks, no LISTEN/NOTIFY, no large objects, no sequences for UIDs.
//!
//! The schema is applied by [`migrate`], explicitly; a store never changes it by itself.

#![forbid(unsafe_code)]

mod app_passwords;
mod body;
mod check;
mod committer;
mod deliver;
mod lease;
mod login_state;
mod maildrop;
mod migrate;
mod next_message;
mod packing;
mod pool;
mod pop_settings;
mod size;
mod tls;
mod transfer;
mod two_step;
mod users;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use postie_store::{Delivery, MailStore, PopSettings, StoreError, Usage, View};
use tokio::sync::Semaphore;
use tokio_postgres::IsolationLevel;

use crate::committer::Committer;

pub use body::PgBody;
pub use check::{CheckReport, Checked, Finding};
pub use login_state::{LoginCounts, PgLoginState};
pub use maildrop::PgDrop;
pub use migrate::{migrate, SCHEMA_VERSION};
pub use pool::{Pool, TxError, TxFuture};
pub use tls::{DbTls, DbTlsError, Transport};
pub use tokio_postgres::config::SslMode;
pub use tokio_postgres::Config;
pub use transfer::{Exported, Imported};
pub use users::{PgUsers, UsersError};

/// How long a connect to one host may take when the URL does not say (`connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How a [`PgStore`] uses the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PgOptions {
    /// Connections this front end opens at most.
    pub pool_size: usize,
    /// How long a caller waits for a free connection before a temporary failure.
    pub acquire_timeout: Duration,
    /// How long a transaction keeps trying while no host takes writes (the primary is
    /// down and no replica promoted yet) before a temporary failure.
    pub reconnect_within: Duration,
    /// How long an exclusive session's lease lasts without renewal: after a crash, the
    /// maildrop is free again this long after the last renewal.
    pub lease_ttl: Duration,
    /// How often a live session renews its lease; well under `lease_ttl`.
    pub lease_renew_every: Duration,
    /// How long a body stays after the last message referring to it is gone before
    /// [`PgStore::sweep`] reclaims it: longer than any RETR may take.
    pub sweep_grace: Duration,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            pool_size: 8,
            acquire_timeout: Duration::from_secs(30),
            reconnect_within: Duration::from_secs(30),
            lease_ttl: Duration::from_secs(300),
            lease_renew_every: Duration::from_secs(60),
            sweep_grace: Duration::from_secs(3600),
        }
    }
}

/// The database a [`PgStore`] reached, as [`PgStore::status`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseStatus {
    /// The server's address and port, as it sees them.
    pub server: String,
    pub read_only: bool,
    pub schema_version: Option<i32>,
}

/// Maildrops in a PostgreSQL database; clones share one connection pool.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    options: PgOptions,
    /// Tokens of leases this front end's sessions let go of whose rows may not be deleted
    /// yet (the delete is spawned when a session is dropped): a new session here may take
    /// them over at once.
    released: Arc<Mutex<HashSet<i64>>>,
    /// Deliveries' copies, committed a maildrop's batch at a time.
    committer: Committer,
    /// Messages the sessions may read ahead at once.
    read_ahead: Arc<Semaphore>,
}

impl PgStore {
    /// A store on the database `config` names, without TLS (loopback or a trusted network).
    /// Connects lazily, on the runtime of the first call.
    pub fn new(config: Config, options: PgOptions) -> Self {
        PgStore::with_transport(config, options, Transport::Plain)
    }

    /// [`PgStore::new`] over `transport`: with [`Transport::Tls`], every connection uses TLS
    /// and the server's certificate is verified.
    pub fn with_transport(mut config: Config, options: PgOptions, transport: Transport) -> Self {
        if config.get_connect_timeout().is_none() {
            // A host that vanished without a word must not hold a connect forever: the next
            // host, or the next attempt, gets its turn.
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let pool = Pool::new(
            config,
            transport,
            options.pool_size,
            options.acquire_timeout,
            options.reconnect_within,
        );
        PgStore {
            committer: Committer::new(pool.clone()),
            read_ahead: Arc::new(Semaphore::new(next_message::READ_AHEAD_BUDGET)),
            pool,
            options,
            released: Arc::new(Mutex::new(HashSet::new())),
        }
    }

    /// The store's connections, and the transaction helper every query goes through.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Applies the schema's migrations (see [`migrate`]) on one of the store's connections.
    pub async fn migrate(&self) -> Result<Vec<i32>, StoreError> {
        migrate(&*self.pool.get().await?).await
    }

    /// What `postie check-config` reports: the server reached, whether it takes writes,
    /// and the schema version found (None before the first `migrate`).
    pub async fn status(&self) -> Result<DatabaseStatus, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one(
                "SELECT coalesce(host(inet_server_addr()), 'a local socket'),
                        current_setting('port'),
                        current_setting('transaction_read_only') = 'on',
                        to_regclass('postie_schema_version') IS NOT NULL",
                &[],
            )
            .await
            .map_err(|e| StoreError::Temporary(pool::describe(&e)))?;
        let schema_version = if row.get::<_, bool>(3) {
            client
                .query_one("SELECT max(version) FROM postie_schema_version", &[])
                .await
                .map_err(|e| StoreError::Temporary(pool::describe(&e)))?
                .get(0)
        } else {
            None
        };
        Ok(DatabaseStatus {
            server: format!("{}:{}", row.get::<_, String>(0), row.get::<_, String>(1)),
            read_only: row.get(2),
            schema_version,
        })
    }

    /// Whether a database host that takes writes answers now, asked on a connection of its
    /// own (the pool's may all be busy, or older than a failover): the server reached, or
    /// why none was. Bounded by the connect timeout per host the URL names.
    pub async fn check_writable(&self) -> Result<String, String> {
        let unreachable = |why: String| format!("no read-write database host is reachable: {why}");
        let client = self
            .pool
            .connect_raw()
            .await
            .map_err(|e| unreachable(pool::describe(&e)))?;
        let row = client
            .query_one(
                "SELECT coalesce(host(inet_server_addr()), 'a local socket') || ':'
                        || current_setting('port'),
                        current_setting('transaction_read_only') = 'on'",
                &[],
            )
            .await
            .map_err(|e| unreachable(pool::describe(&e)))?;
        let server: String = row.get(0);
        if row.get::<_, bool>(1) {
            return Err(unreachable(format!("{server} is read-only (a standby)")));
        }
        Ok(server)
    }

    /// How many bodies wait for [`PgStore::sweep`]: no message refers to them any more
    /// (those still within their grace period included).
    pub async fn sweep_backlog(&self) -> Result<u64, StoreError> {
        let count: i64 = self
            .pool
            .transaction(IsolationLevel::ReadCommitted, &(), |tx, ()| {
                Box::pin(async move {
                    Ok(tx
                        .query_one(
                            "SELECT count(*) FROM bodies WHERE released_at IS NOT NULL",
                            &[],
                        )
                        .await?
                        .get(0))
                })
            })
            .await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// Deletes up to `batch` bodies that no message has referred to for at least
    /// [`PgOptions::sweep_grace`], with their chunks; returns how many. Run it regularly, in
    /// small batches, from one or more front ends: each batch is one short transaction, and
    /// sweeps running together skip each other's rows.
    pub async fn sweep(&self, batch: u32) -> Result<u64, StoreError> {
        let grace = self.options.sweep_grace.as_secs_f64();
        self.pool
            .transaction(
                IsolationLevel::ReadCommitted,
                &(i64::from(batch), grace),
                |tx, (batch, grace)| {
                    Box::pin(async move {
                        let ids: Vec<i64> = tx
                            .query(
                                "SELECT id FROM bodies
                                 WHERE refs = 0 AND released_at < now() - $2 * interval '1 second'
                                 ORDER BY released_at LIMIT $1
                                 FOR UPDATE SKIP LOCKED",
                                &[batch, grace],
                            )
                            .await?
                            .iter()
                            .map(|row| row.get(0))
                            .collect();
                        if ids.is_empty() {
                            return Ok(0);
                        }
                        tx.execute("DELETE FROM body_chunks WHERE body_id = ANY($1)", &[&ids])
                            .await?;
                        Ok(tx
                            .execute("DELETE FROM bodies WHERE id = ANY($1)", &[&ids])
                            .await?)
                    })
                },
            )
            .await
    }

    /// Forgets up to `batch` delivery fences a day old (no transaction lives that long, so
    /// none can still need one); how many it forgot. Any number of front ends may run it.
    pub async fn forget_fences(&self, batch: u32) -> Result<u64, StoreError> {
        self.pool
            .transaction(
                IsolationLevel::ReadCommitted,
                &i64::from(batch),
                |tx, batch| {
                    Box::pin(async move {
                        Ok(tx
                            .execute(
                                "DELETE FROM delivery_fences WHERE delivery_id IN (
                                 SELECT delivery_id FROM delivery_fences
                                 WHERE created_at < now() - interval '1 day'
                                 LIMIT $1)",
                                &[batch],
                            )
                            .await?)
                    })
                },
            )
            .await
    }
}

impl MailStore for PgStore {
    type Maildrop = PgDrop;

    async fn open(&self, user: &str, exclusive: bool, view: View) -> Result<PgDrop, StoreError> {
        maildrop::open(self, user, exclusive, view).await
    }

    async fn pop_settings(&self, user: &str) -> Result<PopSettings, StoreError> {
        pop_settings::get(self, user).await
    }

    async fn set_pop_settings(&self, user: &str, settings: PopSettings) -> Result<(), StoreError> {
        pop_settings::set(self, user, settings).await
    }

    async fn deliver(&self, delivery: Delivery) -> Vec<Result<(), StoreError>> {
        deliver::deliver(&self.pool, &self.committer, delivery).await
    }

    async fn usage(&self, user: &str) -> Result<Usage, StoreError> {
        let row = self
            .pool
            .transaction(IsolationLevel::ReadCommitted, user, |tx, user| {
                Box::pin(async move {
                    Ok(tx
                        .query_opt(
                            "SELECT bytes, messages FROM maildrops WHERE user_name = $1",
                            &[&user],
                        )
                        .await?)
                })
            })
            .await?;
        Ok(row
            .map(|row| Usage {
                bytes: u64::try_from(row.get::<_, i64>(0)).unwrap_or(0),
                messages: u64::try_from(row.get::<_, i64>(1)).unwrap_or(0),
            })
            .unwrap_or_default())
    }
}
