//! `postie serve`: configuration to services to listeners.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use postie_auth::{Authenticator, PasswdFile};
use postie_intake::IntakeServer;
use postie_server::Pop3Server;
use postie_store::MaildirStore;
use tracing::info;

use crate::cli::{LogFormat, ServeArgs};
use crate::config::Config;
use crate::demo;

const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

pub fn run(args: ServeArgs) -> Result<()> {
    init_logging(args.log_format);
    raise_open_file_limit();
    let config_path = if args.demo {
        demo::prepare(&args.demo_dir)?
    } else {
        args.config.clone()
    };
    let config = Config::load(&config_path)?;
    let users = PasswdFile::open(&config.passwd_file).map(Arc::new).with_context(|| {
        format!(
            "{}: [auth] passwd_file: cannot use {}: create it with `postie user add NAME --config {}`",
            config.path.display(),
            config.passwd_file.display(),
            config.path.display()
        )
    })?;
    let store = MaildirStore::new(config.maildir_template.clone());
    // LMTP and SMTP deliver into the store POP3 reads, for the same users.
    let intake = config
        .intake
        .is_enabled()
        .then(|| IntakeServer::new(config.intake, store.clone(), Arc::clone(&users)));
    let server = Pop3Server::new(config.pop3, store, Authenticator::new(users))?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(async move {
        let running = server.bind().await?;
        for (addr, tls) in running.local_addrs() {
            info!(%addr, kind = if tls { "pop3s (implicit TLS)" } else { "pop3 (STLS)" }, "listening");
        }
        let intake = match intake {
            Some(intake) => Some(intake.bind().await?),
            None => None,
        };
        if let Some(intake) = &intake {
            postie_intake::log_listeners(&intake.local_addrs());
        }
        if args.demo {
            demo::print_help(&running.local_addrs(), &args.demo_dir);
        }
        // One signal stops both: the POP3 side waits for it, the intake side for its echo.
        let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
        let intake_task = intake.map(|intake| {
            tokio::spawn(intake.serve(
                async move {
                    let _ = stop_rx.changed().await;
                },
                SHUTDOWN_GRACE,
            ))
        });
        let shutdown = async move {
            shutdown_signal().await;
            let _ = stop_tx.send(true);
        };
        running.serve(shutdown, SHUTDOWN_GRACE).await;
        if let Some(task) = intake_task {
            let _ = task.await;
        }
        Ok::<(), anyhow::Error>(())
    })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("POSTIE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Every connection is a descriptor, and every open maildrop briefly one or two more: the
/// usual soft limit of 1024 (or a hard limit set for interactive shells) would cap the
/// server far below its `max_connections`.
fn raise_open_file_limit() {
    const WANTED: libc::rlim_t = 1 << 20;
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit are given a valid rlimit struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return;
        }
        // Raising the hard limit needs privilege; without it, the soft limit goes up to the hard one.
        let raised = libc::rlimit { rlim_cur: WANTED.max(limit.rlim_cur), rlim_max: WANTED.max(limit.rlim_max) };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
    if let Ok(limits) = std::fs::read_to_string("/proc/self/limits") {
        if let Some(line) = limits.lines().find(|l| l.starts_with("Max open files")) {
            tracing::debug!("{line}");
        }
    }
}
