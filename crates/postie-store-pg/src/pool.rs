//! A small bounded pool of connections, and the one way every transaction is run: retried on
//! serialization failures and deadlocks with jittered backoff, its errors mapped to
//! [`StoreError`].
//!
//! Hand-rolled rather than deadpool-postgres: what the store needs is a semaphore, a stack of
//! idle clients and a check that a client is still connected, about sixty lines, where a pool
//! crate would bring its own runtime glue and configuration surface for no behaviour we use.

use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use postie_store::StoreError;
use rand::Rng;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config, IsolationLevel, NoTls, Transaction};

/// Attempts of one transaction before a serialization failure is given up as temporary.
const MAX_ATTEMPTS: u32 = 8;
/// The first retry waits up to this long, the next ones twice as long each time, up to
/// [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(4);
const MAX_BACKOFF: Duration = Duration::from_millis(250);

/// Connections to one database, at most `size` at once; clones share them.
#[derive(Clone)]
pub struct Pool {
    shared: Arc<Shared>,
}

struct Shared {
    config: Config,
    permits: Arc<Semaphore>,
    idle: Mutex<Vec<Client>>,
    acquire_timeout: Duration,
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

impl Pool {
    /// A pool that connects lazily, on the runtime of whoever first needs a connection.
    /// `NoTls`: TLS to the database is not configured yet (loopback and trusted networks only).
    pub fn new(config: Config, size: usize, acquire_timeout: Duration) -> Self {
        Pool {
            shared: Arc::new(Shared {
                config,
                permits: Arc::new(Semaphore::new(size.max(1))),
                idle: Mutex::new(Vec::new()),
                acquire_timeout,
            }),
        }
    }

    /// A connection for the caller alone until the returned guard is dropped.
    pub async fn get(&self) -> Result<Conn, StoreError> {
        let shared = &self.shared;
        let permit = tokio::time::timeout(
            shared.acquire_timeout,
            Arc::clone(&shared.permits).acquire_owned(),
        )
        .await
        .map_err(|_| {
            StoreError::Temporary(format!(
                "no database connection free within {:?}",
                shared.acquire_timeout
            ))
        })?
        .map_err(|_| StoreError::Temporary("the connection pool is closed".into()))?;
        let reused = {
            let mut idle = shared.idle.lock().unwrap_or_else(|p| p.into_inner());
            // A client whose connection ended (server restart, network) is dropped here.
            idle.retain(|client| !client.is_closed());
            idle.pop()
        };
        let client = match reused {
            Some(client) => client,
            None => self.connect().await?,
        };
        Ok(Conn {
            client: Some(client),
            shared: Arc::clone(shared),
            _permit: permit,
        })
    }

    async fn connect(&self) -> Result<Client, StoreError> {
        let (client, connection) = self
            .shared
            .config
            .connect(NoTls)
            .await
            .map_err(|e| StoreError::Temporary(format!("connecting to PostgreSQL: {e}")))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "a PostgreSQL connection ended");
            }
        });
        Ok(client)
    }

    /// Runs `body` in a transaction of `isolation` and commits it; the result is the body's
    /// once COMMIT has returned. The one place where transactions are retried: a
    /// serialization failure or a deadlock (the server rolled back, nothing was applied), or
    /// a pooled connection found dead when the transaction began, runs `body` again on a
    /// fresh transaction after a jittered backoff, up to a bounded number of attempts.
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
        self.transaction_raw(isolation, context, body)
            .await
            .map_err(|error| match error {
                TxError::Db(e) => temporary(&e),
                TxError::Store(e) => e,
            })
    }

    /// [`Pool::transaction`], with a failure left as the database gave it, for callers that
    /// tell some SQLSTATEs apart (a missing table: the schema was not migrated).
    pub async fn transaction_raw<C, T, F>(
        &self,
        isolation: IsolationLevel,
        context: &C,
        mut body: F,
    ) -> Result<T, TxError>
    where
        C: Sync + ?Sized,
        F: for<'a> FnMut(&'a Transaction<'a>, &'a C) -> TxFuture<'a, T> + Send,
    {
        let mut attempt = 1;
        loop {
            match self.attempt(isolation, context, &mut body).await {
                Ok(value) => return Ok(value),
                Err(Attempt::Retry(e)) if attempt < MAX_ATTEMPTS => {
                    tracing::debug!(attempt, error = %describe(&e), "retrying a transaction");
                    tokio::time::sleep(backoff(attempt)).await;
                    attempt += 1;
                }
                Err(Attempt::Retry(e)) => return Err(TxError::Db(e)),
                Err(Attempt::Fail(error)) => return Err(error),
            }
        }
    }

    async fn attempt<C, T, F>(
        &self,
        isolation: IsolationLevel,
        context: &C,
        body: &mut F,
    ) -> Result<T, Attempt>
    where
        C: Sync + ?Sized,
        F: for<'a> FnMut(&'a Transaction<'a>, &'a C) -> TxFuture<'a, T> + Send,
    {
        let mut conn = self.get().await.map_err(|e| Attempt::Fail(e.into()))?;
        let transaction = match conn
            .build_transaction()
            .isolation_level(isolation)
            .start()
            .await
        {
            Ok(transaction) => transaction,
            // Nothing was begun: safe to try again on another connection.
            Err(e) if e.is_closed() => return Err(Attempt::Retry(e)),
            Err(e) => return Err(Attempt::classify(TxError::Db(e))),
        };
        // On an error the transaction is dropped, which rolls it back.
        let value = body(&transaction, context)
            .await
            .map_err(Attempt::classify)?;
        transaction
            .commit()
            .await
            .map_err(|e| Attempt::classify(TxError::Db(e)))?;
        Ok(value)
    }
}

enum Attempt {
    Retry(tokio_postgres::Error),
    Fail(TxError),
}

impl Attempt {
    fn classify(e: TxError) -> Attempt {
        match e {
            TxError::Db(e)
                if matches!(
                    e.code(),
                    Some(&SqlState::T_R_SERIALIZATION_FAILURE | &SqlState::T_R_DEADLOCK_DETECTED)
                ) =>
            {
                Attempt::Retry(e)
            }
            other => Attempt::Fail(other),
        }
    }
}

/// Full jitter: anywhere from nothing to an exponentially growing cap, so that transactions
/// that collided once do not collide again in step.
fn backoff(attempt: u32) -> Duration {
    let cap = FIRST_BACKOFF
        .saturating_mul(1 << attempt.min(16))
        .min(MAX_BACKOFF);
    rand::thread_rng().gen_range(Duration::ZERO..=cap)
}

/// Every database failure is temporary for the store's callers: mail is retried by its sender
/// and a POP3 client logs in again, where a permanent error would bounce mail over a hiccup.
fn temporary(e: &tokio_postgres::Error) -> StoreError {
    StoreError::Temporary(format!("PostgreSQL: {}", describe(e)))
}

/// The server's message and SQLSTATE where there is one (the error's own Display says only
/// "db error").
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

/// A pooled connection; back to the pool when dropped, unless its connection has ended.
pub struct Conn {
    client: Option<Client>,
    shared: Arc<Shared>,
    _permit: OwnedSemaphorePermit,
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
