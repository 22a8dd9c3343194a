//! A POP3 session's maildrop: a snapshot taken in one query at open, no transaction held
//! while the session lives, and QUIT applied in one transaction.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use postie_metrics::METRICS;
use postie_store::{
    AfterRetrieval, DeletePolicy, Maildrop, MessageInfo, PopSettings, StoreError, Update, View,
    RECENT_DAYS,
};
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

/// What a snapshot found: the maildrop's id and messages, and what QUIT is to do with
/// retrievals under the user's settings.
struct Found {
    maildrop: i64,
    listed: Vec<Listed>,
    after_retrieval: AfterRetrieval,
}

/// The messages of `user`'s maildrop that `view` and the user's settings show, in UID order;
/// `None` when it does not exist yet. One statement: the settings come with the listing.
async fn snapshot(tx: &Transaction<'_>, user: &str, view: View) -> Result<Option<Found>, TxError> {
    let recent = view == View::Recent;
    let recent_days = RECENT_DAYS as f64;
    let rows = tx
        .query(
            "SELECT d.id, d.uidvalidity, m.uid, m.crlf_size, m.seen, s.after_retrieval
             FROM maildrops d
             LEFT JOIN pop_settings s ON s.user_name = d.user_name
             LEFT JOIN messages m ON m.maildrop_id = d.id
                 AND (m.state = 'visible' OR ($2 AND m.state = 'hidden'))
                 AND (s.since IS NULL OR m.delivered_at >= s.since)
                 AND (NOT $2 OR m.delivered_at >= now() - $3::float8 * interval '1 day')
             WHERE d.user_name = $1
             ORDER BY m.uid",
            &[&user, &recent, &recent_days],
        )
        .await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let maildrop: i64 = first.get(0);
    let uidvalidity = first.get::<_, i64>(1) as u32;
    let settings = PopSettings {
        since: None,
        after_retrieval: first
            .get::<_, Option<&str>>(5)
            .and_then(AfterRetrieval::parse)
            .unwrap_or_default(),
    };
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
    Ok(Some(Found {
        maildrop,
        listed,
        after_retrieval: view.after_retrieval(&settings),
    }))
}

pub(crate) async fn open(
    store: &PgStore,
    user: &str,
    exclusive: bool,
    view: View,
) -> Result<PgDrop, StoreError> {
    if !exclusive {
        let found = store
            .pool
            .transaction(
                IsolationLevel::ReadCommitted,
                &(user, view),
                |tx, (user, view)| Box::pin(snapshot(tx, user, *view)),
            )
            .await?;
        return Ok(PgDrop::new(store, found, None));
    }
    let token: i64 = rand::random();
    let context = (
        user,
        token,
        lease::takeable(store),
        store.options.lease_ttl.as_secs_f64(),
        view,
    );
    let found = store
        .pool
        .transaction(
            IsolationLevel::ReadCommitted,
            &context,
            |tx, (user, token, takeable, ttl, view)| {
                Box::pin(async move {
                    let maildrop = ensure_maildrop(tx, user).await?;
                    if !lease::acquire(tx, maildrop, *token, takeable, *ttl).await? {
                        METRICS.db_lease_conflicts.inc(["in_use"]);
                        return Err(StoreError::InUse.into());
                    }
                    let found = snapshot(tx, user, *view).await?;
                    Ok(found.unwrap_or(Found {
                        maildrop,
                        listed: Vec::new(),
                        after_retrieval: AfterRetrieval::Keep,
                    }))
                })
            },
        )
        .await?;
    let lease = Lease::start(store, found.maildrop, token);
    Ok(PgDrop::new(store, Some(found), Some(lease)))
}

/// A session's snapshot of a maildrop in PostgreSQL.
pub struct PgDrop {
    pool: Pool,
    /// `None` for a maildrop that did not exist at open (and so lists nothing).
    maildrop: Option<i64>,
    uids: Vec<i64>,
    messages: Vec<MessageInfo>,
    /// What QUIT does to messages retrieved and not deleted.
    after_retrieval: AfterRetrieval,
    /// Held by an exclusive session; released when dropped.
    lease: Option<Lease>,
    /// The store's budget for reading ahead, and the message read ahead.
    read_ahead: Arc<Semaphore>,
    next: Option<NextMessage>,
}

impl PgDrop {
    fn new(store: &PgStore, found: Option<Found>, lease: Option<Lease>) -> Self {
        let (maildrop, listed, after_retrieval) = match found {
            Some(found) => (Some(found.maildrop), found.listed, found.after_retrieval),
            None => (None, Vec::new(), AfterRetrieval::Keep),
        };
        let (uids, messages) = listed.into_iter().map(|l| (l.uid, l.info)).unzip();
        PgDrop {
            pool: store.pool.clone(),
            maildrop,
            uids,
            messages,
            after_retrieval,
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

/// What QUIT changes, in UIDs: seen marks, then each set of messages removed as its policy
/// says (the client's deletions; the retrievals under the user's after-retrieval choice).
struct Changes {
    maildrop: i64,
    lease_token: Option<i64>,
    seen: Vec<i64>,
    removals: Vec<(Vec<i64>, DeletePolicy)>,
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
        let seen: Vec<i64> = retrieved.difference(&deleted).copied().collect();
        let mut removals = vec![(deleted.into_iter().collect(), update.policy)];
        if let Some(policy) = self.after_retrieval.as_policy() {
            removals.push((seen.clone(), policy));
        }
        let changes = Changes {
            maildrop,
            lease_token: self.lease.as_ref().map(Lease::token),
            seen,
            removals,
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
    for (uids, policy) in &changes.removals {
        if !uids.is_empty() {
            remove(tx, *maildrop, uids, *policy).await?;
        }
    }
    Ok(())
}

/// Removes `uids` from POP3 as `policy` says. By UID: a message already gone, or trashed by
/// another session, is skipped.
async fn remove(
    tx: &Transaction<'_>,
    maildrop: i64,
    uids: &Vec<i64>,
    policy: DeletePolicy,
) -> Result<(), TxError> {
    let maildrop = &maildrop;
    match policy {
        DeletePolicy::Expunge => {
            let gone = tx
                .query(
                    "DELETE FROM messages
                     WHERE maildrop_id = $1 AND uid = ANY($2) AND state <> 'trashed'
                     RETURNING raw_size, body_id",
                    &[maildrop, uids],
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
                    &[maildrop, uids],
                )
                .await?;
            uncount(tx, *maildrop, trashed.iter().map(|row| row.get(0))).await?;
        }
        DeletePolicy::Hide => {
            tx.execute(
                "UPDATE messages SET state = 'hidden'
                 WHERE maildrop_id = $1 AND uid = ANY($2) AND state = 'visible'",
                &[maildrop, uids],
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
