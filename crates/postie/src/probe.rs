//! `postie probe`: runs the connection test and prints its report, as text or JSON.

use postie_types::Secret;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::Args;
use postie_fetch::config::default_config_path;
use postie_fetch::credentials::CredentialSource;
use postie_fetch::oauth::TokenStore;
use postie_fetch::probe::{self, ProbeOptions};
use postie_fetch::tls::{parse_fingerprint, Trust};
use postie_fetch::{AuthChoice, ExitStatus, FetchConfig, FetchError, PopUrl};

#[derive(Debug, Args)]
#[command(
    after_long_help = "Exit status: 0 when everything worked; otherwise as for postie fetch \
(69 server unavailable or certificate refused, 75 temporary, 76 protocol error, 77 login refused, 78 usage)."
)]
pub struct ProbeArgs {
    /// pop3s://[user@]host[:port] (implicit TLS, port 995), pop3://[user@]host[:port] (STLS),
    /// or the name of an account in fetch.toml, tested with its own password source, TLS
    /// settings and pin.
    pub url: String,
    /// The accounts file for an account name (default: ~/.config/postie/fetch.toml).
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,
    /// Log in as this user and show STAT (the password as for fetch, or a prompt).
    #[arg(long)]
    pub user: Option<String>,
    #[arg(long)]
    pub password_command: Option<String>,
    #[arg(long)]
    pub password_env: Option<String>,
    /// The login mechanism: auto, user, apop, plain, login or scram-sha-256.
    #[arg(long, default_value = "auto")]
    pub auth: String,
    /// Accept exactly the certificate with this fingerprint (sha256:…).
    #[arg(long)]
    pub fingerprint: Option<String>,
    /// Trust only the CAs in this PEM file.
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Seconds to wait for each step.
    #[arg(long, default_value_t = 10)]
    pub timeout: u64,
}

fn auth_choice(text: &str) -> Result<AuthChoice> {
    Ok(match text {
        "auto" => AuthChoice::Auto,
        "user" => AuthChoice::User,
        "apop" => AuthChoice::Apop,
        "plain" => AuthChoice::Plain,
        "login" => AuthChoice::Login,
        "scram-sha-256" => AuthChoice::ScramSha256,
        other => bail!("--auth {other}: expected auto, user, apop, plain, login or scram-sha-256"),
    })
}

/// Seconds since the epoch, for certificate validity.
fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The options for an account of fetch.toml: its server, user, secrets, TLS trust and pin.
fn account_options(args: &ProbeArgs) -> Result<ProbeOptions> {
    let path = args.config.clone().unwrap_or_else(default_config_path);
    let config = FetchConfig::load(&path)?;
    let names: Vec<&str> = config.accounts.iter().map(|a| a.name.as_str()).collect();
    let Some(account) = config.accounts.iter().find(|a| a.name == args.url) else {
        bail!(
            "{:?} is neither a pop3s:// or pop3:// URL nor an account of {} (accounts: {})",
            args.url,
            path.display(),
            names.join(", ")
        );
    };
    // A signed-in account logs in with its access token, renewed as a fetch would.
    let (credential, oauth) = match &account.sign_in {
        Some(settings) => {
            let store = TokenStore::for_sign_in(&config.state_dir, &account.name, settings);
            let token = postie_fetch::oauth::access_token(settings, &store, now() as u64)
                .map_err(FetchError::from)?;
            (CredentialSource::Password(token), true)
        }
        None => (account.credential.clone(), false),
    };
    Ok(ProbeOptions {
        url: PopUrl {
            target: account.target.clone(),
            user: Some(account.user.to_string()),
        },
        user: None,
        credential,
        oauth,
        auth: account.auth,
        trust: account.trust.clone(),
        timeout: Duration::from_secs(args.timeout.max(1)),
        now: now(),
    })
}

fn options(args: &ProbeArgs) -> Result<ProbeOptions> {
    if !args.url.contains("://") {
        return account_options(args);
    }
    let url = PopUrl::parse(&args.url)?;
    let logs_in = args.user.is_some() || url.user.is_some();
    let credential = match (&args.password_command, &args.password_env) {
        (Some(command), None) => CredentialSource::Command(command.clone()),
        (None, Some(var)) => CredentialSource::Env(var.clone()),
        (None, None) if logs_in => {
            let password = rpassword::prompt_password("password: ")?;
            CredentialSource::Password(Secret::new(password.into_bytes()))
        }
        (None, None) => CredentialSource::None,
        _ => bail!("give only one of --password-command and --password-env"),
    };
    let trust = match (&args.fingerprint, &args.ca_file) {
        (Some(pin), None) => Trust::Pinned(parse_fingerprint(pin).map_err(anyhow::Error::msg)?),
        (None, Some(file)) => Trust::CaFile(file.clone()),
        (None, None) => Trust::System,
        _ => bail!("give only one of --fingerprint and --ca-file"),
    };
    Ok(ProbeOptions {
        url,
        user: args.user.clone(),
        credential,
        oauth: false,
        auth: auth_choice(&args.auth)?,
        trust,
        timeout: Duration::from_secs(args.timeout.max(1)),
        now: now(),
    })
}

pub fn run(args: ProbeArgs) -> ExitCode {
    let options = match options(&args) {
        Ok(options) => options,
        Err(error) => {
            eprintln!("postie probe: {error:#}");
            let status = error
                .downcast_ref::<FetchError>()
                .map_or(ExitStatus::Config, FetchError::exit_status);
            return ExitCode::from(status.code());
        }
    };
    let report = probe::run(&options);
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(json) => println!("{json}"),
            Err(error) => eprintln!("postie probe: {error}"),
        }
    } else {
        print!("{report}");
    }
    ExitCode::from(report.verdict.exit_code)
}
