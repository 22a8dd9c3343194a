//! Reading a message: the recipient's headers, then the body's chunks fetched a couple at a
//! time by (body, seq), each fetch a short transaction of its own, so that memory stays at a
//! few chunks whatever the size and no transaction lasts as long as a slow client.

use std::collections::VecDeque;
use std::io;

use postie_store::MessageBody;
use tokio_postgres::IsolationLevel;

use crate::pool::Pool;

/// Chunks fetched by one query.
const CHUNKS_PER_FETCH: i32 = 2;

/// A message of a [`crate::PgStore`] being read.
pub struct PgBody {
    pool: Pool,
    body_id: i64,
    /// Chunks and octets of the body, as recorded when it was complete.
    chunks: i32,
    size: i64,
    /// The next chunk to fetch.
    next_seq: i32,
    /// Octets of the body fetched so far.
    fetched: i64,
    /// What `read` hands out now: the headers first, then one chunk after another.
    current: Vec<u8>,
    at: usize,
    ahead: VecDeque<Vec<u8>>,
}

impl PgBody {
    pub(crate) fn new(pool: Pool, headers: Vec<u8>, body_id: i64, chunks: i32, size: i64) -> Self {
        PgBody {
            pool,
            body_id,
            chunks,
            size,
            next_seq: 0,
            fetched: 0,
            current: headers,
            at: 0,
            ahead: VecDeque::new(),
        }
    }

    /// The next chunks into `ahead`; an error if any is missing (the body was reclaimed or
    /// damaged): the caller must not take a short body for a whole one.
    async fn fetch(&mut self) -> io::Result<()> {
        let last = (self.next_seq + CHUNKS_PER_FETCH).min(self.chunks);
        let context = (self.body_id, self.next_seq, last);
        let rows = self
            .pool
            .transaction(
                IsolationLevel::ReadCommitted,
                &context,
                |tx, (body_id, first, last)| {
                    Box::pin(async move {
                        Ok(tx
                            .query(
                                "SELECT seq, data FROM body_chunks
                                 WHERE body_id = $1 AND seq >= $2 AND seq < $3
                                 ORDER BY seq",
                                &[body_id, first, last],
                            )
                            .await?)
                    })
                },
            )
            .await
            .map_err(io::Error::other)?;
        for row in rows {
            let seq: i32 = row.get(0);
            if seq != self.next_seq {
                break;
            }
            let data: Vec<u8> = row.get(1);
            self.fetched += data.len() as i64;
            self.ahead.push_back(data);
            self.next_seq += 1;
        }
        if self.next_seq < last {
            return Err(self.damaged(&format!("chunk {} is missing", self.next_seq)));
        }
        Ok(())
    }

    fn damaged(&self, what: &str) -> io::Error {
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("message body {}: {what}", self.body_id),
        )
    }
}

impl MessageBody for PgBody {
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let rest = &self.current[self.at..];
            if !rest.is_empty() {
                let n = rest.len().min(buf.len());
                buf[..n].copy_from_slice(&rest[..n]);
                self.at += n;
                return Ok(n);
            }
            if let Some(next) = self.ahead.pop_front() {
                self.current = next;
                self.at = 0;
                continue;
            }
            if self.next_seq >= self.chunks {
                if self.fetched != self.size {
                    let what = format!("{} octets stored of {}", self.fetched, self.size);
                    return Err(self.damaged(&what));
                }
                return Ok(0);
            }
            self.fetch().await?;
        }
    }
}
