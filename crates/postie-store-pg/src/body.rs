//! Reading a message: the recipient's headers, then the body's chunks fetched a couple at a
//! time by (body, seq), each fetch one statement outside any transaction, so that memory
//! stays at a few chunks whatever the size and nothing is held open for a slow client.
//!
//! The next fetch is under way while the chunks of the last one are handed out: the database
//! reads and sends while the front end writes to its client, rather than each waiting for
//! the other.

use std::collections::VecDeque;
use std::io;

use postie_store::MessageBody;
use tokio::task::JoinHandle;
use tokio_postgres::types::Type;
use tokio_postgres::Row;

use crate::packing::unpack;
use crate::pool::Pool;

/// Chunks fetched by one query.
pub(crate) const CHUNKS_PER_FETCH: i32 = 2;
/// Fetches under way at once, each on a connection of its own: the database's work for one
/// is not serialised behind the other's.
const FETCHES_AHEAD: usize = 2;

/// A message of a [`crate::PgStore`] being read.
pub struct PgBody {
    pool: Pool,
    body_id: i64,
    /// Chunks and octets of the body, as recorded when it was complete.
    chunks: i32,
    size: i64,
    /// The first chunk not yet asked for.
    requested: i32,
    /// The first chunk not yet received.
    received: i32,
    /// Octets of the body received so far.
    fetched: i64,
    /// The fetches under way, in order, of the chunks from `received` on.
    in_flight: VecDeque<JoinHandle<io::Result<Vec<Chunk>>>>,
    /// What `read` hands out now: the headers first, then one chunk after another.
    current: Piece,
    at: usize,
    ahead: VecDeque<Piece>,
}

/// A chunk as fetched: its number and its octets, restored if it was stored compressed.
pub(crate) struct Chunk {
    seq: i32,
    octets: Piece,
}

impl Chunk {
    /// A row that begins (seq, data, packed_from); `None` for the NULL seq of a body
    /// without chunks.
    pub(crate) fn from_row(row: Row) -> io::Result<Option<Self>> {
        let Some(seq) = row.get::<_, Option<i32>>(0) else {
            return Ok(None);
        };
        let octets = match row.get::<_, Option<i32>>(2) {
            None => Piece::Row(row),
            Some(packed_from) => Piece::Owned(unpack(row.get(1), packed_from)?),
        };
        Ok(Some(Chunk { seq, octets }))
    }
}

/// Octets being handed out: the headers or a restored chunk, or a chunk stored as it is,
/// served from the row that brought it.
enum Piece {
    Owned(Vec<u8>),
    Row(Row),
}

impl Piece {
    fn bytes(&self) -> &[u8] {
        match self {
            Piece::Owned(octets) => octets,
            Piece::Row(row) => row.get(1),
        }
    }
}

impl PgBody {
    pub(crate) fn new(pool: Pool, headers: Vec<u8>, body_id: i64, chunks: i32, size: i64) -> Self {
        PgBody {
            pool,
            body_id,
            chunks,
            size,
            requested: 0,
            received: 0,
            fetched: 0,
            in_flight: VecDeque::new(),
            current: Piece::Owned(headers),
            at: 0,
            ahead: VecDeque::new(),
        }
    }

    /// Starts fetching the next chunks when few are left to hand out.
    fn read_ahead(&mut self) {
        while self.in_flight.len() < FETCHES_AHEAD
            && self.requested < self.chunks
            && self.ahead.len() < CHUNKS_PER_FETCH as usize
        {
            let last = (self.requested + CHUNKS_PER_FETCH).min(self.chunks);
            let fetch = fetch(self.pool.clone(), self.body_id, self.requested, last);
            self.in_flight.push_back(tokio::spawn(fetch));
            self.requested = last;
        }
    }

    /// The body's first chunks, fetched with the message's row.
    pub(crate) fn with_first_chunks(mut self, chunks: Vec<Chunk>) -> io::Result<Self> {
        let last = CHUNKS_PER_FETCH.min(self.chunks);
        self.requested = last;
        self.take(chunks, last)?;
        Ok(self)
    }

    /// The chunks of the oldest fetch under way into `ahead`.
    async fn receive(&mut self) -> io::Result<()> {
        let Some(in_flight) = self.in_flight.pop_front() else {
            return Err(self.damaged("no fetch under way"));
        };
        let last = (self.received + CHUNKS_PER_FETCH).min(self.chunks);
        let chunks = in_flight.await.map_err(io::Error::other)??;
        self.take(chunks, last)
    }

    /// Fetched chunks up to `last` into `ahead`; an error if any is missing (the body was
    /// reclaimed or damaged): the caller must not take a short body for a whole one.
    fn take(&mut self, chunks: Vec<Chunk>, last: i32) -> io::Result<()> {
        for chunk in chunks {
            if chunk.seq != self.received {
                break;
            }
            self.fetched += chunk.octets.bytes().len() as i64;
            self.ahead.push_back(chunk.octets);
            self.received += 1;
        }
        if self.received < last {
            return Err(self.damaged(&format!("chunk {} is missing", self.received)));
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

/// Chunks `first..last` of a body, in order.
async fn fetch(pool: Pool, body_id: i64, first: i32, last: i32) -> io::Result<Vec<Chunk>> {
    let rows = pool
        .read(&(body_id, first, last), |client, (body_id, first, last)| {
            Box::pin(async move {
                Ok(client
                    .query_typed(
                        "SELECT seq, data, packed_from FROM body_chunks
                     WHERE body_id = $1 AND seq >= $2 AND seq < $3
                     ORDER BY seq",
                        &[
                            (body_id, Type::INT8),
                            (first, Type::INT4),
                            (last, Type::INT4),
                        ],
                    )
                    .await?)
            })
        })
        .await
        .map_err(io::Error::other)?;
    let mut chunks = Vec::with_capacity(rows.len());
    for row in rows {
        chunks.extend(Chunk::from_row(row)?);
    }
    Ok(chunks)
}

impl MessageBody for PgBody {
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            self.read_ahead();
            let rest = &self.current.bytes()[self.at..];
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
            if self.received >= self.chunks {
                if self.fetched != self.size {
                    let what = format!("{} octets stored of {}", self.fetched, self.size);
                    return Err(self.damaged(&what));
                }
                return Ok(0);
            }
            self.receive().await?;
        }
    }
}

impl Drop for PgBody {
    /// A RETR that ended early (the client left) stops its fetches.
    fn drop(&mut self) {
        for in_flight in self.in_flight.drain(..) {
            in_flight.abort();
        }
    }
}
