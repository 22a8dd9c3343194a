//! The measurements. Each returns one JSON line.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::client::{tls_config, Client};
use crate::Target;

fn tls_of(target: &Target) -> Result<Option<Arc<rustls::ClientConfig>>> {
    target.tls_ca.as_deref().map(tls_config).transpose()
}

async fn one_session(target: &Target, tls: Option<&Arc<rustls::ClientConfig>>) -> Result<()> {
    let mut client = Client::connect(target, tls).await?;
    client.send(&format!("USER {}\r\n", target.user)).await?;
    client.expect_ok().await?;
    client
        .send(&format!("PASS {}\r\n", target.password))
        .await?;
    client.expect_ok().await?;
    client.send("STAT\r\n").await?;
    client.expect_ok().await?;
    client.send("QUIT\r\n").await?;
    client.expect_ok().await?;
    Ok(())
}

pub async fn sessions(target: &Target, concurrency: usize, seconds: f64) -> Result<String> {
    let tls = tls_of(target)?;
    let completed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let target = target.clone();
        let tls = tls.clone();
        let completed = Arc::clone(&completed);
        workers.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                one_session(&target, tls.as_ref()).await?;
                completed.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<(), anyhow::Error>(())
        }));
    }
    for worker in workers {
        worker.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let count = completed.load(Ordering::Relaxed);
    Ok(format!(
        "{{\"scenario\":\"sessions\",\"tls\":{},\"value\":{:.1},\"unit\":\"sessions/s\",\"count\":{count}}}",
        tls.is_some(),
        count as f64 / elapsed
    ))
}

async fn listing(client: &mut Client, command: &str) -> Result<Vec<(usize, String)>> {
    client.send(command).await?;
    client.expect_ok().await?;
    let mut entries = Vec::new();
    loop {
        let line = client.read_line().await?;
        if line == b".\r\n" {
            return Ok(entries);
        }
        let text = String::from_utf8_lossy(line);
        let mut words = text.split_whitespace();
        let number = words
            .next()
            .and_then(|n| n.parse().ok())
            .context("bad listing line")?;
        entries.push((number, words.next().unwrap_or_default().to_owned()));
    }
}

pub async fn retr(target: &Target) -> Result<String> {
    let tls = tls_of(target)?;
    let mut client = Client::connect(target, tls.as_ref()).await?;
    client.login(target).await?;
    let sizes = listing(&mut client, "LIST\r\n").await?;
    if sizes.is_empty() {
        bail!("the maildrop is empty");
    }
    let started = Instant::now();
    let mut total = 0u64;
    for (number, size) in &sizes {
        client.send(&format!("RETR {number}\r\n")).await?;
        let status = client.expect_ok().await?;
        let bytes = client.read_body().await?;
        let announced: u64 = size.parse()?;
        if bytes != announced {
            bail!("message {number}: LIST said {announced} octets, RETR ({status}) gave {bytes}");
        }
        total += bytes;
    }
    let elapsed = started.elapsed().as_secs_f64();
    client.send("QUIT\r\n").await?;
    client.expect_ok().await?;
    Ok(format!(
        "{{\"scenario\":\"retr\",\"tls\":{},\"value\":{:.1},\"unit\":\"MB/s\",\"messages\":{},\"bytes\":{total}}}",
        tls.is_some(),
        total as f64 / elapsed / 1e6,
        sizes.len()
    ))
}

pub async fn bigbox(target: &Target, repeat: usize, expect: usize) -> Result<String> {
    let tls = tls_of(target)?;
    let mut times = Vec::new();
    for _ in 0..repeat {
        let started = Instant::now();
        let mut client = Client::connect(target, tls.as_ref()).await?;
        client.login(target).await?;
        client.send("STAT\r\n").await?;
        client.expect_ok().await?;
        let list = listing(&mut client, "LIST\r\n").await?;
        let uidl = listing(&mut client, "UIDL\r\n").await?;
        if list.len() != expect || uidl.len() != expect {
            bail!(
                "expected {expect} messages, LIST gave {} and UIDL {}",
                list.len(),
                uidl.len()
            );
        }
        client.send("QUIT\r\n").await?;
        client.expect_ok().await?;
        times.push(started.elapsed().as_secs_f64());
    }
    let list: Vec<String> = times.iter().map(|t| format!("{t:.4}")).collect();
    Ok(format!(
        "{{\"scenario\":\"bigbox\",\"unit\":\"s\",\"times\":[{}]}}",
        list.join(",")
    ))
}

/// Proportional set size of the processes and all their descendants, in KiB.
fn pss_kib(roots: &[u32]) -> Result<u64> {
    let mut parents = Vec::new();
    for entry in std::fs::read_dir("/proc")? {
        let Ok(pid) = entry?.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The command name may hold spaces; the parent PID is the 2nd field after ')'.
        let Some(after) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
            continue;
        };
        let Some(ppid) = after
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        parents.push((pid, ppid));
    }
    let mut members: Vec<u32> = roots.to_vec();
    let mut grew = true;
    while grew {
        grew = false;
        for &(pid, ppid) in &parents {
            if members.contains(&ppid) && !members.contains(&pid) {
                members.push(pid);
                grew = true;
            }
        }
    }
    let mut total = 0;
    for pid in members {
        let Ok(rollup) = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) else {
            continue;
        };
        total += rollup
            .lines()
            .find_map(|l| l.strip_prefix("Pss:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0);
    }
    Ok(total)
}

/// `{n}` in the user name is replaced by the session number modulo `users`.
pub async fn idle(target: &Target, sessions: usize, users: usize, pids: &[u32]) -> Result<String> {
    let tls = tls_of(target)?;
    let before = pss_kib(pids)?;
    let mut clients = Vec::with_capacity(sessions);
    let mut batch = Vec::new();
    for i in 0..sessions {
        let mut target = target.clone();
        target.user = target.user.replace("{n}", &(i % users).to_string());
        let tls = tls.clone();
        batch.push(tokio::spawn(async move {
            let mut client = Client::connect(&target, tls.as_ref()).await?;
            client.login(&target).await?;
            Ok::<Client, anyhow::Error>(client)
        }));
        if batch.len() == 200 || i + 1 == sessions {
            for task in batch.drain(..) {
                clients.push(task.await??);
            }
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = pss_kib(pids)?;
    for client in clients.iter_mut().step_by((sessions / 100).max(1)) {
        client.send("NOOP\r\n").await?;
        client.expect_ok().await?;
    }
    let per_session = (after.saturating_sub(before)) as f64 / sessions as f64;
    Ok(format!(
        "{{\"scenario\":\"idle\",\"tls\":{},\"value\":{per_session:.1},\"unit\":\"KiB/session\",\"sessions\":{sessions},\"pss_before_kib\":{before},\"pss_after_kib\":{after}}}",
        tls.is_some()
    ))
}

pub async fn loopback(megabytes: usize) -> Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let sender = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await?;
        let block = vec![b'x'; 1 << 20];
        for _ in 0..megabytes {
            socket.write_all(&block).await?;
        }
        Ok::<(), anyhow::Error>(())
    });
    let mut socket = tokio::net::TcpStream::connect(addr).await?;
    let mut buffer = vec![0u8; 1 << 20];
    let started = Instant::now();
    let mut received = 0usize;
    loop {
        let n = socket.read(&mut buffer).await?;
        if n == 0 {
            break;
        }
        received += n;
    }
    let elapsed = started.elapsed().as_secs_f64();
    sender.await??;
    if received != megabytes << 20 {
        bail!("received {received} bytes of {}", megabytes << 20);
    }
    Ok(format!(
        "{{\"scenario\":\"loopback\",\"value\":{:.1},\"unit\":\"MB/s\"}}",
        received as f64 / elapsed / 1e6
    ))
}
