//! Delivery: the body stored once, in chunks, then one short transaction per recipient that
//! takes a UID and the quota from the counter row and adds the recipient's message row.
//!
//! The body is written before any recipient's transaction, in transactions of a few chunks,
//! and marked complete last; until a recipient refers to it, it counts as released, so a
//! delivery that fails half-way leaves only a body that the sweep reclaims.

use std::io::{self, Read};
use std::sync::Arc;

use postie_metrics::METRICS;
use postie_store::{Delivery, MessageSource, Recipient, StoreError};
use tokio::sync::mpsc;
use tokio_postgres::{IsolationLevel, Transaction};

use crate::maildrop::ensure_maildrop;
use crate::pool::{Pool, TxError, TxFailure};
use crate::size::{crlf_size, BodyCount};

/// The largest chunk of a body, the schema's limit too.
pub(crate) const CHUNK: usize = 256 * 1024;
/// Chunks written per transaction: fewer commits for a large body, a bounded amount in memory.
const CHUNKS_PER_TRANSACTION: usize = 4;
/// The highest UID a maildrop hands out; the UIDL has eight hex digits for it.
const LAST_UID: i64 = u32::MAX as i64;

pub(crate) async fn deliver(pool: &Pool, delivery: Delivery) -> Vec<Result<(), StoreError>> {
    let body = match store_body(pool, Arc::clone(&delivery.message), Hold::Released).await {
        Ok(body) => body,
        Err(e) => {
            return delivery
                .recipients
                .iter()
                .map(|_| Err(StoreError::Temporary(e.to_string())))
                .collect()
        }
    };
    let mut results = Vec::with_capacity(delivery.recipients.len());
    for recipient in &delivery.recipients {
        results.push(deliver_to(pool, &body, recipient).await);
    }
    results
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
/// chunks as they come; at most a few chunks are in memory at once.
pub(crate) async fn store_body(
    pool: &Pool,
    message: Arc<dyn MessageSource>,
    hold: Hold,
) -> Result<StoredBody, StoreError> {
    let insert = match hold {
        Hold::Released => "INSERT INTO bodies DEFAULT VALUES RETURNING id",
        Hold::Held => "INSERT INTO bodies (released_at) VALUES (NULL) RETURNING id",
    };
    let id: i64 = pool
        .transaction(IsolationLevel::ReadCommitted, insert, |tx, insert| {
            Box::pin(async move { Ok(tx.query_one(insert, &[]).await?.get(0)) })
        })
        .await?;
    let (chunks, mut incoming) = mpsc::channel(CHUNKS_PER_TRANSACTION);
    let reader = tokio::task::spawn_blocking(move || read_chunks(&*message, &chunks));
    let mut seq = 0i32;
    let mut batch = Vec::with_capacity(CHUNKS_PER_TRANSACTION);
    loop {
        let next = incoming.recv().await;
        let end = next.is_none();
        batch.extend(next);
        if batch.len() == CHUNKS_PER_TRANSACTION || (end && !batch.is_empty()) {
            write_chunks(pool, id, seq, &batch).await?;
            seq += batch.len() as i32;
            batch.clear();
        }
        if end {
            break;
        }
    }
    let count = reader
        .await
        .map_err(|e| StoreError::Temporary(format!("reading the message: {e}")))?
        .map_err(|e| StoreError::Temporary(format!("reading the message: {e}")))?;
    let size = i64::try_from(count.counter.raw_size())
        .map_err(|_| StoreError::Permanent("message too large".into()))?;
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

/// Sends the message in chunks of [`CHUNK`] octets (the last one shorter) and counts it.
/// Stops early, without error, when the receiver is gone (the delivery failed).
fn read_chunks(
    message: &dyn MessageSource,
    chunks: &mpsc::Sender<Vec<u8>>,
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
        if chunks.blocking_send(chunk).is_err() || n < CHUNK {
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
    batch: &[Vec<u8>],
) -> Result<(), StoreError> {
    pool.transaction(
        IsolationLevel::ReadCommitted,
        &(body_id, first_seq, batch),
        |tx, (body_id, first_seq, batch)| {
            Box::pin(async move {
                for (i, chunk) in batch.iter().enumerate() {
                    let seq = first_seq + i as i32;
                    tx.execute(
                        "INSERT INTO body_chunks (body_id, seq, data) VALUES ($1, $2, $3)",
                        &[body_id, &seq, &chunk.as_slice()],
                    )
                    .await?;
                }
                Ok(())
            })
        },
    )
    .await
}

/// What one recipient's transaction needs.
struct RecipientCopy<'a> {
    delivery_id: [u8; 16],
    user: &'a str,
    headers: &'a [u8],
    body_id: i64,
    raw_size: i64,
    crlf_size: i64,
    quota_bytes: i64,
    quota_messages: i64,
}

async fn deliver_to(
    pool: &Pool,
    body: &StoredBody,
    recipient: &Recipient,
) -> Result<(), StoreError> {
    let octets = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let copy = RecipientCopy {
        delivery_id: rand::random(),
        user: &recipient.user,
        headers: &recipient.headers,
        body_id: body.id,
        raw_size: octets(recipient.headers.len() as u64 + body.count.counter.raw_size()),
        crlf_size: octets(crlf_size(&recipient.headers, &body.count)),
        quota_bytes: octets(recipient.quota.bytes),
        quota_messages: octets(recipient.quota.messages),
    };
    let added = pool
        .transaction_or_in_doubt(IsolationLevel::ReadCommitted, &copy, |tx, copy| {
            Box::pin(add_copy(tx, copy))
        })
        .await;
    match added {
        Ok(()) => Ok(()),
        Err(TxFailure::Failed(e)) => Err(e),
        // The connection failed during COMMIT, perhaps after the server had committed: the
        // copy's row says which, on whichever host takes writes now (the lookup waits for a
        // failover like any transaction). Acknowledging a copy that is not there would lose
        // mail, and refusing one that is would deliver it twice when the sender retries.
        Err(TxFailure::InDoubt(e)) => {
            let (outcome, result) = match committed(pool, &copy.delivery_id).await {
                Ok(true) => ("committed", Ok(())),
                Ok(false) => ("absent", Err(e)),
                Err(lookup) => {
                    tracing::warn!(user = copy.user, error = %lookup, "a delivery's COMMIT lost its answer and could not be looked up: answering 451, so the sender's retry may store it twice");
                    ("unresolved", Err(e))
                }
            };
            METRICS.db_in_doubt_commits.inc([outcome]);
            result
        }
    }
}

/// Whether the copy `delivery_id` names was committed, found by fencing it: inserting its id
/// waits for the delivery's transaction if that is still running on a server process of the
/// lost connection, and a fence put first stops it from ever committing. Never a guess.
async fn committed(pool: &Pool, delivery_id: &[u8; 16]) -> Result<bool, StoreError> {
    pool.transaction(
        IsolationLevel::ReadCommitted,
        delivery_id,
        |tx, delivery_id| {
            Box::pin(async move {
                let id = delivery_id.as_slice();
                let fenced_now = tx
                    .query_opt(
                        "INSERT INTO delivery_fences (delivery_id, fenced) VALUES ($1, true)
                         ON CONFLICT (delivery_id) DO NOTHING RETURNING 1",
                        &[&id],
                    )
                    .await?;
                if fenced_now.is_some() {
                    return Ok(false);
                }
                // There already: the delivery's own row, or a fence an earlier lookup put.
                let fenced: bool = tx
                    .query_one(
                        "SELECT fenced FROM delivery_fences WHERE delivery_id = $1",
                        &[&id],
                    )
                    .await?
                    .get(0);
                Ok(!fenced)
            })
        },
    )
    .await
}

async fn add_copy(tx: &Transaction<'_>, copy: &RecipientCopy<'_>) -> Result<(), TxError> {
    let maildrop = ensure_maildrop(tx, copy.user).await?;
    // The quota check and the UID in one statement on the counter row: a concurrent delivery
    // waits for this row, then sees the counters this one left.
    let taken = tx
        .query_opt(
            "UPDATE maildrops
             SET next_uid = next_uid + 1, bytes = bytes + $2, messages = messages + 1
             WHERE id = $1 AND next_uid <= $5::bigint
               AND ($3::bigint = 0 OR bytes + $2::bigint <= $3::bigint)
               AND ($4::bigint = 0 OR messages + 1 <= $4::bigint)
             RETURNING next_uid - 1",
            &[
                &maildrop,
                &copy.raw_size,
                &copy.quota_bytes,
                &copy.quota_messages,
                &LAST_UID,
            ],
        )
        .await?;
    let Some(taken) = taken else {
        return Err(refusal(tx, maildrop, copy.user).await);
    };
    let uid: i64 = taken.get(0);
    let referenced = tx
        .execute(
            "UPDATE bodies SET refs = refs + 1, released_at = NULL
             WHERE id = $1 AND size IS NOT NULL",
            &[&copy.body_id],
        )
        .await?;
    if referenced != 1 {
        return Err(StoreError::Temporary(
            "the message body was reclaimed before its delivery ended".into(),
        )
        .into());
    }
    // The fence row in the same statement: see `committed`.
    tx.execute(
        "WITH fence AS (INSERT INTO delivery_fences (delivery_id) VALUES ($7))
         INSERT INTO messages
             (maildrop_id, uid, body_id, headers, raw_size, crlf_size, delivery_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &maildrop,
            &uid,
            &copy.body_id,
            &copy.headers,
            &copy.raw_size,
            &copy.crlf_size,
            &copy.delivery_id.as_slice(),
        ],
    )
    .await?;
    Ok(())
}

/// Why the counter row refused a delivery: the quota, or (in theory) the last UID.
async fn refusal(tx: &Transaction<'_>, maildrop: i64, user: &str) -> TxError {
    let row = match tx
        .query_one(
            "SELECT bytes, messages, next_uid FROM maildrops WHERE id = $1",
            &[&maildrop],
        )
        .await
    {
        Ok(row) => row,
        Err(e) => return e.into(),
    };
    let (bytes, messages, next_uid): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    if next_uid > LAST_UID {
        return StoreError::Permanent(format!("{user}'s maildrop has used its last UID")).into();
    }
    StoreError::OverQuota(format!(
        "{user} holds {bytes} octets in {messages} messages"
    ))
    .into()
}
