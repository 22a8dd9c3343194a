//! Reading ahead across messages: a client downloading its mail asks for message n + 1 as
//! soon as message n has arrived, so the row and first chunks of n + 1 are fetched while n is
//! being sent, and its RETR starts without waiting for the database.
//!
//! What is read ahead is held until the session's next RETR or its end, so the store's
//! sessions share a budget of messages read ahead at once; a session that finds none left
//! simply does not read ahead.

use std::sync::Arc;

use postie_store::StoreError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio_postgres::types::Type;
use tokio_postgres::Row;

use crate::body::CHUNKS_PER_FETCH;
use crate::pool::Pool;

/// Messages read ahead at once by all sessions of a front end; each holds at most
/// [`CHUNKS_PER_FETCH`] chunks.
pub(crate) const READ_AHEAD_BUDGET: usize = 64;

/// A message's row and first chunks, fetched or being fetched.
pub(crate) struct NextMessage {
    index: usize,
    rows: JoinHandle<Result<Vec<Row>, StoreError>>,
    _budget: OwnedSemaphorePermit,
}

impl NextMessage {
    /// Starts fetching message `index` (its `uid`) when the budget allows.
    pub fn start(
        budget: &Arc<Semaphore>,
        pool: &Pool,
        maildrop: i64,
        index: usize,
        uid: i64,
    ) -> Option<Self> {
        let permit = Arc::clone(budget).try_acquire_owned().ok()?;
        let rows = tokio::spawn(first_rows(pool.clone(), maildrop, uid));
        Some(NextMessage {
            index,
            rows,
            _budget: permit,
        })
    }

    /// The rows, if this is message `index`.
    pub async fn take(mut self, index: usize) -> Option<Result<Vec<Row>, StoreError>> {
        if self.index != index {
            return None;
        }
        Some(match (&mut self.rows).await {
            Ok(rows) => rows,
            Err(e) => Err(StoreError::Temporary(format!("reading ahead: {e}"))),
        })
    }
}

impl Drop for NextMessage {
    fn drop(&mut self) {
        self.rows.abort();
    }
}

/// The message's row and its first chunks in one statement, in rows that begin as a chunk
/// fetch's do (seq, data, packed_from; NULL for a body without chunks), then headers, body,
/// chunks, size.
pub(crate) async fn first_rows(
    pool: Pool,
    maildrop: i64,
    uid: i64,
) -> Result<Vec<Row>, StoreError> {
    pool.read(&(maildrop, uid), |client, (maildrop, uid)| {
        Box::pin(async move {
            Ok(client
                .query_typed(
                    "SELECT c.seq, c.data, c.packed_from, m.headers, m.body_id, b.chunks, b.size
                     FROM messages m JOIN bodies b ON b.id = m.body_id
                     LEFT JOIN body_chunks c ON c.body_id = m.body_id AND c.seq < $3
                     WHERE m.maildrop_id = $1 AND m.uid = $2 AND m.state <> 'trashed'
                     ORDER BY c.seq",
                    &[
                        (maildrop, Type::INT8),
                        (uid, Type::INT8),
                        (&CHUNKS_PER_FETCH, Type::INT4),
                    ],
                )
                .await?)
        })
    })
    .await
}
