//! A connection whose first bytes were already read (by the gate) and are read again.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use postie_net::Conn;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// `read` bytes first, then the connection.
pub(crate) struct Rewound {
    read: Vec<u8>,
    offset: usize,
    conn: Conn,
}

impl Rewound {
    pub(crate) fn new(read: Vec<u8>, conn: Conn) -> Self {
        Rewound {
            read,
            offset: 0,
            conn,
        }
    }
}

impl AsyncRead for Rewound {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let left = this.read.get(this.offset..).unwrap_or_default();
        if left.is_empty() {
            return Pin::new(&mut this.conn).poll_read(cx, buf);
        }
        let n = left.len().min(buf.remaining());
        buf.put_slice(&left[..n]);
        this.offset += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Rewound {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.conn).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.conn).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.conn).poll_shutdown(cx)
    }
}
