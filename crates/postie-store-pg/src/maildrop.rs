//! A POP3 session's maildrop: a snapshot taken in one query at open, no transaction held
//! while the session lives, and QUIT applied in one transaction.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use postie_metrics::METRICS;
use postie_store::{DeletePolicy, Maildrop, MessageInfo, StoreError, Update};
use postie_types::Uidl;
use tokio::sync::Semaphore;
use tokio_postgres::{IsolationLevel, Transaction};

use crate::body::{Chunk, PgBody};
use crate::lease::{self, Lease};
use crate::next_message::{first_rows, NextMessage};
use crate::pool::{Pool, TxError};
use crate::PgStore;

/// The id of `user`'s counter row, created (empty, with a fresh uidvalidity) if needed.
pub(crate) async fn ensure_maildrop(
    tx: &Transaction<'_>,
    user: &str,
) -> Result<i64, tokio_postgres::Error> {
    let select = "SELECT id FROM maildrops WHERE user_name = $1";
    if let Some(row) = tx.query_opt(select, &[&user]).await? {
        return Ok(row.get(0));
    }
    let created = tx
        .query_opt(
            "INSERT INTO maildrops (user_name, uidvalidity) VALUES ($1, $2)
             ON CONFLICT (user_name) DO NOTHING RETURNING id",
            &[&user, &new_uidvalidity()],
        )
        .await?;
    match created {
        Some(row) => Ok(row.get(0)),
        // Created meanwhile by a concurrent transaction, committed since.
        None => Ok(tx.query_one(select, &[&user]).await?.get(0)),
    }
}

/// Seconds since the epoch, as IMAP servers choose one, never 0.
fn new_uidvalidity() -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_secs());
    (now % u64::from(u32::MAX)).max(1) as i64
}

/// One message of the snapshot.
struct Listed {
    uid: i64,
    info: MessageInfo,
}

/// The visible messages of `user`'s maildrop in UID order, and its id; `None` when it does
/// not exist yet.
async fn snapshot(tx: &Transaction<'_>, user: &str) -> Result<Option<(i64, Vec<Listed>)>, TxError> {
    let rows = tx
        .query(
            "SELECT d.id, d.uidvalidity, m.uid, m.crlf_size, m.seen
             FROM maildrops d
             LEFT JOIN messages m ON m.maildrop_id = d.id AND m.state = 'visible'
             WHERE d.user_name = $1
             ORDER BY m.uid",
            &[&user],
        )
        .await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let maildrop: i64 = first.get(0);
    let uidvalidity = first.get::<_, i64>(1) as u32;
    let listed = rows
        .iter()
        .filter_map(|row| {
            let uid: i64 = row.get::<_, Option<i64>>(2)?;
            Some(Listed {
                uid,
                info: MessageInfo {
                    size: row.get::<_, i64>(3) as u64,
                    uidl: Uidl::from_uid(uid as u32, uidvalidity),
                    seen: row.get(4),
                },
            })
        })
        .collect();
    Ok(Some((maildrop, listed)))
}

pub(crate) async fn open(
    store: &PgStore,
    user: &str,
    exclusive: bool,
) -> Result<PgDrop, StoreError> {
    if !exclusive {
        let listed = store
            .pool
            .transaction(IsolationLevel::ReadCommitted, user, |tx, user| {
                Box::pin(snapshot(tx, user))
            })
            .await?;
        return Ok(PgDrop::new(store, listed, None));
    }
    let token: i64 = rand::random();
    let context = (
        user,
        token,
        lease::takeable(store),
        store.options.lease_ttl.as_secs_f64(),
    );
    let (maildrop, listed) = store
        .pool
        .transaction(
            IsolationLevel::ReadCommitted,
            &context,
            |tx, (user, token, takeable, ttl)| {
                Box::pin(async move {
                    let maildrop = ensure_maildrop(tx, user).await?;
                    if !lease::acquire(tx, maildrop, *token, takeable, *ttl).await? {
                        METRICS.db_lease_conflicts.inc(["in_use"]);
                        return Err(StoreError::InUse.into());
                    }
                    let listed = snapshot(tx, user).await?;
                    Ok((
                        maildrop,
                        listed.map(|(_, listed)| listed).unwrap_or_default(),
                    ))
                })
            },
        )
        .await?;
    let lease = Lease::start(store, maildrop, token);
    Ok(PgDrop::new(store, Some((maildrop, listed)), Some(lease)))
}

/// A session's snapshot of a maildrop in PostgreSQL.
pub struct PgDrop {
    pool: Pool,
    /// `None` for a maildrop that did not exist at open (and so lists nothing).
    maildrop: Option<i64>,
    uids: Vec<i64>,
    messages: Vec<MessageInfo>,
    /// Held by an exclusive session; released when dropped.
    lease: Option<Lease>,
    /// The store's budget for reading ahead, and the message read ahead.
    read_ahead: Arc<Semaphore>,
    next: Option<NextMessage>,
}

impl PgDrop {
    fn new(store: &PgStore, listed: Option<(i64, Vec<Listed>)>, lease: Option<Lease>) -> Self {
        let (maildrop, listed) = match listed {
            Some((maildrop, listed)) => (Some(maildrop), listed),
            None => (None, Vec::new()),
        };
        let (uids, messages) = listed.into_iter().map(|l| (l.uid, l.info)).unzip();
        PgDrop {
            pool: store.pool.clone(),
            maildrop,
            uids,
            messages,
            lease,
            read_ahead: Arc::clone(&store.read_ahead),
            next: None,
        }
    }

    fn uid(&self, index: usize) -> Result<i64, StoreError> {
        self.uids
            .get(index)
            .copied()
            .ok_or_else(|| StoreError::Permanent(format!("no message number {}", index + 1)))
    }
}

/// What QUIT changes, in UIDs.
struct Changes {
    maildrop: i64,
    lease_token: Option<i64>,
    deleted: Vec<i64>,
    seen: Vec<i64>,
    policy: DeletePolicy,
}

impl Maildrop for PgDrop {
    type Body = PgBody;

    fn messages(&self) -> &[MessageInfo] {
        &self.messages
    }

    async fn open_message(&mut self, index: usize) -> Result<PgBody, StoreError> {
        let uid = self.uid(index)?;
        let maildrop = self.maildrop.expect("a maildrop listing messages exists");
        let read_ahead = self.next.take();
        let rows = match read_ahead {
            Some(next) => match next.take(index).await {
                Some(rows) => rows,
                None => first_rows(self.pool.clone(), maildrop, uid).await,
            },
            None => first_rows(self.pool.clone(), maildrop, uid).await,
        }?;
        if let Ok(next_uid) = self.uid(index + 1) {
            self.next =
                NextMessage::start(&self.read_ahead, &self.pool, maildrop, index + 1, next_uid);
        }
        let row = rows.first().ok_or(StoreError::Vanished(index + 1))?;
        let body = PgBody::new(
            self.pool.clone(),
            row.get(3),
            row.get(4),
            row.get(5),
            row.get(6),
        );
        let damaged = |e: std::io::Error| StoreError::Temporary(e.to_string());
        let mut chunks = Vec::with_capacity(rows.len());
        for row in rows {
            chunks.extend(Chunk::from_row(row).map_err(damaged)?);
        }
        body.with_first_chunks(chunks).map_err(damaged)
    }

    async fn quit(mut self, update: Update) -> Result<(), StoreError> {
        let uids = |indices: &[usize]| {
            indices
                .iter()
                .map(|&index| self.uid(index))
                .collect::<Result<HashSet<i64>, _>>()
        };
        let deleted = uids(&update.deleted)?;
        let retrieved = uids(&update.retrieved)?;
        let Some(maildrop) = self.maildrop else {
            // Nothing listed, so nothing to change, and no lease: a maildrop is created by an
            // exclusive open.
            return Ok(());
        };
        let changes = Changes {
            maildrop,
            lease_token: self.lease.as_ref().map(Lease::token),
            seen: retrieved.difference(&deleted).copied().collect(),
            deleted: deleted.into_iter().collect(),
            policy: update.policy,
        };
        self.pool
            .transaction(IsolationLevel::ReadCommitted, &changes, |tx, changes| {
                Box::pin(apply(tx, changes))
            })
            .await?;
        if let Some(lease) = self.lease.take() {
            lease.ended_by_quit();
        }
        Ok(())
    }
}

async fn apply(tx: &Transaction<'_>, changes: &Changes) -> Result<(), TxError> {
    let maildrop = &changes.maildrop;
    if let Some(token) = changes.lease_token {
        if !lease::release(tx, *maildrop, token).await? {
            METRICS.db_lease_conflicts.inc(["taken_over"]);
            return Err(StoreError::Temporary(
                "another session took the maildrop over after this one's hold expired; \
                 nothing was changed"
                    .into(),
            )
            .into());
        }
    }
    if !changes.seen.is_empty() {
        tx.execute(
            "UPDATE messages SET seen = true
             WHERE maildrop_id = $1 AND uid = ANY($2) AND NOT seen",
            &[maildrop, &changes.seen],
        )
        .await?;
    }
    if changes.deleted.is_empty() {
        return Ok(());
    }
    // Deletion by UID: a message already gone, or trashed by another session, is skipped.
    match changes.policy {
        DeletePolicy::Expunge => {
            let gone = tx
                .query(
                    "DELETE FROM messages
                     WHERE maildrop_id = $1 AND uid = ANY($2) AND state <> 'trashed'
                     RETURNING raw_size, body_id",
                    &[maildrop, &changes.deleted],
                )
                .await?;
            uncount(tx, *maildrop, gone.iter().map(|row| row.get(0))).await?;
            let mut bodies = BTreeMap::<i64, i32>::new();
            for row in &gone {
                *bodies.entry(row.get(1)).or_default() += 1;
            }
            release_bodies(tx, bodies).await?;
        }
        DeletePolicy::Trash => {
            let trashed = tx
                .query(
                    "UPDATE messages SET state = 'trashed'
                     WHERE maildrop_id = $1 AND uid = ANY($2) AND state <> 'trashed'
                     RETURNING raw_size",
                    &[maildrop, &changes.deleted],
                )
                .await?;
            uncount(tx, *maildrop, trashed.iter().map(|row| row.get(0))).await?;
        }
        DeletePolicy::Hide => {
            tx.execute(
                "UPDATE messages SET state = 'hidden'
                 WHERE maildrop_id = $1 AND uid = ANY($2) AND state = 'visible'",
                &[maildrop, &changes.deleted],
            )
            .await?;
        }
    }
    Ok(())
}

/// Takes messages of `raw_sizes` off the maildrop's usage.
async fn uncount(
    tx: &Transaction<'_>,
    maildrop: i64,
    raw_sizes: impl Iterator<Item = i64>,
) -> Result<(), tokio_postgres::Error> {
    let (count, bytes) = raw_sizes.fold((0i64, 0i64), |(n, b), size| (n + 1, b + size));
    if count > 0 {
        tx.execute(
            "UPDATE maildrops SET bytes = bytes - $2, messages = messages - $3 WHERE id = $1",
            &[&maildrop, &bytes, &count],
        )
        .await?;
    }
    Ok(())
}

/// Drops `refs` references from each body; a body left without any is released now, for the
/// sweep to reclaim once its grace has passed.
async fn release_bodies(
    tx: &Transaction<'_>,
    refs: BTreeMap<i64, i32>,
) -> Result<(), tokio_postgres::Error> {
    if refs.is_empty() {
        return Ok(());
    }
    let (ids, counts): (Vec<i64>, Vec<i32>) = refs.into_iter().unzip();
    tx.execute(
        "UPDATE bodies
         SET refs = bodies.refs - d.n,
             released_at = CASE WHEN bodies.refs = d.n THEN now() ELSE bodies.released_at END
         FROM unnest($1::bigint[], $2::integer[]) AS d(id, n)
         WHERE bodies.id = d.id",
        &[&ids, &counts],
    )
    .await?;
    Ok(())
}
