//! Copies for one maildrop committed together. Every copy takes its UID from the maildrop's
//! counter row and holds that row's lock until its COMMIT has been flushed, so copies for one
//! user commit one after another however many connections deliver them; copies that arrive
//! on this front end while one transaction runs are added by the next one, together: one
//! lock, one COMMIT and one WAL flush for all of them, UIDs consecutive in commit order.
//!
//! Each maildrop with copies waiting has one worker, a task of its own: a delivery that is
//! dropped (its client hung up) cannot cancel a transaction that carries other deliveries'
//! copies, nor a COMMIT on its way. Every copy gets its own answer: a copy over its quota is
//! refused within a batch that commits the others.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::future::join_all;
use postie_metrics::METRICS;
use postie_store::StoreError;
use tokio::sync::oneshot;
use tokio_postgres::types::Type;
use tokio_postgres::{IsolationLevel, Transaction};

use crate::deliver::{CopyBody, InlineBody, RecipientCopy, StoredBody};
use crate::maildrop::ensure_maildrop;
use crate::pool::{Pool, TxError, TxFailure};

/// Copies in one transaction at most: the counter row's lock is held for all their
/// statements, which other front ends delivering to the same user wait for.
const MAX_BATCH: usize = 32;
/// The highest UID a maildrop hands out; the UIDL has eight hex digits for it.
const LAST_UID: i64 = u32::MAX as i64;

/// The copies waiting for each maildrop, by user; a user is here while its worker runs.
#[derive(Clone)]
pub(crate) struct Committer {
    pool: Pool,
    waiting: Arc<Mutex<HashMap<String, Vec<Waiting>>>>,
}

struct Waiting {
    copy: RecipientCopy,
    answer: oneshot::Sender<Result<(), StoreError>>,
}

impl Committer {
    pub fn new(pool: Pool) -> Self {
        Committer {
            pool,
            waiting: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Queues `copy` for its maildrop; the returned future is its outcome, known once the
    /// transaction that adds it has committed (or failed).
    pub fn submit(
        &self,
        copy: RecipientCopy,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send + 'static {
        let (answer, outcome) = oneshot::channel();
        let user = copy.user.clone();
        let start_worker = {
            let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
            match waiting.get_mut(&user) {
                Some(queue) => {
                    queue.push(Waiting { copy, answer });
                    false
                }
                None => {
                    waiting.insert(user.clone(), vec![Waiting { copy, answer }]);
                    true
                }
            }
        };
        if start_worker {
            tokio::spawn(self.clone().work(user));
        }
        async move {
            outcome.await.unwrap_or_else(|_| {
                Err(StoreError::Temporary(
                    "the delivery's transaction ended without an answer".into(),
                ))
            })
        }
    }

    /// Commits `user`'s waiting copies, a batch at a time, until none wait.
    async fn work(self, user: String) {
        loop {
            let batch: Vec<Waiting> = {
                let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
                let Some(queue) = waiting.get_mut(&user) else {
                    return;
                };
                if queue.is_empty() {
                    waiting.remove(&user);
                    return;
                }
                let take = queue.len().min(MAX_BATCH);
                queue.drain(..take).collect()
            };
            let (copies, answers): (Vec<_>, Vec<_>) =
                batch.into_iter().map(|w| (w.copy, w.answer)).unzip();
            let outcomes = commit(&self.pool, &copies).await;
            for (answer, outcome) in answers.into_iter().zip(outcomes) {
                // A delivery that stopped waiting has nobody to tell.
                let _ = answer.send(outcome);
            }
        }
    }
}

/// Adds `copies`, all for one maildrop, in one transaction; an outcome for each.
async fn commit(pool: &Pool, copies: &[RecipientCopy]) -> Vec<Result<(), StoreError>> {
    let added = pool
        .transaction_or_in_doubt(IsolationLevel::ReadCommitted, copies, |tx, copies| {
            Box::pin(add_copies(tx, copies))
        })
        .await;
    match added {
        Ok(outcomes) => outcomes,
        Err(TxFailure::Failed(e)) => copies.iter().map(|_| Err(e.clone())).collect(),
        // The connection failed during COMMIT, perhaps after the server had committed: each
        // copy's row says which, on whichever host takes writes now (the lookup waits for a
        // failover like any transaction). Acknowledging a copy that is not there would lose
        // mail, and refusing one that is would deliver it twice when the sender retries. A
        // copy the transaction refused (its quota) has no row either, and is answered as
        // not delivered: the sender's retry meets the quota again.
        Err(TxFailure::InDoubt(e)) => {
            let mut outcomes = Vec::with_capacity(copies.len());
            for copy in copies {
                let (outcome, result) = match committed(pool, &copy.delivery_id).await {
                    Ok(true) => ("committed", Ok(())),
                    Ok(false) => ("absent", Err(e.clone())),
                    Err(lookup) => {
                        tracing::warn!(user = copy.user, error = %lookup, "a delivery's COMMIT lost its answer and could not be looked up: answering 451, so the sender's retry may store it twice");
                        ("unresolved", Err(e.clone()))
                    }
                };
                METRICS.db_in_doubt_commits.inc([outcome]);
                outcomes.push(result);
            }
            outcomes
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

async fn add_copies(
    tx: &Transaction<'_>,
    copies: &[RecipientCopy],
) -> Result<Vec<Result<(), StoreError>>, TxError> {
    // The small copies' statements go together, one round trip for all (tokio-postgres
    // pipelines what is sent before an answer comes); the server runs them in order.
    let inline = copies.iter().filter_map(|copy| match &copy.body {
        CopyBody::Inline(body) => Some(add_inline_copy(tx, copy, body)),
        CopyBody::Stored(_) => None,
    });
    let mut added = join_all(inline).await.into_iter();
    let mut maildrop = None;
    let mut outcomes = Vec::with_capacity(copies.len());
    for copy in copies {
        let outcome = match &copy.body {
            CopyBody::Inline(body) => {
                if added.next().unwrap_or(Ok(false))? {
                    Ok(())
                } else {
                    // Refused by the counter row, or no such row yet: the user's first mail.
                    let maildrop = known(tx, &mut maildrop, &copy.user).await?;
                    if add_inline_copy(tx, copy, body).await? {
                        Ok(())
                    } else {
                        Err(refusal(tx, maildrop, &copy.user).await?)
                    }
                }
            }
            CopyBody::Stored(body) => {
                let maildrop = known(tx, &mut maildrop, &copy.user).await?;
                add_copy(tx, maildrop, copy, body).await?
            }
        };
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// The maildrop's id, created if it is new, looked up once per transaction.
async fn known(
    tx: &Transaction<'_>,
    maildrop: &mut Option<i64>,
    user: &str,
) -> Result<i64, tokio_postgres::Error> {
    if let Some(id) = *maildrop {
        return Ok(id);
    }
    let id = ensure_maildrop(tx, user).await?;
    *maildrop = Some(id);
    Ok(id)
}

/// A copy with its small body, in one statement (one round trip): the counter row's UID
/// and quota, the body and its chunk, the fence and the message row. False when the counter
/// row refused it or does not exist, and then the statement changed nothing.
async fn add_inline_copy(
    tx: &Transaction<'_>,
    copy: &RecipientCopy,
    body: &InlineBody,
) -> Result<bool, tokio_postgres::Error> {
    let size = body.count.counter.raw_size() as i64;
    let chunks = i32::from(size > 0);
    let added = tx
        .query_typed_opt(
            "WITH counter AS (
                 UPDATE maildrops
                 SET next_uid = next_uid + 1, bytes = bytes + $2, messages = messages + 1
                 WHERE user_name = $1 AND next_uid <= $5
                   AND ($3 = 0 OR bytes + $2 <= $3)
                   AND ($4 = 0 OR messages + 1 <= $4)
                 RETURNING id, next_uid - 1 AS uid),
             body AS (
                 INSERT INTO bodies (size, chunks, refs, released_at)
                 SELECT $6, $7, 1, NULL FROM counter RETURNING id),
             chunk AS (
                 INSERT INTO body_chunks (body_id, seq, data, packed_from)
                 SELECT id, 0, $8, $12 FROM body WHERE $7 = 1),
             fence AS (
                 INSERT INTO delivery_fences (delivery_id) SELECT $9 FROM counter)
             INSERT INTO messages
                 (maildrop_id, uid, body_id, headers, raw_size, crlf_size, delivery_id)
             SELECT counter.id, counter.uid, body.id, $10, $2, $11, $9 FROM counter, body
             RETURNING uid",
            &[
                (&copy.user, Type::TEXT),
                (&copy.raw_size, Type::INT8),
                (&copy.quota_bytes, Type::INT8),
                (&copy.quota_messages, Type::INT8),
                (&LAST_UID, Type::INT8),
                (&size, Type::INT8),
                (&chunks, Type::INT4),
                (&body.chunk.data.as_slice(), Type::BYTEA),
                (&copy.delivery_id.as_slice(), Type::BYTEA),
                (&copy.headers.as_slice(), Type::BYTEA),
                (&copy.crlf_size, Type::INT8),
                (&body.chunk.packed_from, Type::INT4),
            ],
        )
        .await?;
    Ok(added.is_some())
}

/// A copy of a body stored already: its UID and quota from the counter row, a reference to
/// the body, its row. The outer error fails the whole transaction; the inner one refuses this
/// copy alone, leaving nothing of it.
async fn add_copy(
    tx: &Transaction<'_>,
    maildrop: i64,
    copy: &RecipientCopy,
    body: &StoredBody,
) -> Result<Result<(), StoreError>, tokio_postgres::Error> {
    // The quota check and the UID in one statement on the counter row: a concurrent delivery
    // waits for this row, then sees the counters this one left.
    let taken = tx
        .query_typed_opt(
            "UPDATE maildrops
             SET next_uid = next_uid + 1, bytes = bytes + $2, messages = messages + 1
             WHERE id = $1 AND next_uid <= $5
               AND ($3 = 0 OR bytes + $2 <= $3)
               AND ($4 = 0 OR messages + 1 <= $4)
             RETURNING next_uid - 1",
            &[
                (&maildrop, Type::INT8),
                (&copy.raw_size, Type::INT8),
                (&copy.quota_bytes, Type::INT8),
                (&copy.quota_messages, Type::INT8),
                (&LAST_UID, Type::INT8),
            ],
        )
        .await?;
    let Some(taken) = taken else {
        return Ok(Err(refusal(tx, maildrop, &copy.user).await?));
    };
    let uid: i64 = taken.get(0);
    let referenced = tx
        .execute_typed(
            "UPDATE bodies SET refs = refs + 1, released_at = NULL
             WHERE id = $1 AND size IS NOT NULL",
            &[(&body.id, Type::INT8)],
        )
        .await?;
    if referenced != 1 {
        // The UID stays used (a gap, never a reuse); the counters are given back.
        tx.execute_typed(
            "UPDATE maildrops SET bytes = bytes - $2, messages = messages - 1
             WHERE id = $1",
            &[(&maildrop, Type::INT8), (&copy.raw_size, Type::INT8)],
        )
        .await?;
        return Ok(Err(StoreError::Temporary(
            "the message body was reclaimed before its delivery ended".into(),
        )));
    }
    let body_id = body.id;
    // The fence row in the same statement: see `committed`.
    tx.execute_typed(
        "WITH fence AS (INSERT INTO delivery_fences (delivery_id) VALUES ($7))
         INSERT INTO messages
             (maildrop_id, uid, body_id, headers, raw_size, crlf_size, delivery_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            (&maildrop, Type::INT8),
            (&uid, Type::INT8),
            (&body_id, Type::INT8),
            (&copy.headers.as_slice(), Type::BYTEA),
            (&copy.raw_size, Type::INT8),
            (&copy.crlf_size, Type::INT8),
            (&copy.delivery_id.as_slice(), Type::BYTEA),
        ],
    )
    .await?;
    Ok(Ok(()))
}

/// Why the counter row refused a copy: the quota, or (in theory) the last UID.
async fn refusal(
    tx: &Transaction<'_>,
    maildrop: i64,
    user: &str,
) -> Result<StoreError, tokio_postgres::Error> {
    let row = tx
        .query_typed_one(
            "SELECT bytes, messages, next_uid FROM maildrops WHERE id = $1",
            &[(&maildrop, Type::INT8)],
        )
        .await?;
    let (bytes, messages, next_uid): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    if next_uid > LAST_UID {
        return Ok(StoreError::Permanent(format!(
            "{user}'s maildrop has used its last UID"
        )));
    }
    Ok(StoreError::OverQuota(format!(
        "{user} holds {bytes} octets in {messages} messages"
    )))
}
