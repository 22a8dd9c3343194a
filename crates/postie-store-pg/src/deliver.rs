//! Delivery: the body stored once, in chunks, and each recipient's copy added by the
//! maildrop's [`Committer`], which takes a UID and the quota from the counter row.
//!
//! A small message to one recipient (most mail) goes into the database whole in its copy's
//! transaction: one COMMIT, one WAL flush. A larger body, or one shared by several recipients,
//! is written first, in transactions of a few chunks, and marked complete last; until a
//! recipient refers to it, it counts as released, so a delivery that fails half-way leaves
//! only a body that the sweep reclaims.

use std::io::{self, Read};
use std::sync::Arc;

use postie_store::{Delivery, MessageSource, Recipient, StoreError};
use tokio::sync::mpsc;
use tokio_postgres::types::Type;
use tokio_postgres::{IsolationLevel, Transaction};

use crate::committer::Committer;
use crate::packing::Packed;
use crate::pool::Pool;
use crate::size::{crlf_size, BodyCount};

/// The largest chunk of a body, the schema's limit too.
pub(crate) const CHUNK: usize = 256 * 1024;
/// Chunks written per transaction: fewer commits for a large body, a bounded amount in memory.
const CHUNKS_PER_TRANSACTION: usize = 4;

pub(crate) async fn deliver(
    pool: &Pool,
    committer: &Committer,
    delivery: Delivery,
) -> Vec<Result<(), StoreError>> {
    let body = match copy_body(pool, &delivery).await {
        Ok(body) => body,
        Err(e) => return delivery.recipients.iter().map(|_| Err(e.clone())).collect(),
    };
    // Every copy is queued before any is awaited: a message to several users is committed
    // for all of them at once, each in its own maildrop's batch.
    let pending: Vec<_> = delivery
        .recipients
        .iter()
        .map(|recipient| committer.submit(RecipientCopy::new(recipient, body.clone())))
        .collect();
    let mut results = Vec::with_capacity(pending.len());
    for copy in pending {
        results.push(copy.await);
    }
    results
}

/// The body as the recipients' copies refer to it: read whole when it is small and has one
/// recipient, stored first otherwise.
async fn copy_body(pool: &Pool, delivery: &Delivery) -> Result<CopyBody, StoreError> {
    let len = delivery.message.len();
    if delivery.recipients.len() == 1 && len <= CHUNK as u64 {
        let message = Arc::clone(&delivery.message);
        let read = tokio::task::spawn_blocking(move || read_small(&*message))
            .await
            .map_err(|e| StoreError::Temporary(format!("reading the message: {e}")))?
            .map_err(|e| StoreError::Temporary(format!("reading the message: {e}")))?;
        return Ok(CopyBody::Inline(Arc::new(read)));
    }
    let stored = store_body(pool, Arc::clone(&delivery.message), Hold::Released).await?;
    Ok(CopyBody::Stored(Arc::new(stored)))
}

/// A message of at most one chunk, whole, and its count.
fn read_small(message: &dyn MessageSource) -> io::Result<InlineBody> {
    let mut data = vec![0u8; message.len() as usize];
    let n = read_full(&mut message.reader()?, &mut data)?;
    if n != data.len() {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("the message ended after {n} of {} octets", data.len()),
        ));
    }
    let mut count = BodyCount::default();
    count.update(&data);
    Ok(InlineBody {
        chunk: Packed::new(data),
        count,
    })
}

/// A complete body in the database.
pub(crate) struct StoredBody {
    pub id: i64,
    pub count: BodyCount,
}

/// Whether a body nothing refers to yet may be reclaimed by the sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hold {
    /// Released from the start: a delivery refers to it within moments, and a delivery that
    /// fails half-way leaves it for the sweep.
    Released,
    /// Kept until released: an import refers to its bodies only when all are stored, which
    /// may take longer than the sweep's grace.
    Held,
}

/// Reads the message on the blocking pool (a [`MessageSource`] reader blocks) and writes its
/// chunks as they come; at most a few chunks are in memory at once. A body that fits in one
/// batch of chunks is stored in one transaction, complete from the start.
pub(crate) async fn store_body(
    pool: &Pool,
    message: Arc<dyn MessageSource>,
    hold: Hold,
) -> Result<StoredBody, StoreError> {
    let (chunks, mut incoming) = mpsc::channel(CHUNKS_PER_TRANSACTION);
    let reader = tokio::task::spawn_blocking(move || read_chunks(&*message, &chunks));
    let mut batch = Vec::with_capacity(CHUNKS_PER_TRANSACTION);
    let mut end = false;
    while batch.len() < CHUNKS_PER_TRANSACTION && !end {
        match incoming.recv().await {
            Some(chunk) => batch.push(chunk),
            None => end = true,
        }
    }
    if end {
        let count = counted(reader).await?;
        let id = write_whole(pool, &count, &batch, hold).await?;
        return Ok(StoredBody { id, count });
    }
    let insert = match hold {
        Hold::Released => "INSERT INTO bodies DEFAULT VALUES RETURNING id",
        Hold::Held => "INSERT INTO bodies (released_at) VALUES (NULL) RETURNING id",
    };
    let id: i64 = pool
        .transaction(IsolationLevel::ReadCommitted, insert, |tx, insert| {
            Box::pin(async move { Ok(tx.query_one(insert, &[]).await?.get(0)) })
        })
        .await?;
    let mut seq = 0i32;
    loop {
        if batch.len() == CHUNKS_PER_TRANSACTION || (end && !batch.is_empty()) {
            write_chunks(pool, id, seq, &batch).await?;
            seq += batch.len() as i32;
            batch.clear();
        }
        if end {
            break;
        }
        match incoming.recv().await {
            Some(chunk) => batch.push(chunk),
            None => end = true,
        }
    }
    let count = counted(reader).await?;
    let size = body_size(&count)?;
    pool.transaction(
        IsolationLevel::ReadCommitted,
        &(id, size, seq),
        |tx, (id, size, chunks)| {
            Box::pin(async move {
                tx.execute(
                    "UPDATE bodies SET size = $2, chunks = $3 WHERE id = $1",
                    &[id, size, chunks],
                )
                .await?;
                Ok(())
            })
        },
    )
    .await?;
    Ok(StoredBody { id, count })
}

/// The reader's count once it has sent its last chunk.
async fn counted(
    reader: tokio::task::JoinHandle<io::Result<BodyCount>>,
) -> Result<BodyCount, StoreError> {
    reader
        .await
        .map_err(|e| StoreError::Temporary(format!("reading the message: {e}")))?
        .map_err(|e| StoreError::Temporary(format!("reading the message: {e}")))
}

fn body_size(count: &BodyCount) -> Result<i64, StoreError> {
    i64::try_from(count.counter.raw_size())
        .map_err(|_| StoreError::Permanent("message too large".into()))
}

/// A body whose chunks are all here, stored complete in one transaction.
async fn write_whole(
    pool: &Pool,
    count: &BodyCount,
    chunks: &[Packed],
    hold: Hold,
) -> Result<i64, StoreError> {
    let size = body_size(count)?;
    let released = hold == Hold::Released;
    pool.transaction(
        IsolationLevel::ReadCommitted,
        &(size, chunks, released),
        |tx, (size, chunks, released)| {
            Box::pin(async move {
                let id = insert_complete_body(tx, *size, chunks.len() as i32, *released).await?;
                for (seq, chunk) in chunks.iter().enumerate() {
                    insert_chunk(tx, id, seq as i32, chunk).await?;
                }
                Ok(id)
            })
        },
    )
    .await
}

/// A body row with its size known; `released`: nothing is to refer to it at once.
async fn insert_complete_body(
    tx: &Transaction<'_>,
    size: i64,
    chunks: i32,
    released: bool,
) -> Result<i64, tokio_postgres::Error> {
    let row = tx
        .query_typed_one(
            "INSERT INTO bodies (size, chunks, released_at)
             VALUES ($1, $2, CASE WHEN $3 THEN now() END) RETURNING id",
            &[
                (&size, Type::INT8),
                (&chunks, Type::INT4),
                (&released, Type::BOOL),
            ],
        )
        .await?;
    Ok(row.get(0))
}

async fn insert_chunk(
    tx: &Transaction<'_>,
    body_id: i64,
    seq: i32,
    chunk: &Packed,
) -> Result<(), tokio_postgres::Error> {
    tx.execute_typed(
        "INSERT INTO body_chunks (body_id, seq, data, packed_from) VALUES ($1, $2, $3, $4)",
        &[
            (&body_id, Type::INT8),
            (&seq, Type::INT4),
            (&chunk.data.as_slice(), Type::BYTEA),
            (&chunk.packed_from, Type::INT4),
        ],
    )
    .await?;
    Ok(())
}

/// Sends the message in chunks of [`CHUNK`] octets (the last one shorter), each compressed
/// if that pays, and counts it.
/// Stops early, without error, when the receiver is gone (the delivery failed).
fn read_chunks(
    message: &dyn MessageSource,
    chunks: &mpsc::Sender<Packed>,
) -> io::Result<BodyCount> {
    let mut reader = message.reader()?;
    let mut count = BodyCount::default();
    loop {
        let mut chunk = vec![0u8; CHUNK];
        let n = read_full(&mut reader, &mut chunk)?;
        if n == 0 {
            return Ok(count);
        }
        chunk.truncate(n);
        count.update(&chunk);
        if chunks.blocking_send(Packed::new(chunk)).is_err() || n < CHUNK {
            return Ok(count);
        }
    }
}

fn read_full(reader: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

async fn write_chunks(
    pool: &Pool,
    body_id: i64,
    first_seq: i32,
    batch: &[Packed],
) -> Result<(), StoreError> {
    pool.transaction(
        IsolationLevel::ReadCommitted,
        &(body_id, first_seq, batch),
        |tx, (body_id, first_seq, batch)| {
            Box::pin(async move {
                for (i, chunk) in batch.iter().enumerate() {
                    insert_chunk(tx, *body_id, first_seq + i as i32, chunk).await?;
                }
                Ok(())
            })
        },
    )
    .await
}

/// A body as a copy refers to it.
#[derive(Clone)]
pub(crate) enum CopyBody {
    /// Small, for one recipient: stored in the copy's own transaction.
    Inline(Arc<InlineBody>),
    /// In the database already, complete.
    Stored(Arc<StoredBody>),
}

pub(crate) struct InlineBody {
    /// The whole body as one chunk (empty for an empty body).
    pub chunk: Packed,
    pub count: BodyCount,
}

impl CopyBody {
    fn count(&self) -> &BodyCount {
        match self {
            CopyBody::Inline(body) => &body.count,
            CopyBody::Stored(body) => &body.count,
        }
    }
}

/// One recipient's copy of a message, as its maildrop's [`Committer`] adds it.
pub(crate) struct RecipientCopy {
    /// Chosen here: the copy's row carries it, so a COMMIT whose answer was lost can be
    /// looked up.
    pub delivery_id: [u8; 16],
    pub user: String,
    pub headers: Vec<u8>,
    pub body: CopyBody,
    pub raw_size: i64,
    pub crlf_size: i64,
    pub quota_bytes: i64,
    pub quota_messages: i64,
}

impl RecipientCopy {
    fn new(recipient: &Recipient, body: CopyBody) -> Self {
        let octets = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let count = body.count();
        RecipientCopy {
            delivery_id: rand::random(),
            user: recipient.user.clone(),
            headers: recipient.headers.clone(),
            raw_size: octets(recipient.headers.len() as u64 + count.counter.raw_size()),
            crlf_size: octets(crlf_size(&recipient.headers, count)),
            quota_bytes: octets(recipient.quota.bytes),
            quota_messages: octets(recipient.quota.messages),
            body,
        }
    }
}
