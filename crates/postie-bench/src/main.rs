//! `postie-bench`: drives a POP3 server (postie or Dovecot) on loopback and prints one JSON
//! line per measurement. Every scenario checks what it receives; every loop is bounded.

mod client;
mod lmtp;
mod scenarios;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "postie-bench", about = "POP3 load generator (loopback only)")]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Clone, Args)]
pub struct Target {
    /// Server address; must be a loopback address.
    #[arg(long)]
    pub addr: SocketAddr,
    /// Implicit TLS, trusting this PEM certificate.
    #[arg(long)]
    pub tls_ca: Option<PathBuf>,
    #[arg(long)]
    pub user: String,
    #[arg(long)]
    pub password: String,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Connect, log in, STAT, QUIT in a loop with N concurrent clients.
    Sessions {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
    },
    /// One session retrieving every message, checking sizes and framing.
    Retr {
        #[command(flatten)]
        target: Target,
    },
    /// Login, STAT, LIST, UIDL, QUIT on a big maildrop; prints the time of each repetition.
    Bigbox {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = 1)]
        repeat: usize,
        /// Messages the maildrop must hold.
        #[arg(long)]
        expect: usize,
    },
    /// Hold N logged-in sessions open, then print the memory the server processes use.
    Idle {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        sessions: usize,
        /// Spread sessions over this many users (`{n}` in --user); servers limit sessions per user.
        #[arg(long, default_value_t = 100)]
        users: usize,
        /// PIDs of the server: their processes and all descendants are measured.
        #[arg(long, value_delimiter = ',')]
        pids: Vec<u32>,
    },
    /// LMTP deliveries per second: N concurrent connections, one recipient per message.
    Deliver {
        /// LMTP server address; must be a loopback address.
        #[arg(long)]
        addr: SocketAddr,
        #[arg(long)]
        rcpt: String,
        #[arg(long, default_value_t = 2000)]
        messages: usize,
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Message size in bytes.
        #[arg(long, default_value_t = 4096)]
        size: usize,
    },
    /// Raw TCP throughput over loopback: the ceiling for RETR.
    Loopback {
        #[arg(long, default_value_t = 2048)]
        megabytes: usize,
    },
}

fn main() -> Result<()> {
    raise_fd_limit();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let line = match cli.scenario {
            Scenario::Sessions {
                target,
                concurrency,
                seconds,
            } => {
                check_loopback(&target)?;
                scenarios::sessions(&target, concurrency, seconds).await?
            }
            Scenario::Retr { target } => {
                check_loopback(&target)?;
                scenarios::retr(&target).await?
            }
            Scenario::Bigbox {
                target,
                repeat,
                expect,
            } => {
                check_loopback(&target)?;
                scenarios::bigbox(&target, repeat, expect).await?
            }
            Scenario::Idle {
                target,
                sessions,
                users,
                pids,
            } => {
                check_loopback(&target)?;
                scenarios::idle(&target, sessions, users.max(1), &pids).await?
            }
            Scenario::Deliver { addr, rcpt, messages, concurrency, size } => {
                if !addr.ip().is_loopback() {
                    bail!("{addr} is not a loopback address: postie-bench only loads servers on this machine");
                }
                lmtp::deliver(addr, &rcpt, messages, concurrency, size).await?
            }
            Scenario::Loopback { megabytes } => scenarios::loopback(megabytes).await?,
        };
        println!("{line}");
        Ok(())
    })
}

fn check_loopback(target: &Target) -> Result<()> {
    if !target.addr.ip().is_loopback() {
        bail!(
            "{} is not a loopback address: postie-bench only loads servers on this machine",
            target.addr
        );
    }
    Ok(())
}

/// Tens of thousands of sockets need more than the default descriptor limit.
fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit with a valid struct.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            let wanted = libc::rlimit {
                rlim_cur: 200_000,
                rlim_max: 200_000.max(limit.rlim_max),
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) != 0 {
                limit.rlim_cur = limit.rlim_max;
                libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
            }
        }
    }
}
