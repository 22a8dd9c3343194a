//! Moving a maildrop from a Maildir into the database and back, keeping every UIDL.
//!
//! postie's Maildir store and Dovecot give the UIDL `%08x%08x` of (uid, uidvalidity), the
//! form this store gives from the maildrop row's uidvalidity and each message's uid. So an
//! import takes the Maildir's uidvalidity into the maildrop row, each message keeps its uid,
//! and the next uid goes above every uid the Maildir ever gave: the same UIDLs, and none of
//! them ever given again. That needs a maildrop that has given no uid yet; one that has (mail
//! delivered to the database before the import) is refused, as its uids would clash.
//!
//! The bodies are stored first, held from the sweep, then one transaction adds every message
//! row and the counters: an import is there whole or not at all, and a second import of the
//! same Maildir finds the maildrop numbered with its uidvalidity and changes nothing.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use postie_store::{
    read_maildir, MaildirContents, MaildirWriter, MessageBody, MessageSource, MessageState,
    StoreError,
};
use tokio_postgres::{IsolationLevel, Transaction};

use crate::body::PgBody;
use crate::deliver::{store_body, Hold};
use crate::pool::{Pool, TxError};
use crate::size::crlf_size;
use crate::PgStore;

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Imported {
    /// The messages are in the database now.
    Done {
        messages: u64,
        /// Octets of the messages that count in the maildrop's usage (not trashed).
        bytes: u64,
        uidvalidity: u32,
    },
    /// The maildrop already holds this Maildir (it is numbered with its uidvalidity):
    /// nothing was changed.
    AlreadyImported { uidvalidity: u32 },
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exported {
    pub messages: u64,
    pub uidvalidity: u32,
}

/// A message file of the Maildir being imported.
struct MaildirFile(PathBuf);

impl MessageSource for MaildirFile {
    fn len(&self) -> u64 {
        std::fs::metadata(&self.0).map_or(0, |m| m.len())
    }

    fn reader(&self) -> io::Result<Box<dyn Read + Send + '_>> {
        Ok(Box::new(File::open(&self.0)?))
    }
}

/// One message row the import adds.
struct Row {
    uid: i64,
    body_id: i64,
    raw_size: i64,
    crlf_size: i64,
    seen: bool,
    state: &'static str,
}

/// The import's one transaction: the maildrop numbered as the Maildir was, and every row.
struct Landing<'a> {
    user: &'a str,
    uidvalidity: i64,
    next_uid: i64,
    rows: Vec<Row>,
}

impl PgStore {
    /// Imports the Maildir at `root` as `user`'s maildrop, each message under the UIDL
    /// postie's Maildir store gives it there (Dovecot's, when Dovecot numbered it; see
    /// [`read_maildir`], which also records the numbering in the Maildir's index).
    pub async fn import_maildir(&self, user: &str, root: &Path) -> Result<Imported, StoreError> {
        let root = root.to_owned();
        let contents = tokio::task::spawn_blocking(move || read_maildir(&root))
            .await
            .map_err(|e| StoreError::Temporary(format!("reading the Maildir: {e}")))??;
        if contents.uidvalidity == 0 {
            return Err(StoreError::Permanent(
                "the Maildir's uidvalidity is 0, which no UIDL of this store can carry".into(),
            ));
        }
        if let Some(done) = numbered(&self.pool, user, contents.uidvalidity).await? {
            return Ok(done);
        }
        let mut bodies = Vec::with_capacity(contents.messages.len());
        let stored = store_all(&self.pool, &contents, &mut bodies).await;
        let landed = match stored {
            Ok((next_uid, rows)) => {
                let landing = Landing {
                    user,
                    uidvalidity: i64::from(contents.uidvalidity),
                    next_uid,
                    rows,
                };
                self.pool
                    .transaction(IsolationLevel::ReadCommitted, &landing, |tx, landing| {
                        Box::pin(land(tx, landing))
                    })
                    .await
            }
            Err(e) => Err(e),
        };
        if !matches!(landed, Ok(Imported::Done { .. })) {
            // Nothing refers to them: let the sweep have them. Best effort; `postie store
            // check` releases what an interrupted import held.
            let _ = release(&self.pool, &bodies).await;
        }
        landed
    }

    /// Writes `user`'s maildrop into a new Maildir at `root`, byte for byte as stored (each
    /// message's own trace headers, then its body), with the maildrop's uids and uidvalidity
    /// in the index, so that postie's Maildir store, and an import back, give the same UIDLs.
    /// Trashed messages go to the Maildir++ folder `.Trash`, hidden ones are indexed hidden.
    pub async fn export_maildir(&self, user: &str, root: &Path) -> Result<Exported, StoreError> {
        let maildrop = self
            .pool
            .transaction(IsolationLevel::ReadCommitted, user, |tx, user| {
                Box::pin(async move {
                    Ok(tx
                        .query_opt(
                            "SELECT id, uidvalidity, next_uid FROM maildrops WHERE user_name = $1",
                            &[&user],
                        )
                        .await?)
                })
            })
            .await?
            .ok_or_else(|| {
                StoreError::Permanent(format!("the database holds no maildrop for {user}"))
            })?;
        let (id, uidvalidity, next_uid): (i64, i64, i64) =
            (maildrop.get(0), maildrop.get(1), maildrop.get(2));
        let uidvalidity = u32::try_from(uidvalidity).map_err(|_| {
            StoreError::Permanent(format!("uidvalidity {uidvalidity} out of range"))
        })?;
        // A maildrop that used its last uid has a next uid one past what a Maildir index
        // holds; the Maildir is then as full as the maildrop.
        let next_uid = u32::try_from(next_uid).unwrap_or(u32::MAX);
        // Writing files blocks: an export is a command of its own, with no sessions to serve
        // on its runtime.
        let mut writer = MaildirWriter::create(root, uidvalidity, next_uid)?;
        let mut after = 0i64;
        let mut messages = 0u64;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let page = page(&self.pool, id, after).await?;
            let Some(last) = page.last() else { break };
            after = last.uid;
            for listed in page {
                let mut file = writer.start()?;
                let mut body = PgBody::new(
                    self.pool.clone(),
                    listed.headers,
                    listed.body_id,
                    listed.chunks,
                    listed.size,
                );
                loop {
                    let n = body.read(&mut buf).await.map_err(|e| {
                        StoreError::Temporary(format!("reading message {}: {e}", listed.uid))
                    })?;
                    if n == 0 {
                        break;
                    }
                    file.write(&buf[..n])?;
                }
                let uid = (listed.state != MessageState::Trashed).then_some(listed.uid as u32);
                writer.publish(file, uid, listed.state, listed.seen)?;
                messages += 1;
            }
        }
        writer.finish()?;
        Ok(Exported {
            messages,
            uidvalidity,
        })
    }
}

/// `Some` when `user`'s maildrop has already given uids: the Maildir is in it already when
/// they are of its uidvalidity, and otherwise the import is refused.
async fn numbered(
    pool: &Pool,
    user: &str,
    uidvalidity: u32,
) -> Result<Option<Imported>, StoreError> {
    pool.transaction(IsolationLevel::ReadCommitted, user, |tx, user| {
        Box::pin(async move {
            let row = tx
                .query_opt(
                    "SELECT uidvalidity, next_uid FROM maildrops WHERE user_name = $1",
                    &[&user],
                )
                .await?;
            match row {
                Some(row) => Ok(verdict(user, row.get(0), row.get(1), uidvalidity)?),
                None => Ok(None),
            }
        })
    })
    .await
}

/// What a maildrop numbered `(uidvalidity, next_uid)` says about importing a Maildir of
/// `importing`'s uidvalidity into it.
fn verdict(
    user: &str,
    uidvalidity: i64,
    next_uid: i64,
    importing: u32,
) -> Result<Option<Imported>, StoreError> {
    if next_uid <= 1 {
        return Ok(None);
    }
    if uidvalidity == i64::from(importing) {
        return Ok(Some(Imported::AlreadyImported {
            uidvalidity: importing,
        }));
    }
    Err(StoreError::Permanent(format!(
        "{user}'s maildrop in the database has given uids already (mail delivered there \
         before the import?): importing now would give its messages other UIDLs than the \
         Maildir's. Import before pointing deliveries at the database, or export the \
         maildrop, move its messages into the Maildir and import that"
    )))
}

/// Stores every message's body, held, noting each body in `bodies` as soon as it exists so
/// that a failure can release it; returns the next uid and the rows to add.
async fn store_all(
    pool: &Pool,
    contents: &MaildirContents,
    bodies: &mut Vec<i64>,
) -> Result<(i64, Vec<Row>), StoreError> {
    let mut rows = Vec::with_capacity(contents.messages.len());
    // Trashed messages have no uid in a Maildir: they get the next ones.
    let mut next_uid = i64::from(contents.next_uid);
    for message in &contents.messages {
        let source = Arc::new(MaildirFile(message.path.clone()));
        let stored = store_body(pool, source, Hold::Held)
            .await
            .map_err(|e| StoreError::Temporary(format!("{}: {e}", message.path.display())))?;
        bodies.push(stored.id);
        let uid = match message.uid {
            Some(uid) => i64::from(uid),
            None => {
                next_uid += 1;
                next_uid - 1
            }
        };
        if uid > i64::from(u32::MAX) {
            return Err(StoreError::Permanent(
                "the Maildir has used every uid: its trash cannot be numbered".into(),
            ));
        }
        let octets = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        rows.push(Row {
            uid,
            body_id: stored.id,
            raw_size: octets(stored.count.counter.raw_size()),
            crlf_size: octets(crlf_size(&[], &stored.count)),
            seen: message.seen,
            state: match message.state {
                MessageState::Visible => "visible",
                MessageState::Hidden => "hidden",
                MessageState::Trashed => "trashed",
            },
        });
    }
    Ok((next_uid, rows))
}

async fn land(tx: &Transaction<'_>, landing: &Landing<'_>) -> Result<Imported, TxError> {
    let user = landing.user;
    let importing = landing.uidvalidity as u32;
    let select = "SELECT id, uidvalidity, next_uid FROM maildrops WHERE user_name = $1 FOR UPDATE";
    let mut row = tx.query_opt(select, &[&user]).await?;
    if row.is_none() {
        tx.execute(
            "INSERT INTO maildrops (user_name, uidvalidity) VALUES ($1, $2)
             ON CONFLICT (user_name) DO NOTHING",
            &[&user, &landing.uidvalidity],
        )
        .await?;
        row = tx.query_opt(select, &[&user]).await?;
    }
    let row = row.ok_or_else(|| StoreError::Temporary(format!("{user}'s maildrop vanished")))?;
    let maildrop: i64 = row.get(0);
    // Checked again under the row's lock: a delivery or another import may have come first.
    if let Some(verdict) = verdict(user, row.get(1), row.get(2), importing)? {
        return Ok(verdict);
    }
    let counted = landing.rows.iter().filter(|r| r.state != "trashed");
    let (messages, bytes) = counted.fold((0i64, 0i64), |(n, b), r| (n + 1, b + r.raw_size));
    tx.execute(
        "UPDATE maildrops SET uidvalidity = $2, next_uid = $3, bytes = $4, messages = $5
         WHERE id = $1",
        &[
            &maildrop,
            &landing.uidvalidity,
            &landing.next_uid,
            &bytes,
            &messages,
        ],
    )
    .await?;
    let column = |f: fn(&Row) -> i64| landing.rows.iter().map(f).collect::<Vec<i64>>();
    let body_ids = column(|r| r.body_id);
    let seen: Vec<bool> = landing.rows.iter().map(|r| r.seen).collect();
    let states: Vec<&str> = landing.rows.iter().map(|r| r.state).collect();
    let delivery_ids: Vec<Vec<u8>> = landing
        .rows
        .iter()
        .map(|_| rand::random::<[u8; 16]>().to_vec())
        .collect();
    tx.execute(
        "INSERT INTO messages
             (maildrop_id, uid, body_id, headers, raw_size, crlf_size, seen, state, delivery_id)
         SELECT $1, r.uid, r.body_id, ''::bytea, r.raw_size, r.crlf_size, r.seen, r.state,
                r.delivery_id
         FROM unnest($2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::boolean[],
                     $7::text[], $8::bytea[])
              AS r(uid, body_id, raw_size, crlf_size, seen, state, delivery_id)",
        &[
            &maildrop,
            &column(|r| r.uid),
            &body_ids,
            &column(|r| r.raw_size),
            &column(|r| r.crlf_size),
            &seen,
            &states,
            &delivery_ids,
        ],
    )
    .await?;
    let referenced = tx
        .execute(
            "UPDATE bodies SET refs = refs + 1, released_at = NULL
             WHERE id = ANY($1) AND size IS NOT NULL",
            &[&body_ids],
        )
        .await?;
    if referenced != body_ids.len() as u64 {
        return Err(StoreError::Temporary(
            "some message bodies were reclaimed before the import ended; run it again".into(),
        )
        .into());
    }
    Ok(Imported::Done {
        messages: landing.rows.len() as u64,
        bytes: bytes as u64,
        uidvalidity: importing,
    })
}

/// Lets the sweep reclaim bodies an import stored but did not use.
async fn release(pool: &Pool, bodies: &[i64]) -> Result<(), StoreError> {
    if bodies.is_empty() {
        return Ok(());
    }
    pool.transaction(IsolationLevel::ReadCommitted, bodies, |tx, bodies| {
        Box::pin(async move {
            tx.execute(
                "UPDATE bodies SET released_at = now()
                 WHERE id = ANY($1) AND refs = 0 AND released_at IS NULL",
                &[&bodies],
            )
            .await?;
            Ok(())
        })
    })
    .await
}

/// A message of the maildrop being exported.
struct Listed {
    uid: i64,
    state: MessageState,
    seen: bool,
    headers: Vec<u8>,
    body_id: i64,
    chunks: i32,
    size: i64,
}

/// Messages read per query while exporting: their headers are in memory together.
const PAGE: i64 = 256;

/// The next messages of the maildrop after uid `after`, in uid order, each with its body
/// complete (a row never refers to an incomplete one).
async fn page(pool: &Pool, maildrop: i64, after: i64) -> Result<Vec<Listed>, StoreError> {
    let rows = pool
        .transaction(
            IsolationLevel::ReadCommitted,
            &(maildrop, after),
            |tx, (maildrop, after)| {
                Box::pin(async move {
                    Ok(tx
                        .query(
                            "SELECT m.uid, m.state, m.seen, m.headers, m.body_id, b.chunks, b.size
                             FROM messages m JOIN bodies b ON b.id = m.body_id
                             WHERE m.maildrop_id = $1 AND m.uid > $2
                             ORDER BY m.uid LIMIT $3",
                            &[maildrop, after, &PAGE],
                        )
                        .await?)
                })
            },
        )
        .await?;
    rows.iter()
        .map(|row| {
            let uid: i64 = row.get(0);
            let state = match row.get::<_, &str>(1) {
                "visible" => MessageState::Visible,
                "hidden" => MessageState::Hidden,
                _ => MessageState::Trashed,
            };
            let (chunks, size): (Option<i32>, Option<i64>) = (row.get(5), row.get(6));
            let (Some(chunks), Some(size)) = (chunks, size) else {
                return Err(StoreError::Permanent(format!(
                    "message uid {uid} refers to an incomplete body: run `postie store check`"
                )));
            };
            Ok(Listed {
                uid,
                state,
                seen: row.get(2),
                headers: row.get(3),
                body_id: row.get(4),
                chunks,
                size,
            })
        })
        .collect()
}
