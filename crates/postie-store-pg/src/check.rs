//! `postie store check`: the counters and references of the schema against the rows they
//! count, counters repaired, damage reported.
//!
//! Safe while front ends serve: findings come from single statements over a bounded range of
//! rows (one consistent view of committed data each, no locks), and each repair is a short
//! transaction of its own that locks the one row it fixes before counting again, so that a
//! delivery or a QUIT in flight is either waited for or sees the repaired row.

use std::fmt;

use tokio_postgres::{IsolationLevel, Transaction};

use crate::pool::{Pool, TxError};
use crate::PgStore;
use postie_store::StoreError;

/// Maildrops and bodies looked at per query.
const BATCH: i64 = 500;

/// Something found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// `maildrops.bytes`/`messages` differ from the messages that take space.
    Usage {
        user: String,
        recorded: (i64, i64),
        counted: (i64, i64),
    },
    /// `maildrops.next_uid` is not above every uid: the next delivery would fail.
    NextUid {
        user: String,
        next_uid: i64,
        highest_uid: i64,
    },
    /// `bodies.refs` differs from the messages referring to the body.
    BodyRefs {
        body: i64,
        recorded: i32,
        counted: i64,
    },
    /// A body nothing refers to and nothing released: an import was interrupted.
    Unreleased { body: i64 },
    /// A complete body whose chunks do not add up to its size and count: its messages
    /// cannot be read whole. Not repairable.
    BodyChunks {
        body: i64,
        size: i64,
        chunks: i32,
        found_chunks: i64,
        found_octets: i64,
    },
    /// Messages refer to a body whose storing never ended. Not repairable.
    IncompleteBodyReferenced { body: i64, messages: i64 },
}

impl Finding {
    pub fn repairable(&self) -> bool {
        !matches!(
            self,
            Finding::BodyChunks { .. } | Finding::IncompleteBodyReferenced { .. }
        )
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::Usage {
                user,
                recorded,
                counted,
            } => write!(
                f,
                "maildrop {user}: usage recorded as {} octets in {} messages, but its messages hold {} octets in {}",
                recorded.0, recorded.1, counted.0, counted.1
            ),
            Finding::NextUid {
                user,
                next_uid,
                highest_uid,
            } => write!(
                f,
                "maildrop {user}: next uid {next_uid} is not above its highest uid {highest_uid}"
            ),
            Finding::BodyRefs {
                body,
                recorded,
                counted,
            } => write!(
                f,
                "body {body}: {recorded} references recorded, {counted} messages refer to it"
            ),
            Finding::Unreleased { body } => write!(
                f,
                "body {body}: no message refers to it and it was never released (an interrupted import)"
            ),
            Finding::BodyChunks {
                body,
                size,
                chunks,
                found_chunks,
                found_octets,
            } => write!(
                f,
                "body {body}: recorded as {size} octets in {chunks} chunks, but {found_octets} octets in {found_chunks} chunks are stored (or their numbering has gaps): its messages cannot be read whole"
            ),
            Finding::IncompleteBodyReferenced { body, messages } => write!(
                f,
                "body {body}: {messages} message(s) refer to it, but it was never stored whole"
            ),
        }
    }
}

/// One finding, and whether the check repaired it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub finding: Finding,
    pub repaired: bool,
}

/// What [`PgStore::check`] looked at and found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    pub maildrops: u64,
    pub bodies: u64,
    pub findings: Vec<Checked>,
}

impl PgStore {
    /// Checks every maildrop's counters and next uid against its messages, and every body's
    /// references and chunks; with `repair`, fixes what can be fixed (counters, references,
    /// the next uid, bodies to release), each in a short transaction of its own.
    pub async fn check(&self, repair: bool) -> Result<CheckReport, StoreError> {
        let mut report = CheckReport::default();
        let mut after = 0i64;
        loop {
            let rows = query(&self.pool, MAILDROPS, after).await?;
            let Some(last) = rows.last() else { break };
            after = last.get(0);
            for row in &rows {
                report.maildrops += 1;
                let (id, user): (i64, String) = (row.get(0), row.get(1));
                let recorded = (row.get(2), row.get(3));
                let counted = (row.get(5), row.get(6));
                let (next_uid, highest_uid): (i64, i64) = (row.get(4), row.get(7));
                let mut found = Vec::new();
                if recorded != counted {
                    found.push(Finding::Usage {
                        user: user.clone(),
                        recorded,
                        counted,
                    });
                }
                if next_uid <= highest_uid {
                    found.push(Finding::NextUid {
                        user,
                        next_uid,
                        highest_uid,
                    });
                }
                if !found.is_empty() {
                    let repaired = repair && self.repair_maildrop(id).await?;
                    report.findings.extend(
                        found
                            .into_iter()
                            .map(|finding| Checked { finding, repaired }),
                    );
                }
            }
        }
        let grace = self.options.sweep_grace.as_secs_f64();
        let mut after = 0i64;
        loop {
            let rows = query_bodies(&self.pool, after, grace).await?;
            let Some(last) = rows.last() else { break };
            after = last.get(0);
            for row in &rows {
                report.bodies += 1;
                let body: i64 = row.get(0);
                let (size, chunks): (Option<i64>, Option<i32>) = (row.get(1), row.get(2));
                let (refs, released, counted): (i32, bool, i64) =
                    (row.get(3), row.get(4), row.get(5));
                let (found_chunks, found_octets, last_seq): (i64, i64, i32) =
                    (row.get(6), row.get(7), row.get(8));
                let held_long: bool = row.get(9);
                match (size, chunks) {
                    (Some(size), Some(chunks)) => {
                        let whole = found_chunks == i64::from(chunks)
                            && last_seq == chunks - 1
                            && found_octets == size;
                        if !whole {
                            report.findings.push(Checked {
                                finding: Finding::BodyChunks {
                                    body,
                                    size,
                                    chunks,
                                    found_chunks,
                                    found_octets,
                                },
                                repaired: false,
                            });
                        }
                    }
                    _ if counted > 0 => report.findings.push(Checked {
                        finding: Finding::IncompleteBodyReferenced {
                            body,
                            messages: counted,
                        },
                        repaired: false,
                    }),
                    _ => {}
                }
                let finding = if i64::from(refs) != counted {
                    Finding::BodyRefs {
                        body,
                        recorded: refs,
                        counted,
                    }
                } else if counted == 0 && !released && held_long {
                    Finding::Unreleased { body }
                } else {
                    continue;
                };
                let repaired = repair && self.repair_body(body).await?;
                report.findings.push(Checked { finding, repaired });
            }
        }
        Ok(report)
    }

    /// Sets the maildrop's counters from its messages and its next uid above them, under the
    /// row's lock: a delivery changes the row before it adds its message, and a QUIT removes
    /// messages before it changes the row, so either has finished or sees this repair.
    async fn repair_maildrop(&self, id: i64) -> Result<bool, StoreError> {
        self.pool
            .transaction(IsolationLevel::ReadCommitted, &id, |tx, id| {
                Box::pin(repair_maildrop(tx, *id))
            })
            .await
    }

    /// Sets the body's references from the messages referring to it, under the row's lock
    /// (deliveries and QUITs change the row in the transaction that adds or removes the
    /// reference), and releases it for the sweep when nothing refers to it.
    async fn repair_body(&self, id: i64) -> Result<bool, StoreError> {
        self.pool
            .transaction(IsolationLevel::ReadCommitted, &id, |tx, id| {
                Box::pin(repair_body(tx, *id))
            })
            .await
    }
}

const MAILDROPS: &str = "SELECT d.id, d.user_name, d.bytes, d.messages, d.next_uid,
        coalesce(sum(CASE WHEN m.state <> 'trashed' THEN m.raw_size END), 0)::bigint,
        count(CASE WHEN m.state <> 'trashed' THEN 1 END)::bigint,
        coalesce(max(m.uid), 0)::bigint
    FROM (SELECT * FROM maildrops WHERE id > $1 ORDER BY id LIMIT $2) d
    LEFT JOIN messages m ON m.maildrop_id = d.id
    GROUP BY d.id, d.user_name, d.bytes, d.messages, d.next_uid
    ORDER BY d.id";

async fn query(
    pool: &Pool,
    sql: &'static str,
    after: i64,
) -> Result<Vec<tokio_postgres::Row>, StoreError> {
    pool.transaction(IsolationLevel::ReadCommitted, &after, |tx, after| {
        Box::pin(async move { Ok(tx.query(sql, &[after, &BATCH]).await?) })
    })
    .await
}

async fn query_bodies(
    pool: &Pool,
    after: i64,
    grace: f64,
) -> Result<Vec<tokio_postgres::Row>, StoreError> {
    pool.transaction(
        IsolationLevel::ReadCommitted,
        &(after, grace),
        |tx, (after, grace)| {
            Box::pin(async move {
                Ok(tx
                    .query(
                        "SELECT b.id, b.size, b.chunks, b.refs, b.released_at IS NOT NULL,
                            (SELECT count(*) FROM messages m WHERE m.body_id = b.id),
                            (SELECT count(*) FROM body_chunks c WHERE c.body_id = b.id),
                            (SELECT coalesce(sum(coalesce(c.packed_from, octet_length(c.data))), 0)::bigint
                             FROM body_chunks c WHERE c.body_id = b.id),
                            (SELECT coalesce(max(c.seq), -1) FROM body_chunks c
                             WHERE c.body_id = b.id),
                            b.created_at < now() - $3 * interval '1 second'
                         FROM bodies b WHERE b.id > $1 ORDER BY b.id LIMIT $2",
                        &[after, &BATCH, grace],
                    )
                    .await?)
            })
        },
    )
    .await
}

async fn repair_maildrop(tx: &Transaction<'_>, id: i64) -> Result<bool, TxError> {
    tx.query_opt("SELECT 1 FROM maildrops WHERE id = $1 FOR UPDATE", &[&id])
        .await?;
    let fixed = tx
        .execute(
            "UPDATE maildrops d SET bytes = c.bytes, messages = c.messages,
                 next_uid = greatest(d.next_uid, c.highest + 1)
             FROM (SELECT coalesce(sum(raw_size) , 0)::bigint AS bytes,
                          count(*)::bigint AS messages,
                          (SELECT coalesce(max(uid), 0) FROM messages WHERE maildrop_id = $1)
                              AS highest
                   FROM messages WHERE maildrop_id = $1 AND state <> 'trashed') c
             WHERE d.id = $1",
            &[&id],
        )
        .await?;
    Ok(fixed == 1)
}

async fn repair_body(tx: &Transaction<'_>, id: i64) -> Result<bool, TxError> {
    tx.query_opt("SELECT 1 FROM bodies WHERE id = $1 FOR UPDATE", &[&id])
        .await?;
    let fixed = tx
        .execute(
            "UPDATE bodies b SET refs = c.n,
                 released_at = CASE WHEN c.n = 0 THEN coalesce(b.released_at, now()) END
             FROM (SELECT count(*)::integer AS n FROM messages WHERE body_id = $1) c
             WHERE b.id = $1",
            &[&id],
        )
        .await?;
    Ok(fixed == 1)
}
