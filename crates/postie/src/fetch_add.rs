//! `postie fetch add ADDRESS`: discovers the account's POP3 server, asks for what is missing
//! (or takes it from flags), tests the login with `postie probe`'s code, and writes the
//! account into fetch.toml with its state started as new, so its first fetch just fetches.

use std::ffi::OsString;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use postie_fetch::account_file::{self, NewAccount, PasswordSetting};
use postie_fetch::config::{default_config_path, default_state_dir, resolve_path};
use postie_fetch::credentials::CredentialSource;
use postie_fetch::discover::{
    self, tls_name, DiscoverError, Found, LoginName, MailAddress, OAuth, ServerChoice,
};
use postie_fetch::oauth::{OAuthProvider, SignInSettings, TokenStore};
use postie_fetch::probe::{self, ProbeOptions, Report};
use postie_fetch::state::State;
use postie_fetch::tls::Trust;
use postie_fetch::{AuthChoice, PopUrl, Retention};
use postie_types::Secret;

#[derive(Debug, Args)]
#[command(after_long_help = "Every question has a flag, so that \
`postie fetch add alice@example.org --password-command \"pass mail\" --keep-days 14 --to maildir:~/Mail --yes` \
runs unattended. Exit status: 0 added (or shown, with --dry-run); 69 no POP3 server found or reachable; \
77 login refused; 78 usage, configuration, or a provider that needs OAuth sign-in and no \
--oauth-client-id.")]
pub struct FetchAddArgs {
    /// The mail address, as in alice@example.org.
    pub address: String,
    /// The accounts file to add to (default: ~/.config/postie/fetch.toml); created if missing.
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,
    /// The account's name in the file (default: the address's local part).
    #[arg(long)]
    pub name: Option<String>,
    /// A command printing the password (as for password_command).
    #[arg(long, conflicts_with = "password_env")]
    pub password_command: Option<String>,
    /// An environment variable holding the password.
    #[arg(long)]
    pub password_env: Option<String>,
    /// Leave mail on the server this many days after fetching it, then delete it (default 14).
    #[arg(long, conflicts_with_all = ["keep", "delete"], value_parser = clap::value_parser!(u32).range(1..))]
    pub keep_days: Option<u32>,
    /// Leave mail on the server for good.
    #[arg(long, conflicts_with = "delete")]
    pub keep: bool,
    /// Delete mail on the server once it is safely stored here.
    #[arg(long)]
    pub delete: bool,
    /// Where to deliver: maildir:PATH, mbox:PATH, mda:COMMAND, lmtp:HOST:PORT (default
    /// maildir:~/Mail).
    #[arg(long)]
    pub to: Option<String>,
    /// Accept the defaults and what discovery found without asking.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Show the account, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Only add the account; without this, its first fetch runs right after, as a mail
    /// client fetches a new account's mail.
    #[arg(long)]
    pub no_fetch: bool,
    /// For a provider that takes no passwords (or to prefer OAuth where it is optional): the
    /// id of the client registered at it (README, "OAuth sign-in"); the sign-in then runs
    /// here, and the account signs in with it from then on.
    #[arg(long)]
    pub oauth_client_id: Option<String>,
    /// Sign in on another device with a code shown here (the device grant), rather than in a
    /// browser on this machine.
    #[arg(long, requires = "oauth_client_id")]
    pub device: bool,
    /// Seconds to wait for each step of the login test.
    #[arg(long, default_value_t = 10)]
    pub timeout: u64,
}

const DEFAULT_KEEP_DAYS: u32 = 14;
const DEFAULT_DELIVER_TO: &str = "maildir:~/Mail";

/// A failure with its exit status.
struct Failure(u8, anyhow::Error);

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(error: E) -> Failure {
        Failure(78, error.into())
    }
}

pub fn run(args: FetchAddArgs) -> ExitCode {
    match add(&args) {
        Ok(Some(added)) if !args.no_fetch => first_fetch(&added),
        Ok(_) => ExitCode::SUCCESS,
        Err(Failure(code, error)) => {
            eprintln!("postie fetch add: {error:#}");
            ExitCode::from(code)
        }
    }
}

/// An account just written: its name and the file it is in.
struct Added {
    name: String,
    config: PathBuf,
}

/// `postie fetch --config FILE NAME`, in this process: from nothing to fetched mail in one
/// command. Its exit status is `fetch`'s.
fn first_fetch(added: &Added) -> ExitCode {
    #[derive(clap::Parser)]
    struct Fetch {
        #[command(flatten)]
        args: crate::fetch::FetchArgs,
    }
    eprintln!(
        "postie fetch add: fetching {} for the first time",
        added.name
    );
    let argv = [
        OsString::from("fetch"),
        OsString::from("--config"),
        added.config.clone().into_os_string(),
        OsString::from("--"),
        OsString::from(&added.name),
    ];
    match <Fetch as clap::Parser>::try_parse_from(argv) {
        Ok(fetch) => crate::fetch::run(fetch.args),
        Err(error) => {
            eprintln!("postie fetch add: cannot start the first fetch: {error}");
            ExitCode::from(78)
        }
    }
}

/// Asks `question` on the terminal; `None` when there is no terminal to ask on.
fn ask(question: &str) -> Result<Option<String>> {
    if !std::io::stdin().is_terminal() {
        return Ok(None);
    }
    eprint!("{question} ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(Some(line.trim().to_owned()))
}

/// Adds the account; `None` for a dry run, which writes nothing.
fn add(args: &FetchAddArgs) -> Result<Option<Added>, Failure> {
    let address = MailAddress::parse(&args.address)?;
    let full = address.full();
    let path = args.config.clone().unwrap_or_else(default_config_path);
    let existing = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(anyhow::anyhow!("cannot read {}: {e}", path.display()).into()),
    };
    let name = match &args.name {
        Some(name) => name.clone(),
        None => address
            .local
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect(),
    };

    eprintln!("postie fetch add: looking for the POP3 server of {full}");
    let found = discover::discover(&address, &mut |step| {
        eprintln!("  {}: {}", step.place, step.outcome);
    })
    .map_err(|e| {
        let code = match e {
            DiscoverError::NothingFound { .. } | DiscoverError::NoPop3 { .. } => 69,
            _ => 78,
        };
        Failure(code, e.into())
    })?;
    let Found {
        choice,
        source,
        caution,
    } = found;
    eprintln!(
        "postie fetch add: found POP3 at {} ({}) in {source}",
        choice.target,
        tls_name(choice.target.tls)
    );
    if let Some(note) = &choice.note {
        eprintln!("postie fetch add: note: {note}");
    }
    let sign_in = sign_in_settings(args, &choice)?;
    if let Some(caution) = &caution {
        eprintln!("postie fetch add: caution: {caution}");
        if !args.yes {
            match ask("Use this server? [y/N]")? {
                Some(answer) if answer.eq_ignore_ascii_case("y") || answer.eq_ignore_ascii_case("yes") => {}
                Some(_) => return Err(anyhow::anyhow!("not added: the server was not accepted").into()),
                None => return Err(anyhow::anyhow!("not added: confirm the server on a terminal, or run again with --yes to accept it").into()),
            }
        }
    }

    let (password, credential, grant) = match &sign_in {
        Some(settings) => {
            let grant =
                crate::fetch_login::sign_in(settings, &name, args.device, "postie fetch add")
                    .map_err(|e| Failure(e.exit_status().code(), e.into()))?;
            let token = Secret::new(grant.access_token.clone().into_bytes());
            (
                PasswordSetting::SignIn(settings.clone()),
                CredentialSource::Password(token),
                Some(grant),
            )
        }
        None => {
            let (password, credential) = password_source(args, &full)?;
            (password, credential, None)
        }
    };

    let retention = if args.keep {
        Retention::Keep
    } else if args.delete {
        Retention::Delete
    } else if let Some(days) = args.keep_days {
        Retention::KeepDays(days)
    } else if args.yes {
        Retention::KeepDays(DEFAULT_KEEP_DAYS)
    } else {
        match ask(&format!(
            "Days to leave mail on the server before deleting it (0: delete once fetched, \"forever\": never) [{DEFAULT_KEEP_DAYS}]:"
        ))?
        .as_deref()
        {
            None | Some("") => Retention::KeepDays(DEFAULT_KEEP_DAYS),
            Some("forever") => Retention::Keep,
            Some("0") => Retention::Delete,
            Some(days) => Retention::KeepDays(days.parse().with_context(|| {
                format!("{days:?} is not a number of days")
            })?),
        }
    };
    let deliver_to = match (&args.to, args.yes) {
        (Some(to), _) => to.clone(),
        (None, true) => DEFAULT_DELIVER_TO.into(),
        (None, false) => match ask(&format!("Deliver to [{DEFAULT_DELIVER_TO}]:"))?.as_deref() {
            None | Some("") => DEFAULT_DELIVER_TO.into(),
            Some(to) => to.to_owned(),
        },
    };
    let base = path.parent().unwrap_or(std::path::Path::new("."));
    postie_fetch::dest::DeliverTo::parse(&deliver_to, base)
        .map_err(|e| anyhow::anyhow!("--to {deliver_to}: {e}"))?;

    let candidates = match &choice.user {
        LoginName::Known(user) => vec![user.clone()],
        LoginName::AddressThenLocalPart => vec![full.clone(), address.local.clone()],
    };
    let mut logged_in = None;
    let mut last_report: Option<Report> = None;
    for user in candidates {
        eprintln!(
            "postie fetch add: testing the login as {user} at {}",
            choice.target
        );
        let options = ProbeOptions {
            url: PopUrl {
                target: choice.target.clone(),
                user: Some(user.clone()),
            },
            user: None,
            credential: credential.clone(),
            oauth: grant.is_some(),
            auth: AuthChoice::Auto,
            trust: Trust::System,
            timeout: Duration::from_secs(args.timeout.max(1)),
            now: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64),
        };
        let report = probe::run(&options);
        if report.verdict.ok {
            logged_in = Some(user);
            last_report = Some(report);
            break;
        }
        let refused = report.login.as_ref().is_some_and(|l| !l.ok);
        last_report = Some(report);
        if !refused {
            break;
        }
    }
    let Some(user) = logged_in else {
        let report = last_report.expect("at least one login was tested");
        eprint!("{report}");
        return Err(Failure(
            report.verdict.exit_code,
            anyhow::anyhow!(
                "the login test failed ({}); nothing was written",
                report.verdict.summary
            ),
        ));
    };
    if let Some(report) = &last_report {
        eprintln!("postie fetch add: {}", report.verdict.summary);
    }

    let account = NewAccount {
        name: name.clone(),
        target: choice.target.clone(),
        user,
        password,
        retention,
        deliver_to,
    };
    let text = account_file::with_account(&existing, &path, &account)?;
    print!("{}", account_file::table_text(&account));
    if args.dry_run {
        eprintln!("postie fetch add: dry run: {} not changed", path.display());
        return Ok(None);
    }
    account_file::write(&path, &text)?;
    let state_dir = account_file::state_dir(&text, &path).unwrap_or_else(default_state_dir);
    let state_dir = resolve_path(&state_dir.to_string_lossy(), base);
    // A new account's state starts empty but present: the lost-state guard of keep
    // accounts is for state that existed and went missing, not for the first fetch.
    let mut state = State::open(&state_dir, &name)?;
    if !state.existed() {
        state.compact(|_| true)?;
    }
    if let (Some(grant), Some(settings)) = (&grant, &sign_in) {
        TokenStore::for_sign_in(&state_dir, &name, settings)
            .save(grant, crate::fetch_login::unix_now())?;
    }
    eprintln!(
        "postie fetch add: added account {name} to {}; fetch with `postie fetch {name}`",
        path.display()
    );
    Ok(Some(Added { name, config: path }))
}

/// Where the password comes from: a flag, or typed on the terminal.
fn password_source(
    args: &FetchAddArgs,
    full: &str,
) -> Result<(PasswordSetting, CredentialSource), Failure> {
    Ok(match (&args.password_command, &args.password_env) {
        (Some(command), _) => (
            PasswordSetting::Command(command.clone()),
            CredentialSource::Command(command.clone()),
        ),
        (None, Some(var)) => (
            PasswordSetting::Env(var.clone()),
            CredentialSource::Env(var.clone()),
        ),
        (None, None) => {
            if !std::io::stdin().is_terminal() {
                return Err(anyhow::anyhow!("no password: give --password-command \"COMMAND\" or --password-env VAR, or run on a terminal to type it").into());
            }
            let typed = rpassword::prompt_password(format!("password for {full}: "))
                .context("cannot read the password")?;
            (
                PasswordSetting::Inline(typed.clone()),
                CredentialSource::Password(Secret::new(typed.into_bytes())),
            )
        }
    })
}

/// The sign-in to use instead of a password: when the provider requires OAuth, or offers it
/// and --oauth-client-id asks for it. `None`: a password login.
fn sign_in_settings(
    args: &FetchAddArgs,
    choice: &ServerChoice,
) -> Result<Option<SignInSettings>, Failure> {
    let host = &choice.target.host;
    match (choice.oauth, &choice.sign_in, &args.oauth_client_id) {
        (OAuth::Required, None, _) => Err(Failure(
            78,
            anyhow::anyhow!(
                "{host} takes no passwords: it requires OAuth sign-in, but postie does not know where its users sign in; add the account by hand with oauth_issuer and oauth_client_id (README, \"OAuth sign-in\"); nothing was written"
            ),
        )),
        (OAuth::Required, Some(provider), None) => Err(Failure(
            78,
            anyhow::anyhow!(
                "{host} takes no passwords: it requires OAuth sign-in, which needs the id of a client registered at {} (README, \"OAuth sign-in\", says how); run again with --oauth-client-id ID; nothing was written",
                provider_name(provider)
            ),
        )),
        (_, Some(provider), Some(client_id)) => Ok(Some(SignInSettings {
            provider: provider.clone(),
            client_id: client_id.clone(),
            client_secret_file: None,
            scopes: None,
            token_store_command: None,
        })),
        (_, None, Some(_)) => Err(Failure(
            78,
            anyhow::anyhow!("--oauth-client-id: {host} offers no OAuth sign-in postie knows of; leave the flag out to log in with a password"),
        )),
        (_, _, None) => Ok(None),
    }
}

fn provider_name(provider: &OAuthProvider) -> String {
    match provider {
        OAuthProvider::Google => "Google".into(),
        OAuthProvider::Microsoft => "Microsoft".into(),
        OAuthProvider::Issuer(issuer) => issuer.clone(),
    }
}
