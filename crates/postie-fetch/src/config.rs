//! The accounts file (`~/.config/postie/fetch.toml`): parsed strictly (unknown keys are
//! refused by name), then validated into [`Account`]s that hold only consistent settings.

use postie_types::UserName;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::credentials::CredentialSource;
use crate::dest::DeliverTo;
use crate::error::FetchError;
use crate::hooks::Hooks;
use crate::oauth::{OAuthProvider, SignInSettings};
use crate::rules::{RawRule, Rule};
use crate::schedule::IntervalSetting;
use crate::target::{Target, TlsMode};
use crate::tls::Trust;

/// Login mechanism choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthChoice {
    /// Over TLS: PLAIN, else USER/PASS, else SCRAM-SHA-256. Without TLS (tls = "none"
    /// aside): SCRAM-SHA-256, else APOP. OAuth when only a token command is set.
    Auto,
    User,
    Apop,
    Plain,
    Login,
    #[serde(rename = "scram-sha-256")]
    ScramSha256,
    Xoauth2,
    Oauthbearer,
}

/// What happens to mail on the server once it is safely stored here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    Delete,
    Keep,
    /// Keep, then delete once fetched this many days ago.
    KeepDays(u32),
}

/// What to do with a message larger than `max_size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Oversize {
    /// Deliver only its header (TOP n 0); it stays on the server.
    Headers,
    /// Leave it on the server, untouched.
    Skip,
}

/// One account, validated.
#[derive(Debug, Clone)]
pub struct Account {
    pub name: String,
    pub target: Target,
    pub user: UserName,
    pub credential: CredentialSource,
    pub oauth_token_command: Option<String>,
    /// Built-in OAuth sign-in (`postie fetch login`), whose tokens the state folder keeps.
    pub sign_in: Option<SignInSettings>,
    pub auth: AuthChoice,
    pub retention: Retention,
    pub max_size: Option<u64>,
    pub oversize: Oversize,
    pub deliver_to: DeliverTo,
    /// The RCPT TO of an `lmtp:` destination: the user here, not the remote login.
    pub lmtp_recipient: String,
    pub trust: Trust,
    /// Send the SASL initial response on the AUTH line (false: wait for the server's empty
    /// challenge, the form some Microsoft 365 front ends need).
    pub sasl_initial_response: bool,
    pub timeout: Duration,
    /// How often the daemon polls it (`None`: the daemon's --interval).
    pub interval: Option<Duration>,
    pub hooks: Hooks,
    /// The account's `[[accounts.NAME.rules]]`, then the file's `[[rules]]`.
    pub rules: Vec<Rule>,
    /// Put `Received:` and `X-Postie-Account:` on top of each message delivered.
    pub received_header: bool,
    /// Log in again, up to this many sessions in one run, while each session brings only
    /// new mail (servers such as Gmail list a window of messages per session).
    pub max_sessions_per_run: u32,
    /// A kept message whose Maildir file is gone here is deleted on the server.
    pub delete_when_deleted_locally: bool,
}

/// The name of the user running postie fetch, what an LMTP server here delivers to by
/// default; `postmaster` where the system cannot say.
pub fn local_user_name() -> String {
    // SAFETY: getpwuid returns a pointer into static storage or NULL; its pw_name is a
    // NUL-terminated string, copied out at once, before any other call could reuse it.
    let name = unsafe {
        let entry = libc::getpwuid(libc::geteuid());
        if entry.is_null() || (*entry).pw_name.is_null() {
            None
        } else {
            Some(
                std::ffi::CStr::from_ptr((*entry).pw_name)
                    .to_string_lossy()
                    .into_owned(),
            )
        }
    };
    name.filter(|name| !name.is_empty())
        .unwrap_or_else(|| "postmaster".to_owned())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    /// Where per-account state lives (default: $XDG_STATE_HOME/postie/fetch).
    state_dir: Option<String>,
    #[serde(default)]
    accounts: BTreeMap<String, RawAccount>,
    /// Hooks of every account that has none of its own.
    on_new_mail: Option<String>,
    on_failure: Option<String>,
    on_recovery: Option<String>,
    daemon: Option<RawDaemon>,
    /// Rules of every account, tried after an account's own.
    #[serde(default)]
    rules: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDaemon {
    /// Where `--daemon` serves its status over HTTP (loopback only).
    status_listen: Option<SocketAddr>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccount {
    server: String,
    tls: Option<TlsMode>,
    user: String,
    password: Option<String>,
    password_command: Option<String>,
    password_env: Option<String>,
    oauth_token_command: Option<String>,
    oauth_provider: Option<String>,
    oauth_issuer: Option<String>,
    oauth_client_id: Option<String>,
    oauth_client_secret_file: Option<String>,
    oauth_scopes: Option<String>,
    oauth_token_store_command: Option<String>,
    #[serde(default = "auto")]
    auth: AuthChoice,
    #[serde(default)]
    keep: bool,
    delete_after_days: Option<u32>,
    max_size: Option<u64>,
    oversize: Option<Oversize>,
    deliver_to: String,
    lmtp_recipient: Option<String>,
    ca_file: Option<String>,
    fingerprint: Option<String>,
    #[serde(default)]
    insecure: bool,
    #[serde(default = "yes")]
    sasl_initial_response: bool,
    #[serde(default = "default_timeout")]
    timeout_secs: u64,
    interval: Option<IntervalSetting>,
    on_new_mail: Option<String>,
    on_failure: Option<String>,
    on_recovery: Option<String>,
    #[serde(default)]
    rules: Vec<RawRule>,
    #[serde(default)]
    received_header: bool,
    #[serde(default = "default_max_sessions")]
    max_sessions_per_run: u32,
    #[serde(default)]
    delete_when_deleted_locally: bool,
}

fn default_max_sessions() -> u32 {
    10
}
fn auto() -> AuthChoice {
    AuthChoice::Auto
}
fn yes() -> bool {
    true
}
fn default_timeout() -> u64 {
    60
}

/// The parsed file: accounts in name order, and the state folder.
#[derive(Debug)]
pub struct FetchConfig {
    pub path: PathBuf,
    pub state_dir: PathBuf,
    pub accounts: Vec<Account>,
    /// `[daemon] status_listen`.
    pub status_listen: Option<SocketAddr>,
}

impl FetchConfig {
    pub fn load(path: &Path) -> Result<FetchConfig, FetchError> {
        let config_error = |message: String| FetchError::Config {
            path: path.to_owned(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            config_error(format!(
                "cannot read it ({e}); create it with one [accounts.NAME] table per account (see `postie fetch --help`), or use the ad-hoc form `postie fetch pop3s://user@host --to maildir:~/Mail`"
            ))
        })?;
        let file: File = toml::from_str(&text).map_err(|e| config_error(e.to_string()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let every_account = Hooks {
            on_new_mail: file.on_new_mail,
            on_failure: file.on_failure,
            on_recovery: file.on_recovery,
        };
        let mut every_account_rules = Vec::new();
        for (index, raw) in file.rules.into_iter().enumerate() {
            every_account_rules.push(
                raw.validate(index + 1, base)
                    .map_err(|message| config_error(format!("[[rules]] {message}")))?,
            );
        }
        let mut accounts = Vec::new();
        for (name, raw) in file.accounts {
            let mut account = raw
                .validate(&name, base)
                .map_err(|message| config_error(format!("[accounts.{name}] {message}")))?;
            account.hooks = account.hooks.or(&every_account);
            account.rules.extend(every_account_rules.iter().cloned());
            accounts.push(account);
        }
        let state_dir = match file.state_dir {
            Some(dir) => resolve_path(&dir, base),
            None => default_state_dir(),
        };
        Ok(FetchConfig {
            path: path.to_owned(),
            state_dir,
            accounts,
            status_listen: file.daemon.and_then(|d| d.status_listen),
        })
    }
}

impl RawAccount {
    fn validate(self, name: &str, base: &Path) -> Result<Account, String> {
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b))
        {
            return Err("account names may hold only letters, digits and - _ . @".into());
        }
        let tls = self.tls.unwrap_or(TlsMode::Implicit);
        let target = Target::parse(&self.server, tls).map_err(|e| format!("server: {e}"))?;
        let user = UserName::parse(self.user.as_bytes()).map_err(|e| format!("user: {e}"))?;
        let sign_in = self.sign_in(base)?;
        let credential = CredentialSource::from_options(
            self.password,
            self.password_command,
            self.password_env,
        )?;
        if sign_in.is_some() && self.oauth_token_command.is_some() {
            return Err("set either oauth_token_command or the built-in sign-in (oauth_provider or oauth_issuer), not both".into());
        }
        let oauth = self.oauth_token_command.is_some() || sign_in.is_some();
        if matches!(credential, CredentialSource::None) && !oauth {
            return Err(
                "set one of password, password_command, password_env, oauth_provider, oauth_issuer or oauth_token_command".into(),
            );
        }
        if matches!(self.auth, AuthChoice::Xoauth2 | AuthChoice::Oauthbearer) && !oauth {
            return Err("auth = xoauth2/oauthbearer needs oauth_provider, oauth_issuer or oauth_token_command".into());
        }
        let retention = match (self.keep, self.delete_after_days) {
            (_, Some(0)) => return Err("delete_after_days must be at least 1".into()),
            (_, Some(days)) => Retention::KeepDays(days),
            (true, None) => Retention::Keep,
            (false, None) => Retention::Delete,
        };
        if self.max_sessions_per_run == 0 {
            return Err("max_sessions_per_run must be at least 1".into());
        }
        if self.oversize.is_some() && self.max_size.is_none() {
            return Err("oversize needs max_size".into());
        }
        let deliver_to =
            DeliverTo::parse(&self.deliver_to, base).map_err(|e| format!("deliver_to: {e}"))?;
        if self.delete_when_deleted_locally {
            if retention == Retention::Delete {
                return Err("delete_when_deleted_locally needs keep = true or delete_after_days: without either, every message is deleted on the server as soon as it is fetched".into());
            }
            if !matches!(
                deliver_to,
                DeliverTo::Maildir(_) | DeliverTo::MaildirFolder(_)
            ) {
                return Err(format!("delete_when_deleted_locally needs a maildir: or maildir++: deliver_to, where postie can look for the file it delivered; {deliver_to} is not one"));
            }
        }
        let interval = self.interval.map(|i| i.to_duration()).transpose()?;
        let mut rules = Vec::new();
        for (index, raw) in self.rules.into_iter().enumerate() {
            rules.push(raw.validate(index + 1, base)?);
        }
        let trust = Trust::from_options(
            self.ca_file.map(|f| resolve_path(&f, base)),
            self.fingerprint.as_deref(),
            self.insecure,
        )?;
        Ok(Account {
            name: name.to_owned(),
            target,
            user,
            credential,
            oauth_token_command: self.oauth_token_command,
            sign_in,
            auth: self.auth,
            retention,
            max_size: self.max_size,
            oversize: self.oversize.unwrap_or(Oversize::Headers),
            deliver_to,
            lmtp_recipient: self.lmtp_recipient.unwrap_or_else(local_user_name),
            trust,
            sasl_initial_response: self.sasl_initial_response,
            timeout: Duration::from_secs(self.timeout_secs.max(1)),
            interval,
            hooks: Hooks {
                on_new_mail: self.on_new_mail,
                on_failure: self.on_failure,
                on_recovery: self.on_recovery,
            },
            rules,
            received_header: self.received_header,
            max_sessions_per_run: self.max_sessions_per_run,
            delete_when_deleted_locally: self.delete_when_deleted_locally,
        })
    }
}

impl RawAccount {
    /// The built-in sign-in's keys, checked together.
    fn sign_in(&self, base: &Path) -> Result<Option<SignInSettings>, String> {
        let provider = match (&self.oauth_provider, &self.oauth_issuer) {
            (Some(_), Some(_)) => {
                return Err("set oauth_provider or oauth_issuer, not both".into());
            }
            (Some(name), None) => OAuthProvider::preset(name)?,
            (None, Some(issuer)) if issuer.starts_with("https://") => {
                OAuthProvider::Issuer(issuer.clone())
            }
            (None, Some(issuer)) => {
                return Err(format!(
                    "oauth_issuer = {issuer:?}: an issuer is an https:// URL"
                ))
            }
            (None, None) => {
                if self.oauth_client_id.is_some()
                    || self.oauth_client_secret_file.is_some()
                    || self.oauth_scopes.is_some()
                    || self.oauth_token_store_command.is_some()
                {
                    return Err("oauth_client_id, oauth_client_secret_file, oauth_scopes and oauth_token_store_command need oauth_provider or oauth_issuer".into());
                }
                return Ok(None);
            }
        };
        let Some(client_id) = self.oauth_client_id.clone().filter(|id| !id.is_empty()) else {
            return Err("the sign-in needs oauth_client_id: the id of a client registered at the provider (README: \"OAuth sign-in\")".into());
        };
        Ok(Some(SignInSettings {
            provider,
            client_id,
            client_secret_file: self
                .oauth_client_secret_file
                .as_deref()
                .map(|f| resolve_path(f, base)),
            scopes: self.oauth_scopes.clone(),
            token_store_command: self.oauth_token_store_command.clone(),
        }))
    }
}

/// `~/x` is relative to $HOME; other relative paths to the configuration file's folder.
pub fn resolve_path(path: &str, base: &Path) -> PathBuf {
    if let Some(rest) = path.strip_prefix("~/") {
        return home().join(rest);
    }
    let path = Path::new(path);
    if path.is_absolute() {
        path.to_owned()
    } else {
        base.join(path)
    }
}

fn home() -> PathBuf {
    std::env::var_os("HOME").map_or_else(|| PathBuf::from("/"), PathBuf::from)
}

/// `$XDG_CONFIG_HOME/postie/fetch.toml`, or `~/.config/postie/fetch.toml`.
pub fn default_config_path() -> PathBuf {
    std::env::var_os("XDG_CONFIG_HOME")
        .map_or_else(|| home().join(".config"), PathBuf::from)
        .join("postie")
        .join("fetch.toml")
}

/// `$XDG_STATE_HOME/postie/fetch`, or `~/.local/state/postie/fetch`.
pub fn default_state_dir() -> PathBuf {
    std::env::var_os("XDG_STATE_HOME")
        .map_or_else(|| home().join(".local").join("state"), PathBuf::from)
        .join("postie")
        .join("fetch")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<FetchConfig, FetchError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fetch.toml");
        std::fs::write(&path, text).unwrap();
        FetchConfig::load(&path)
    }

    #[test]
    fn a_full_account() {
        let config = load(
            "state_dir = \"state\"\n[accounts.work]\nserver = \"pop.example.org\"\nuser = \"alice\"\n\
             password_command = \"pass show mail\"\nkeep = true\ndelete_after_days = 14\n\
             max_size = 1000\noversize = \"skip\"\ndeliver_to = \"mbox:~/mbox\"\n\
             fingerprint = \"sha256:00112233445566778899AABBCCDDEEFF00112233445566778899aabbccddeeff\"\n",
        )
        .unwrap();
        let account = &config.accounts[0];
        assert_eq!(account.target.port, 995);
        assert_eq!(account.retention, Retention::KeepDays(14));
        assert_eq!(account.oversize, Oversize::Skip);
        assert!(matches!(account.trust, Trust::Pinned(_)));
        assert!(config.state_dir.ends_with("state"));
    }

    #[test]
    fn intervals_hooks_and_the_status_port() {
        let config = load(
            "on_new_mail = \"notify-send mail\"\non_failure = \"echo down\"\n\
             [daemon]\nstatus_listen = \"127.0.0.1:9733\"\n\
             [accounts.a]\nserver = \"h\"\nuser = \"u\"\npassword = \"p\"\ndeliver_to = \"maildir:/m\"\n\
             interval = \"5m\"\non_failure = \"echo a is down\"\n\
             [accounts.b]\nserver = \"h\"\nuser = \"u\"\npassword = \"p\"\ndeliver_to = \"maildir:/m\"\n\
             interval = 30\n\
             [accounts.c]\nserver = \"h\"\nuser = \"u\"\npassword = \"p\"\ndeliver_to = \"maildir:/m\"\n",
        )
        .unwrap();
        let [a, b, c] = &config.accounts[..] else {
            panic!("three accounts");
        };
        assert_eq!(a.interval, Some(Duration::from_secs(300)));
        assert_eq!(b.interval, Some(Duration::from_secs(30)));
        assert_eq!(c.interval, None);
        assert_eq!(a.hooks.on_new_mail.as_deref(), Some("notify-send mail"));
        assert_eq!(a.hooks.on_failure.as_deref(), Some("echo a is down"));
        assert_eq!(c.hooks.on_failure.as_deref(), Some("echo down"));
        assert_eq!(c.hooks.on_recovery, None);
        assert_eq!(
            config.status_listen,
            Some("127.0.0.1:9733".parse().unwrap())
        );
    }

    #[test]
    fn the_built_in_sign_in() {
        let config = load(
            "[accounts.a]\nserver = \"h\"\nuser = \"u\"\ndeliver_to = \"maildir:/m\"\n\
             oauth_provider = \"microsoft\"\noauth_client_id = \"id\"\n\
             [accounts.b]\nserver = \"h\"\nuser = \"u\"\ndeliver_to = \"maildir:/m\"\n\
             oauth_issuer = \"https://id.example.org\"\noauth_client_id = \"id\"\n\
             oauth_client_secret_file = \"secret\"\noauth_scopes = \"pop3\"\n",
        )
        .unwrap();
        let [a, b] = &config.accounts[..] else {
            panic!("two accounts");
        };
        let a = a.sign_in.as_ref().unwrap();
        assert_eq!(a.provider, OAuthProvider::Microsoft);
        assert_eq!(
            a.scopes(),
            "https://outlook.office.com/POP.AccessAsUser.All offline_access"
        );
        let b = b.sign_in.as_ref().unwrap();
        assert_eq!(
            b.provider,
            OAuthProvider::Issuer("https://id.example.org".into())
        );
        assert_eq!(b.scopes(), "pop3");
        assert!(b.client_secret_file.as_ref().unwrap().ends_with("secret"));

        let base = "[accounts.a]\nserver = \"h\"\nuser = \"u\"\ndeliver_to = \"maildir:/m\"\n";
        for (extra, expected) in [
            ("oauth_provider = \"google\"\n", "needs oauth_client_id"),
            ("oauth_provider = \"yahoo\"\noauth_client_id = \"i\"\n", "oauth_issuer"),
            ("oauth_issuer = \"http://id\"\noauth_client_id = \"i\"\n", "https://"),
            (
                "oauth_provider = \"google\"\noauth_client_id = \"i\"\noauth_token_command = \"t\"\n",
                "not both",
            ),
        ] {
            let error = load(&format!("{base}{extra}")).unwrap_err().to_string();
            assert!(error.contains(expected), "{extra}: {error}");
        }
    }

    #[test]
    fn mistakes_are_named() {
        let base = "[accounts.a]\nserver = \"h\"\nuser = \"u\"\npassword = \"p\"\ndeliver_to = \"maildir:/m\"\n";
        for (extra, expected) in [
            ("colour = 1\n", "unknown field `colour`"),
            ("tls = \"sometimes\"\n", "unknown variant"),
            (
                "insecure = true\nfingerprint = \"sha256:00\"\n",
                "fingerprint",
            ),
            ("password_env = \"X\"\n", "only one of"),
            ("delete_after_days = 0\n", "at least 1"),
        ] {
            let error = load(&format!("{base}{extra}")).unwrap_err().to_string();
            assert!(error.contains(expected), "{extra}: {error}");
        }
        let error = load(&format!("{base}oauth_client_id = \"x\"\n"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("need oauth_provider"), "{error}");
        let error = load(&format!("{base}interval = \"5 minutes\"\n"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("[accounts.a] interval"), "{error}");
        let error = load("[accounts.a]\nserver = \"h\"\nuser = \"u\"\npassword = \"p\"\ndeliver_to = \"pigeon:x\"\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("deliver_to"), "{error}");
    }
}
