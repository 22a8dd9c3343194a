//! `postie serve`: configuration to services to listeners, under systemd or not.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use postie_auth::Authenticator;
use postie_intake::{Inherited, IntakeServer, Listen};
use postie_proto::smtp::Role;
use postie_server::http::account::AccountPage;
use postie_server::http::HttpServer;
use postie_server::Pop3Server;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::account_backend::ConfiguredAccounts;
use crate::cli::{LogFormat, ServeArgs};
use crate::demo;
use crate::open_files::{cap_connections, raise_open_file_limit};
use crate::privileges::{self, Plan};
use crate::reload::{Fixed, Reloader};
use crate::systemd::{Activated, Notifier};
use postie::config::Config;

pub fn run(args: ServeArgs) -> Result<()> {
    init_logging(args.log_format);
    let open_files = raise_open_file_limit();
    let config_path = if args.demo {
        demo::prepare(&args.demo_dir)?
    } else {
        args.config.clone()
    };
    let mut config = Config::load(&config_path)?;
    postie_net::kernel_tls::set_wanted(config.kernel_tls);
    cap_connections(&mut config, open_files);
    // Read before the runtime starts threads: taking the sockets clears the environment.
    let mut activated = Activated::from_env()?;
    let notifier = Arc::new(Notifier::from_env());
    let store = crate::store::open(&config.store);
    let users = crate::user_db::open(&config, &store)?;
    // The demo binds loopback ports in a scratch folder: nothing there for root to guard.
    let plan = if args.demo {
        Plan::Stay
    } else {
        privileges::plan(config.user.as_deref(), args.allow_root, &config.path)?
    };
    if privileges::is_root() && matches!(plan, Plan::Stay) && !args.demo {
        warn!("running as root (--allow-root)");
    }
    // LMTP and SMTP deliver into the store POP3 reads, for the same users.
    let intake = config
        .intake
        .is_enabled()
        .then(|| IntakeServer::new(config.intake.clone(), store.clone(), Arc::clone(&users)));
    let sweeper = crate::store::sweeper(&store);
    let health_check = crate::store::health_check(&store);
    let login_records = crate::login_records::open(&store, &config.state_dir)?;
    let accounts = Arc::new(ConfiguredAccounts {
        auth: Arc::new(Authenticator::new(Arc::clone(&users))),
        store: store.clone(),
        state_dir: config.state_dir.clone(),
    });
    let server = Pop3Server::with_login_records(
        config.pop3.clone(),
        store,
        Authenticator::new(Arc::clone(&users)),
        login_records,
    )?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(async move {
        let running = server
            .bind_with(|addr, tls| activated.take_tcp(if tls { "pop3s" } else { "pop3" }, addr))
            .await?;
        for (addr, tls) in running.local_addrs() {
            info!(%addr, kind = if tls { "pop3s (implicit TLS)" } else { "pop3 (STLS)" }, "listening");
        }
        let intake = match intake {
            Some(intake) => Some(
                intake
                    .bind_with(|listen, role| take_intake(&mut activated, listen, role))
                    .await?,
            ),
            None => None,
        };
        if let Some(intake) = &intake {
            postie_intake::log_listeners(&intake.local_addrs());
        }
        let http = if config.http_listen.is_empty() {
            None
        } else {
            let mail = bound_ports(config.autoconfig.clone(), &running.local_addrs());
            let mut http = HttpServer::bind(
                &config.http_listen,
                |addr| activated.take_tcp("http", addr),
                Some(mail),
            )
            .await?;
            if let Some(check) = health_check {
                http = http.with_health_check(check);
            }
            http = http.with_account_page(AccountPage::new(
                accounts,
                running.login_brake(),
                running.recent_sessions(),
                config.http_trusted_proxies.clone(),
            ));
            for addr in http.local_addrs() {
                info!(%addr, kind = "http", "listening");
            }
            Some(http)
        };
        for socket in activated.leftovers() {
            warn!(%socket, "an inherited socket matches no configured listener: closing it; name its address in the configuration");
        }
        drop(activated);
        if let Plan::DropTo(user) = &plan {
            privileges::drop_to(user)?;
            info!(user = %user.name, uid = user.uid, gid = user.gid, "running as an unprivileged user");
        }
        if args.demo {
            let http_addrs = http.as_ref().map(HttpServer::local_addrs).unwrap_or_default();
            demo::print_help(&running.local_addrs(), &http_addrs, &args.demo_dir);
        }

        if let Some(sweeper) = sweeper {
            tokio::spawn(sweeper);
        }
        let reloader = Reloader {
            config_path: config.path.clone(),
            cert: config.cert.clone(),
            users,
            pop3: running.reloader(),
            fixed: Fixed::of(&config),
            open_files,
        };
        let mut hangup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
        let reload_notifier = Arc::clone(&notifier);
        tokio::spawn(async move {
            while hangup.recv().await.is_some() {
                reload_notifier.reloading();
                info!("SIGHUP: reloading");
                reloader.reload();
                reload_notifier.ready("serving");
            }
        });

        // One signal stops everything: the POP3 side waits for it, the others for its echo.
        let (stop_tx, stop_rx) = watch::channel(false);
        let grace = config.shutdown_grace;
        let intake_task = intake.map(|intake| {
            let mut stop = stop_rx.clone();
            tokio::spawn(intake.serve(
                async move {
                    let _ = stop.changed().await;
                },
                grace,
            ))
        });
        let http_task = http.map(|http| {
            let mut stop = stop_rx.clone();
            tokio::spawn(http.serve(async move {
                let _ = stop.changed().await;
            }))
        });
        notifier.ready("serving");
        let shutdown = async move {
            shutdown_signal().await;
            notifier.stopping();
            let _ = stop_tx.send(true);
        };
        running.serve(shutdown, grace).await;
        for task in [intake_task, http_task].into_iter().flatten() {
            let _ = task.await;
        }
        info!("stopped");
        Ok::<(), anyhow::Error>(())
    })
}

fn take_intake(activated: &mut Activated, listen: &Listen, role: Role) -> Option<Inherited> {
    let kind = match role {
        Role::Lmtp => "lmtp",
        Role::Smtp => "smtp",
    };
    match listen {
        Listen::Tcp(addr) => activated.take_tcp(kind, *addr).map(Inherited::Tcp),
        Listen::Unix(path) => activated.take_unix(kind, path).map(Inherited::Unix),
    }
}

/// Autoconfig tells clients the ports really bound where the configuration says 0.
fn bound_ports(
    mut mail: postie_server::http::MailSettings,
    bound: &[(SocketAddr, bool)],
) -> postie_server::http::MailSettings {
    let port_of = |tls: bool| bound.iter().find(|(_, t)| *t == tls).map(|(a, _)| a.port());
    if mail.pop3s_port == Some(0) {
        mail.pop3s_port = port_of(true);
    }
    if mail.pop3_port == Some(0) {
        mail.pop3_port = port_of(false);
    }
    mail
}

async fn shutdown_signal() {
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => info!("SIGTERM: stopping"),
        _ = tokio::signal::ctrl_c() => info!("interrupted: stopping"),
    }
}

pub(crate) fn init_logging(format: LogFormat) {
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
