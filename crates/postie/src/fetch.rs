//! `postie fetch`: the accounts file or an ad-hoc URL to accounts, accounts to runs of the
//! fetch engine, results to a summary and an exit status.

use postie_types::{Secret, UserName};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use postie_fetch::config::{default_config_path, default_state_dir, resolve_path};
use postie_fetch::credentials::CredentialSource;
use postie_fetch::dest::DeliverTo;
use postie_fetch::engine::{self, Action};
use postie_fetch::hooks::Hooks;
use postie_fetch::tls::Trust;
use postie_fetch::{
    daemon, poll, Account, AuthChoice, ExitStatus, FetchConfig, FetchError, Oversize, PopUrl,
    ProgressMode, Retention, RunOptions,
};

use crate::cli::LogFormat;
use crate::fetch_report::FetchReport;
use crate::fetch_status::StatusArgs;

pub const EXIT_CODES: &str = "Exit status (sysexits.h): 0 all fetched; 66 a state file is missing \
(see --reset-state); 69 server unavailable (DNS, connection, TLS, certificate); 74 writing mail or \
state locally failed; 75 temporary failure, run again (network cut, server busy, a message the \
server would not give or delete); 76 the server broke the protocol; 77 login refused (or an OAuth \
sign-in missing, refused or revoked: run `postie fetch login NAME`); 78 configuration error. With several accounts, the first failure's status.";

#[derive(Debug, Args)]
#[command(after_long_help = EXIT_CODES)]
pub struct FetchArgs {
    #[command(subcommand)]
    pub action: Option<FetchAction>,
    /// Account names from the configuration (default: all), or one pop3s://user@host[:port]
    /// or pop3://user@host[:port] (STLS) URL with --to.
    pub targets: Vec<String>,
    /// The accounts file (default: ~/.config/postie/fetch.toml).
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,
    /// Show what would be fetched and deleted; change nothing.
    #[arg(long, conflicts_with = "daemon")]
    pub list: bool,
    /// Show which rule takes the message in FILE (an .eml) and why, for each account (or
    /// those named); connects nowhere.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["daemon", "list"])]
    pub test_rules: Option<PathBuf>,
    /// Replace stubs (headers kept for messages over max_size) with the whole messages:
    /// `postie fetch --get NAME UIDL…` (UIDLs as --list shows them). Maildir only.
    #[arg(long, conflicts_with_all = ["daemon", "list", "test_rules"])]
    pub get: bool,
    /// Record every message on the server now as fetched, without downloading it, and leave
    /// it there: only mail that arrives from now on is fetched (needs UIDL).
    #[arg(long, conflicts_with_all = ["daemon", "list", "test_rules", "get"])]
    pub from_now_on: bool,
    /// Keep running, fetching every account every --interval seconds (or its own
    /// interval), backing off after failures; SIGUSR1 fetches at once, SIGHUP re-reads the
    /// configuration.
    #[arg(long)]
    pub daemon: bool,
    /// Seconds between fetches with --daemon, for accounts without their own interval.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub interval: u64,
    /// Start a new, empty state: download everything the server holds (asked for when the
    /// state file of a keep account is missing).
    #[arg(long)]
    pub reset_state: bool,
    /// No progress display, only the summary and errors.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Ad-hoc form: where to deliver (maildir:PATH, mbox:PATH, mda:COMMAND, lmtp:HOST:PORT).
    #[arg(long)]
    pub to: Option<String>,
    /// Ad-hoc form: leave the mail on the server.
    #[arg(long)]
    pub keep: bool,
    /// Ad-hoc form: a command printing the password.
    #[arg(long)]
    pub password_command: Option<String>,
    /// Ad-hoc form: an environment variable holding the password.
    #[arg(long)]
    pub password_env: Option<String>,
    /// Ad-hoc form: the login mechanism (auto, user, apop, plain, login, scram-sha-256).
    #[arg(long, default_value = "auto")]
    pub auth: String,
    /// Ad-hoc form: trust only this certificate (sha256:…).
    #[arg(long)]
    pub fingerprint: Option<String>,
    /// Ad-hoc form: trust only CAs in this PEM file.
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// Ad-hoc form: where the state lives (default: ~/.local/state/postie/fetch).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// The time, in seconds since the epoch, that delete_after_days counts from; for tests.
    #[arg(long, hide = true)]
    pub now: Option<u64>,
    /// Log format: text, or JSON lines as `postie serve --log-format json` writes them.
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

#[derive(Debug, Subcommand)]
pub enum FetchAction {
    /// Add an account from its mail address: find its POP3 server (autoconfig, the provider
    /// table, MX, SRV, guessing), test the login, write it into fetch.toml.
    Add(Box<crate::fetch_add::FetchAddArgs>),
    /// Show each account's last check, last success, messages and octets fetched (last run
    /// and in all), last error and next poll, as every run records them.
    Status(StatusArgs),
    /// Sign an account in at its OAuth provider (oauth_provider or oauth_issuer): in a
    /// browser, or with --device on another device; fetches then renew the tokens themselves.
    Login(crate::fetch_login::LoginArgs),
}

fn auth_choice(text: &str) -> Result<AuthChoice> {
    #[derive(serde::Deserialize)]
    struct Wrapper {
        auth: AuthChoice,
    }
    let parsed: Wrapper = toml::from_str(&format!("auth = {text:?}"))
        .with_context(|| format!("--auth {text}: expected auto, user, apop, plain, login, scram-sha-256, xoauth2 or oauthbearer"))?;
    Ok(parsed.auth)
}

/// The account of the ad-hoc form.
fn ad_hoc(args: &FetchArgs, url: &str) -> Result<(Account, PathBuf)> {
    let url = PopUrl::parse(url)?;
    let Some(to) = &args.to else {
        bail!("the URL form needs --to maildir:PATH (or mbox:, mda:, lmtp:)");
    };
    let user = url
        .user
        .clone()
        .context("the URL needs a user: pop3s://USER@host")?;
    let credential = match (&args.password_command, &args.password_env) {
        (Some(command), None) => CredentialSource::Command(command.clone()),
        (None, Some(var)) => CredentialSource::Env(var.clone()),
        (None, None) => {
            let password = rpassword::prompt_password(format!("password for {user}: ")).context(
                "no password: give --password-command or --password-env, or run on a terminal",
            )?;
            CredentialSource::Password(Secret::new(password.into_bytes()))
        }
        _ => bail!("give only one of --password-command and --password-env"),
    };
    let trust = match (&args.fingerprint, &args.ca_file) {
        (Some(pin), None) => {
            Trust::Pinned(postie_fetch::tls::parse_fingerprint(pin).map_err(anyhow::Error::msg)?)
        }
        (None, Some(file)) => Trust::CaFile(file.clone()),
        (None, None) => Trust::System,
        _ => bail!("give only one of --fingerprint and --ca-file"),
    };
    let name: String = format!("{user}@{}-{}", url.target.host, url.target.port)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let account = Account {
        name,
        user: UserName::parse(user.as_bytes())
            .map_err(|e| anyhow::anyhow!("user {user:?}: {e}"))?,
        target: url.target,
        credential,
        oauth_token_command: None,
        sign_in: None,
        auth: auth_choice(&args.auth)?,
        retention: if args.keep {
            Retention::Keep
        } else {
            Retention::Delete
        },
        max_size: None,
        oversize: Oversize::Headers,
        deliver_to: DeliverTo::parse(to, &std::env::current_dir()?).map_err(anyhow::Error::msg)?,
        lmtp_recipient: postie_fetch::config::local_user_name(),
        trust,
        sasl_initial_response: true,
        timeout: Duration::from_secs(60),
        interval: None,
        hooks: Hooks::default(),
        rules: Vec::new(),
        received_header: false,
        max_sessions_per_run: 10,
        delete_when_deleted_locally: false,
    };
    let state_dir = args.state_dir.clone().unwrap_or_else(default_state_dir);
    Ok((account, state_dir))
}

/// The accounts to fetch, the state folder, and `[daemon] status_listen`.
fn accounts(args: &FetchArgs) -> Result<(Vec<Account>, PathBuf, Option<SocketAddr>)> {
    if let Some(url) = args.targets.first().filter(|t| t.contains("://")) {
        if args.targets.len() > 1 {
            bail!("give one URL, or account names");
        }
        let (account, state_dir) = ad_hoc(args, url)?;
        return Ok((vec![account], state_dir, None));
    }
    if args.to.is_some() {
        bail!("--to is for the URL form: postie fetch pop3s://user@host --to maildir:~/Mail");
    }
    let path = args.config.clone().unwrap_or_else(default_config_path);
    let config = FetchConfig::load(&path)?;
    let state_dir = match &args.state_dir {
        Some(dir) => resolve_path(&dir.to_string_lossy(), &std::env::current_dir()?),
        None => config.state_dir.clone(),
    };
    let mut chosen = Vec::new();
    // With --get, the first name is the account and the rest UIDLs.
    let names = if args.get {
        &args.targets[..args.targets.len().min(1)]
    } else {
        &args.targets[..]
    };
    for name in names {
        let account = config
            .accounts
            .iter()
            .find(|a| &a.name == name)
            .with_context(|| {
                let names: Vec<&str> = config.accounts.iter().map(|a| a.name.as_str()).collect();
                format!(
                    "{}: no account {name:?} (accounts: {})",
                    path.display(),
                    names.join(", ")
                )
            })?;
        chosen.push(account.clone());
    }
    if args.targets.is_empty() {
        chosen = config.accounts;
    }
    if chosen.is_empty() {
        bail!(
            "{}: no accounts: add an [accounts.NAME] table",
            path.display()
        );
    }
    Ok((chosen, state_dir, config.status_listen))
}

fn now(args: &FetchArgs) -> u64 {
    args.now.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    })
}

pub fn run(args: FetchArgs) -> ExitCode {
    if let Some(FetchAction::Add(add)) = args.action {
        return crate::fetch_add::run(*add);
    }
    if matches!(args.log_format, LogFormat::Json) {
        crate::serve::init_logging(LogFormat::Json);
    }
    match run_inner(&args) {
        Ok(status) => ExitCode::from(status.code()),
        Err(error) => {
            match args.log_format {
                LogFormat::Text => eprintln!("postie fetch: {error:#}"),
                LogFormat::Json => tracing::error!("{error:#}"),
            }
            let status = error
                .downcast_ref::<FetchError>()
                .map_or(ExitStatus::Config, FetchError::exit_status);
            ExitCode::from(status.code())
        }
    }
}

fn run_inner(args: &FetchArgs) -> Result<ExitStatus> {
    if let Some(FetchAction::Status(status)) = &args.action {
        crate::fetch_status::run(status, args.config.as_ref())?;
        return Ok(ExitStatus::Ok);
    }
    if let Some(FetchAction::Login(login)) = &args.action {
        return crate::fetch_login::run(login, args.config.as_ref(), args.state_dir.as_deref());
    }
    let (accounts, state_dir, status_listen) = accounts(args)?;
    if args.get {
        let [account] = &accounts[..] else {
            bail!(
                "--get needs one account and the UIDLs of its stubs: postie fetch --get NAME UIDL…"
            );
        };
        let options = RunOptions {
            state_dir,
            now: now(args),
            reset_state: false,
            progress: ProgressMode::Quiet,
        };
        return crate::fetch_get::run(account, &options, &args.targets[1..]);
    }
    if args.from_now_on {
        let options = RunOptions {
            state_dir,
            now: now(args),
            reset_state: false,
            progress: ProgressMode::Quiet,
        };
        for account in &accounts {
            let recorded = postie_fetch::from_now_on::from_now_on(account, &options)?;
            eprintln!(
                "postie fetch: {}: {recorded} messages on the server recorded as fetched and left there; only new mail will be fetched",
                account.name
            );
        }
        return Ok(ExitStatus::Ok);
    }
    if let Some(file) = &args.test_rules {
        return crate::fetch_test_rules::run(file, &accounts);
    }
    // JSON logs take no progress display: its notes are not JSON.
    let progress = if args.quiet || matches!(args.log_format, LogFormat::Json) {
        ProgressMode::Quiet
    } else {
        ProgressMode::detect()
    };
    let options = RunOptions {
        state_dir,
        now: now(args),
        reset_state: args.reset_state,
        progress,
    };
    if args.list {
        return Ok(list(&accounts, &options));
    }
    let report = FetchReport {
        format: args.log_format,
    };
    if args.daemon {
        let interval = Duration::from_secs(args.interval);
        let setup = daemon::Setup {
            accounts,
            options: options.clone(),
            interval,
            status_listen,
        };
        let reload = || -> Result<daemon::Setup, String> {
            if args.targets.first().is_some_and(|t| t.contains("://")) {
                return Err("the URL form has no configuration file to re-read".into());
            }
            let (accounts, state_dir, status_listen) =
                self::accounts(args).map_err(|e| format!("{e:#}"))?;
            Ok(daemon::Setup {
                accounts,
                options: RunOptions {
                    state_dir,
                    ..options.clone()
                },
                interval,
                status_listen,
            })
        };
        match daemon::run(setup, &reload, args.now, Arc::new(report))? {}
    }
    Ok(poll::poll_all(&accounts, &options, &report))
}

/// An action as `--list` shows it.
fn describe(action: &Action) -> String {
    match action {
        Action::Fetch => "fetch".into(),
        Action::Headers => "headers only (over max_size)".into(),
        Action::Delete => "delete (fetched before)".into(),
        Action::Keep => "keep (fetched before)".into(),
        Action::SkipOversize => "skip (over max_size)".into(),
        Action::Left => "leave unread (rule)".into(),
        Action::DeleteUnread => "delete unread (rule)".into(),
        Action::Routed { to, headers_only } => {
            let what = if *headers_only {
                "headers only"
            } else {
                "fetch"
            };
            if to.is_empty() {
                format!("{what} and discard (rule)")
            } else {
                let places: Vec<String> = to.iter().map(ToString::to_string).collect();
                format!("{what} to {} (rule)", places.join(", "))
            }
        }
    }
}

fn list(accounts: &[Account], options: &RunOptions) -> ExitStatus {
    let mut status = ExitStatus::Ok;
    for account in accounts {
        println!(
            "account {} ({} as {}, to {})",
            account.name, account.target, account.user, account.deliver_to
        );
        for warning in engine::warnings(account) {
            println!("  warning: {warning}");
        }
        match engine::plan(account, options) {
            Ok(plan) => {
                if plan.state_exists {
                    println!("  state: {}", plan.state_path.display());
                } else {
                    println!(
                        "  state: MISSING ({}): {}",
                        plan.state_path.display(),
                        if account.retention == Retention::Delete {
                            "it will be created"
                        } else {
                            "fetching will ask for --reset-state before downloading everything"
                        }
                    );
                }
                if !plan.has_uidl {
                    println!("  the server has no UIDL");
                }
                if let Some(policy) = plan.policy.describe() {
                    println!("  the server announces {policy}");
                }
                for warning in plan.policy.warnings(account) {
                    println!("  warning: {warning}");
                }
                let count = |a: Action| plan.messages.iter().filter(|m| m.action == a).count();
                let bytes: u64 = plan
                    .messages
                    .iter()
                    .filter(|m| m.action == Action::Fetch)
                    .map(|m| m.size)
                    .sum();
                println!(
                    "  {} messages on the server: {} to fetch ({bytes} octets), {} headers only, {} to delete, {} kept, {} skipped (over max_size)",
                    plan.messages.len(),
                    count(Action::Fetch),
                    count(Action::Headers),
                    count(Action::Delete),
                    count(Action::Keep),
                    count(Action::SkipOversize)
                );
                let by_rules = plan
                    .messages
                    .iter()
                    .filter(|m| {
                        matches!(
                            m.action,
                            Action::Routed { .. } | Action::Left | Action::DeleteUnread
                        )
                    })
                    .count();
                if by_rules > 0 {
                    println!("  {by_rules} more decided by rules, as shown below");
                }
                for message in &plan.messages {
                    println!(
                        "  {:>6} {:>10} {:<40} {}",
                        message.msg.get(),
                        message.size,
                        message.key.as_deref().unwrap_or("-"),
                        describe(&message.action)
                    );
                    for reason in &message.because {
                        println!("{:>60}{reason}", "");
                    }
                }
            }
            Err(error) => {
                println!("  error: {error}");
                if status == ExitStatus::Ok {
                    status = error.exit_status();
                }
            }
        }
    }
    status
}
