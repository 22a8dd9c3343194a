//! A small bounded pool of connections, and the one way every transaction is run: retried on
//! serialization failures and deadlocks with jittered backoff, and on a lost or unreachable
//! database until a host that takes writes answers again (a failover), its errors mapped to
//! [`StoreError`].
//!
//! Hand-rolled rather than deadpool-postgres: what the store needs is a semaphore, a stack of
//! idle clients and a check that a client is still connected, about sixty lines, where a pool
//! crate would bring its own runtime glue and configuration surface for no behaviour we use.

use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use postie_metrics::METRICS;
use postie_store::StoreError;
use rand::Rng;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config, IsolationLevel, Transaction};

use crate::tls::Transport;

/// Attempts of one transaction before a serialization failure is given up as temporary.
const MAX_ATTEMPTS: u32 = 8;
/// The first retry waits up to this long, the next ones twice as long each time, up to
/// [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(4);
const MAX_BACKOFF: Duration = Duration::from_millis(250);
/// While no host takes writes, attempts are this far apart at most: a promoted replica is
/// found within about this long.
const MAX_RECONNECT_BACKOFF: Duration = Duration::from_secs(1);

/// Connections to one database, at most `size` at once; clones share them.
#[derive(Clone)]
pub struct Pool {
    shared: Arc<Shared>,
}

struct Shared {
    config: Config,
    transport: Transport,
    permits: Arc<Semaphore>,
    idle: Mutex<Vec<Client>>,
    acquire_timeout: Duration,
    reconnect_within: Duration,
}

/// What a transaction's body can fail with: the database, or a verdict of the store's own
/// (over quota, in use, vanished) that rolls the transaction back as it is.
#[derive(Debug)]
pub enum TxError {
    Db(tokio_postgres::Error),
    Store(StoreError),
}

impl From<tokio_postgres::Error> for TxError {
    fn from(e: tokio_postgres::Error) -> Self {
        TxError::Db(e)
    }
}

impl From<StoreError> for TxError {
    fn from(e: StoreError) -> Self {
        TxError::Store(e)
    }
}

/// The future a transaction's body returns, borrowing the transaction and the context.
pub type TxFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, TxError>> + Send + 'a>>;

/// Why no connection was handed out.
enum Checkout {
    /// Every connection is in use, and none came free in time.
    Busy(StoreError),
    /// No host named by the configuration took a connection that can write.
    Unreachable(String),
}

impl Pool {
    /// A pool that connects lazily, on the runtime of whoever first needs a connection, over
    /// `transport` (with TLS, the server must take it).
    /// A transaction waits up to `acquire_timeout` for a free connection, and keeps trying
    /// for up to `reconnect_within` while the database cannot be reached.
    pub fn new(
        mut config: Config,
        transport: Transport,
        size: usize,
        acquire_timeout: Duration,
        reconnect_within: Duration,
    ) -> Self {
        transport.prepare(&mut config);
        Pool {
            shared: Arc::new(Shared {
                config,
                transport,
                permits: Arc::new(Semaphore::new(size.max(1))),
                idle: Mutex::new(Vec::new()),
                acquire_timeout,
                reconnect_within,
            }),
        }
    }

    /// Whether the pool's connections use TLS.
    pub fn is_tls(&self) -> bool {
        self.shared.transport.is_tls()
    }

    /// A connection for the caller alone until the returned guard is dropped.
    pub async fn get(&self) -> Result<Conn, StoreError> {
        self.checkout().await.map_err(|e| match e {
            Checkout::Busy(e) => e,
            Checkout::Unreachable(reason) => StoreError::Temporary(reason),
        })
    }

    async fn checkout(&self) -> Result<Conn, Checkout> {
        let shared = &self.shared;
        let closed = || {
            Checkout::Busy(StoreError::Temporary(
                "the connection pool is closed".into(),
            ))
        };
        let permit = match Arc::clone(&shared.permits).try_acquire_owned() {
            Ok(permit) => permit,
            Err(TryAcquireError::Closed) => return Err(closed()),
            Err(TryAcquireError::NoPermits) => {
                let waiting = Instant::now();
                let waited = tokio::time::timeout(
                    shared.acquire_timeout,
                    Arc::clone(&shared.permits).acquire_owned(),
                )
                .await;
                METRICS.db_pool_wait.observe(waiting.elapsed());
                waited
                    .map_err(|_| {
                        Checkout::Busy(StoreError::Temporary(format!(
                            "no database connection free within {:?}",
                            shared.acquire_timeout
                        )))
                    })?
                    .map_err(|_| closed())?
            }
        };
        let reused = {
            let mut idle = shared.idle.lock().unwrap_or_else(|p| p.into_inner());
            // A client whose connection ended (server restart, network) is dropped here.
            idle.retain(|client| !client.is_closed());
            idle.pop()
        };
        let client = match reused {
            Some(client) => client,
            None => self.connect().await.map_err(Checkout::Unreachable)?,
        };
        Ok(Conn {
            client: Some(client),
            shared: Arc::clone(shared),
            _permit: permit,
        })
    }

    /// A new connection to the first host, in the configuration's order, that answers (and,
    /// with `target_session_attrs=read-write`, takes writes).
    async fn connect(&self) -> Result<Client, String> {
        self.connect_raw()
            .await
            .map_err(|e| format!("connecting to PostgreSQL: {}", describe(&e)))
    }

    /// A new connection outside the pool, as the pool makes them.
    pub(crate) async fn connect_raw(&self) -> Result<Client, tokio_postgres::Error> {
        self.shared.transport.connect(&self.shared.config).await
    }

    /// Runs `body` in a transaction of `isolation` and commits it; the result is the body's
    /// once COMMIT has returned. The one place where transactions are retried, always on a
    /// fresh transaction, after a jittered backoff:
    /// * a serialization failure or a deadlock (the server rolled back, nothing was
    ///   applied), up to a bounded number of attempts;
    /// * a connection that broke, or a server that shut down, recovers or went read-only,
    ///   anywhere before COMMIT was sent (the server rolls back what it had), and a connect
    ///   that found no host taking writes: the connection is dropped, never pooled again,
    ///   and a new one made, for up to the pool's `reconnect_within`, which is what carries
    ///   a front end across a failover.
    ///
    /// A COMMIT whose answer was lost is never retried: it may have been applied, and only
    /// the caller can tell (see the delivery's in-doubt resolution).
    /// `context` is what the body reads, passed by reference so that each attempt can borrow
    /// it.
    pub async fn transaction<C, T, F>(
        &self,
        isolation: IsolationLevel,
        context: &C,
        body: F,
    ) -> Result<T, StoreError>
    where
        C: Sync + ?Sized,
        F: for<'a> FnMut(&'a Transaction<'a>, &'a C) -> TxFuture<'a, T> + Send,
    {
        self.retrying(isolation, context, body)
            .await
            .map_err(|e| match e {
                Gave::InDoubt(e) => temporary(&e),
                Gave::Failed(TxError::Db(e)) => temporary(&e),
                Gave::Failed(TxError::Store(e)) => e,
            })
    }

    /// [`Pool::transaction`], with a failure left as the database gave it, for callers that
    /// tell some SQLSTATEs apart (a missing table: the schema was not migrated).
    pub async fn transaction_raw<C, T, F>(
        &self,
        isolation: IsolationLevel,
        context: &C,
        body: F,
    ) -> Result<T, TxError>
    where
        C: Sync + ?Sized,
        F: for<'a> FnMut(&'a Transaction<'a>, &'a C) -> TxFuture<'a, T> + Send,
    {
        self.retrying(isolation, context, body)
            .await
            .map_err(|e| match e {
                Gave::InDoubt(e) => TxError::Store(temporary(&e)),
                Gave::Failed(e) => e,
            })
    }

    /// [`Pool::transaction`], telling a COMMIT whose outcome is unknown from a failure.
    pub(crate) async fn transaction_or_in_doubt<C, T, F>(
        &self,
        isolation: IsolationLevel,
        context: &C,
        body: F,
    ) -> Result<T, TxFailure>
    where
        C: Sync + ?Sized,
        F: for<'a> FnMut(&'a Transaction<'a>, &'a C) -> TxFuture<'a, T> + Send,
    {
        self.retrying(isolation, context, body)
            .await
            .map_err(|e| match e {
                Gave::InDoubt(e) => TxFailure::InDoubt(temporary(&e)),
                Gave::Failed(TxError::Db(e)) => TxFailure::Failed(temporary(&e)),
                Gave::Failed(TxError::Store(e)) => TxFailure::Failed(e),
            })
    }

    /// The retry loop itself; what it gives up on is left as it came.
    async fn retrying<C, T, F>(
        &self,
        isolation: IsolationLevel,
        context: &C,
        mut body: F,
    ) -> Result<T, Gave>
    where
        C: Sync + ?Sized,
        F: for<'a> FnMut(&'a Transaction<'a>, &'a C) -> TxFuture<'a, T> + Send,
    {
        let mut retry = Retry::new(&self.shared);
        loop {
            let mut conn = match self.checkout().await {
                Ok(conn) => conn,
                Err(out) => {
                    retry.after(out.into()).await?;
                    continue;
                }
            };
            let failed = match run(&mut conn, isolation, context, &mut body).await {
                Ok(value) => return Ok(value),
                Err(failed) => failed,
            };
            retry.after(conn.judge(failed)).await?;
        }
    }

    /// Runs `body`'s statements outside a transaction, each with a snapshot of its own: for
    /// a read that one statement answers, without the round trips of BEGIN and COMMIT.
    /// Retried as [`Pool::transaction`] retries, on another connection when this one broke.
    pub async fn read<C, T, F>(&self, context: &C, mut body: F) -> Result<T, StoreError>
    where
        C: Sync + ?Sized,
        F: for<'a> FnMut(&'a Client, &'a C) -> TxFuture<'a, T> + Send,
    {
        let mut retry = Retry::new(&self.shared);
        loop {
            let failed = match self.checkout().await {
                Ok(conn) => match body(&conn, context).await {
                    Ok(value) => return Ok(value),
                    Err(e) => {
                        let failed = Failed::BeforeCommit(e);
                        conn.judge(failed)
                    }
                },
                Err(out) => out.into(),
            };
            retry.after(failed).await.map_err(|e| match e {
                Gave::InDoubt(e) | Gave::Failed(TxError::Db(e)) => temporary(&e),
                Gave::Failed(TxError::Store(e)) => e,
            })?;
        }
    }
}

/// How many times, and since when, one transaction has been tried.
struct Retry<'p> {
    shared: &'p Shared,
    conflicts: u32,
    unreachable_since: Option<Instant>,
    reconnects: u32,
}

impl<'p> Retry<'p> {
    fn new(shared: &'p Shared) -> Self {
        Retry {
            shared,
            conflicts: 1,
            unreachable_since: None,
            reconnects: 0,
        }
    }

    /// Waits before the next attempt after `attempt`, or gives up.
    async fn after(&mut self, attempt: Attempt) -> Result<(), Gave> {
        match attempt {
            Attempt::Conflict(e) if self.conflicts < MAX_ATTEMPTS => {
                tracing::debug!(attempt = self.conflicts, error = %describe(&e), "retrying a transaction");
                METRICS
                    .db_retries
                    .inc([e.code().map_or("connection", sqlstate_label)]);
                tokio::time::sleep(backoff(self.conflicts, MAX_BACKOFF)).await;
                self.conflicts += 1;
                Ok(())
            }
            Attempt::Conflict(e) => Err(Gave::Failed(TxError::Db(e))),
            Attempt::Unreachable { reason, sqlstate } => {
                let since = *self.unreachable_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= self.shared.reconnect_within {
                    return Err(Gave::Failed(TxError::Store(StoreError::Temporary(
                        format!(
                            "{reason}; no PostgreSQL host that takes writes answered within {:?}",
                            self.shared.reconnect_within
                        ),
                    ))));
                }
                tracing::debug!(error = %reason, "the database is out of reach; trying again");
                METRICS.db_retries.inc([sqlstate]);
                self.reconnects += 1;
                tokio::time::sleep(backoff(self.reconnects, MAX_RECONNECT_BACKOFF)).await;
                Ok(())
            }
            Attempt::InDoubt(e) => Err(Gave::InDoubt(e)),
            Attempt::Fail(e) => Err(Gave::Failed(e)),
        }
    }
}

impl From<Checkout> for Attempt {
    fn from(out: Checkout) -> Self {
        match out {
            Checkout::Busy(e) => Attempt::Fail(e.into()),
            Checkout::Unreachable(reason) => Attempt::Unreachable {
                reason,
                sqlstate: "connection",
            },
        }
    }
}

/// One transaction on `conn`, and where it failed if it did.
async fn run<C, T, F>(
    conn: &mut Conn,
    isolation: IsolationLevel,
    context: &C,
    body: &mut F,
) -> Result<T, Failed>
where
    C: Sync + ?Sized,
    F: for<'a> FnMut(&'a Transaction<'a>, &'a C) -> TxFuture<'a, T> + Send,
{
    let transaction = conn
        .build_transaction()
        .isolation_level(isolation)
        .start()
        .await
        .map_err(|e| Failed::BeforeCommit(TxError::Db(e)))?;
    // On an error the transaction is dropped, which rolls it back.
    let value = body(&transaction, context)
        .await
        .map_err(Failed::BeforeCommit)?;
    transaction.commit().await.map_err(Failed::Commit)?;
    Ok(value)
}

/// Where a transaction failed: before its COMMIT was sent, nothing of it can be applied.
enum Failed {
    BeforeCommit(TxError),
    Commit(tokio_postgres::Error),
}

/// What to do after a failed attempt.
enum Attempt {
    /// The server rolled back on a conflict with another transaction: run it again.
    Conflict(tokio_postgres::Error),
    /// The connection is unusable (or none could be made) and nothing was applied: run it
    /// again on a new connection. `sqlstate` says why, for the metrics.
    Unreachable {
        reason: String,
        sqlstate: &'static str,
    },
    /// The COMMIT was sent and its answer lost: it may or may not have been applied.
    InDoubt(tokio_postgres::Error),
    Fail(TxError),
}

/// How a transaction failed, for a caller that can resolve a lost COMMIT.
pub(crate) enum TxFailure {
    /// The COMMIT was sent and its answer lost: only a lookup can tell whether it applied.
    InDoubt(StoreError),
    /// Nothing of the transaction was applied.
    Failed(StoreError),
}

/// What the retry loop gave up on.
enum Gave {
    /// The COMMIT was sent and its answer lost.
    InDoubt(tokio_postgres::Error),
    /// Nothing of the transaction was applied.
    Failed(TxError),
}

/// The SQLSTATEs the helper retries on, as the metrics' fixed label values.
const RETRIED_SQLSTATES: [&str; 6] = ["40001", "40P01", "57P01", "57P02", "57P03", "25006"];

fn sqlstate_label(code: &SqlState) -> &'static str {
    RETRIED_SQLSTATES
        .into_iter()
        .find(|retried| *retried == code.code())
        .unwrap_or("other")
}

/// SQLSTATEs after which the server has rolled back and a new attempt may succeed.
fn is_conflict(code: &SqlState) -> bool {
    *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED
}

/// SQLSTATEs that say this connection's server cannot take the transaction (shutting down,
/// crashed, recovering, or a standby now): another connection, perhaps to another host, may.
fn is_server_gone(code: &SqlState) -> bool {
    *code == SqlState::ADMIN_SHUTDOWN
        || *code == SqlState::CRASH_SHUTDOWN
        || *code == SqlState::CANNOT_CONNECT_NOW
        || *code == SqlState::READ_ONLY_SQL_TRANSACTION
}

impl Failed {
    /// `closed`: the connection has ended since.
    fn classify(self, closed: bool) -> Attempt {
        match self {
            Failed::BeforeCommit(TxError::Db(e)) => match e.code() {
                Some(code) if is_conflict(code) => Attempt::Conflict(e),
                Some(code) if is_server_gone(code) => Attempt::Unreachable {
                    reason: describe(&e),
                    sqlstate: sqlstate_label(code),
                },
                None if closed || e.is_closed() => Attempt::Unreachable {
                    reason: describe(&e),
                    sqlstate: "connection",
                },
                _ => Attempt::Fail(TxError::Db(e)),
            },
            Failed::BeforeCommit(store) => Attempt::Fail(store),
            // A COMMIT refused on a conflict was rolled back; any other failure leaves its
            // outcome unknown.
            Failed::Commit(e) => match e.code() {
                Some(code) if is_conflict(code) => Attempt::Conflict(e),
                _ => Attempt::InDoubt(e),
            },
        }
    }
}

/// Full jitter: anywhere from nothing to an exponentially growing cap, so that transactions
/// that collided once do not collide again in step.
fn backoff(attempt: u32, max: Duration) -> Duration {
    let cap = FIRST_BACKOFF.saturating_mul(1 << attempt.min(16)).min(max);
    rand::thread_rng().gen_range(Duration::ZERO..=cap)
}

/// Every database failure is temporary for the store's callers: mail is retried by its sender
/// and a POP3 client logs in again, where a permanent error would bounce mail over a hiccup.
fn temporary(e: &tokio_postgres::Error) -> StoreError {
    StoreError::Temporary(format!("PostgreSQL: {}", describe(e)))
}

/// The server's message and SQLSTATE where there is one (the error's own Display says only
/// "db error"), or the error with its causes (a TLS failure's says only "error performing
/// TLS handshake"; the certificate problem is in its source).
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} ({})", db.message(), db.code().code());
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A pooled connection; back to the pool when dropped, unless its connection has ended.
pub struct Conn {
    client: Option<Client>,
    shared: Arc<Shared>,
    _permit: OwnedSemaphorePermit,
}

impl Conn {
    /// What to do after `failed` on this connection; a connection whose server cannot take
    /// transactions is closed instead of pooled.
    fn judge(mut self, failed: Failed) -> Attempt {
        let attempt = failed.classify(self.is_closed());
        if matches!(attempt, Attempt::Unreachable { .. }) {
            self.client = None;
        }
        attempt
    }
}

impl Deref for Conn {
    type Target = Client;

    fn deref(&self) -> &Client {
        self.client.as_ref().expect("a client until dropped")
    }
}

impl DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut Client {
        self.client.as_mut().expect("a client until dropped")
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            if !client.is_closed() {
                let mut idle = self.shared.idle.lock().unwrap_or_else(|p| p.into_inner());
                idle.push(client);
            }
        }
    }
}
