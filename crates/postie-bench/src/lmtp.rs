//! The `deliver` scenario: an LMTP client handing over messages as an MTA does, each answer
//! checked.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const STEP_TIMEOUT: Duration = Duration::from_secs(60);

struct Lmtp {
    stream: BufReader<TcpStream>,
    line: String,
}

impl Lmtp {
    async fn connect(addr: SocketAddr) -> Result<Lmtp> {
        let tcp = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connect {addr}"))?;
        tcp.set_nodelay(true)?;
        let mut lmtp = Lmtp {
            stream: BufReader::new(tcp),
            line: String::new(),
        };
        lmtp.expect(220).await?;
        lmtp.send(b"LHLO bench.example\r\n").await?;
        lmtp.expect(250).await?;
        Ok(lmtp)
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<()> {
        tokio::time::timeout(STEP_TIMEOUT, self.stream.get_mut().write_all(bytes))
            .await
            .context("write timed out")??;
        Ok(())
    }

    /// Reads one reply (all its lines) and checks its code.
    async fn expect(&mut self, code: u16) -> Result<()> {
        loop {
            self.line.clear();
            let n = tokio::time::timeout(STEP_TIMEOUT, self.stream.read_line(&mut self.line))
                .await
                .context("the server did not answer within 60 s")??;
            if n == 0 {
                bail!("connection closed");
            }
            if !self.line.starts_with(&code.to_string()) {
                bail!("expected {code}, server said {}", self.line.trim_end());
            }
            if self.line.as_bytes().get(3) != Some(&b'-') {
                return Ok(());
            }
        }
    }
}

fn message(size: usize, rcpt: &str) -> Vec<u8> {
    let mut out = format!("From: bench@example.org\r\nTo: {rcpt}\r\nSubject: lmtp bench\r\n\r\n")
        .into_bytes();
    let line = b"The quick brown fox jumps over the lazy dog, again and again and again.\r\n";
    while out.len() < size {
        out.extend_from_slice(line);
    }
    out.extend_from_slice(b".\r\n");
    out
}

pub async fn deliver(
    addr: SocketAddr,
    rcpt: &str,
    messages: usize,
    concurrency: usize,
    size: usize,
) -> Result<String> {
    let body = Arc::new(message(size, rcpt));
    let envelope = Arc::new(
        format!("MAIL FROM:<bench@example.org>\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n").into_bytes(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (body, envelope, next) = (Arc::clone(&body), Arc::clone(&envelope), Arc::clone(&next));
        workers.push(tokio::spawn(async move {
            let mut lmtp = Lmtp::connect(addr).await?;
            while next.fetch_add(1, Ordering::Relaxed) < messages {
                // PIPELINING: the envelope goes in one write, the answers come in order.
                lmtp.send(&envelope).await?;
                lmtp.expect(250).await?;
                lmtp.expect(250).await?;
                lmtp.expect(354).await?;
                lmtp.send(&body).await?;
                lmtp.expect(250).await?;
            }
            lmtp.send(b"QUIT\r\n").await?;
            Ok::<(), anyhow::Error>(())
        }));
    }
    for worker in workers {
        worker.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    Ok(format!(
        "{{\"scenario\":\"deliver\",\"value\":{:.1},\"unit\":\"deliveries/s\",\"messages\":{messages}}}",
        messages as f64 / elapsed
    ))
}
