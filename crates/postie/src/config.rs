//! The configuration file: TOML, every key known, relative paths taken from the file's folder.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use postie_intake::{parse_size, IntakeConfig, Listen};
use postie_net::ReloadableCert;
use postie_proto::proxy::ProxyNetworks;
use postie_proto::Expire;
use postie_server::http::{MailSettings, UsernameForm};
use postie_server::{BrakeSettings, Pop3Config};
use postie_store::DeletePolicy;
use postie_store::Quota;
use postie_types::limits::{DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_CONNECTIONS_PER_IP};
use serde::Deserialize;

use crate::hostname::system_hostname;

/// `state_dir`'s default, beside the configuration file.
const STATE_DIR: &str = "state";
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    hostname: Option<String>,
    /// The user `postie serve` runs as after binding its ports, when started as root.
    user: Option<String>,
    shutdown_grace_secs: Option<u64>,
    /// Where the server keeps what it learns (the known networks of the brute-force brake).
    state_dir: Option<PathBuf>,
    #[serde(default)]
    pop3: Pop3Section,
    tls: Option<TlsSection>,
    #[serde(default)]
    auth: AuthSection,
    #[serde(default)]
    mail: MailSection,
    #[serde(default)]
    lmtp: LmtpSection,
    #[serde(default)]
    smtp: SmtpSection,
    #[serde(default)]
    http: HttpSection,
    #[serde(default)]
    autoconfig: AutoconfigSection,
    postgres: Option<PostgresSection>,
    oauth: Option<crate::oauth::OAuthSection>,
}

/// `[postgres]`: the database of `[mail] store = "postgres"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PostgresSection {
    url: String,
    password_file: Option<PathBuf>,
    /// The CA that signed the database server's certificate: TLS, mandatory and verified.
    ca_file: Option<PathBuf>,
    #[serde(default = "default_pool_size")]
    pool_size: usize,
    /// How long an exclusive POP3 session's hold on a maildrop outlives its front end.
    #[serde(default = "default_lease_secs")]
    lease_secs: u64,
}

fn default_pool_size() -> usize {
    16
}

fn default_lease_secs() -> u64 {
    300
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Pop3Section {
    listen: Vec<String>,
    listen_tls: Vec<String>,
    allow_plaintext_auth: bool,
    apop: bool,
    lock_session: bool,
    deleted: Deleted,
    idle_timeout_secs: u64,
    login_timeout_secs: u64,
    tls_handshake_timeout_secs: u64,
    max_connections: usize,
    max_connections_per_ip: usize,
    login_delay_secs: Option<u32>,
    expire: Option<ExpireSetting>,
    proxy_from: Vec<String>,
}

impl Default for Pop3Section {
    fn default() -> Self {
        Pop3Section {
            listen: vec!["0.0.0.0:110".into()],
            listen_tls: vec!["0.0.0.0:995".into()],
            allow_plaintext_auth: false,
            apop: false,
            lock_session: false,
            deleted: Deleted::Expunge,
            idle_timeout_secs: 600,
            login_timeout_secs: 60,
            tls_handshake_timeout_secs: 30,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            login_delay_secs: None,
            expire: None,
            proxy_from: Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Deleted {
    #[default]
    Expunge,
    Trash,
    Hide,
}

/// `expire = "never"` or `expire = 30` (days), announced in CAPA as EXPIRE.
#[derive(Debug, Deserialize, Clone)]
#[serde(untagged)]
enum ExpireSetting {
    Days(u32),
    Word(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsSection {
    cert: PathBuf,
    key: PathBuf,
    /// Hand sessions to the kernel's TLS where it offers it (RETR by sendfile over TLS).
    #[serde(default = "kernel_tls_by_default")]
    kernel_tls: bool,
}

fn kernel_tls_by_default() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct AuthSection {
    users: String,
    passwd_file: PathBuf,
    failure_delay_secs: f64,
    ipv6_prefix: u8,
    trusted_networks: Vec<String>,
    spray_failures_per_minute: u32,
}

impl Default for AuthSection {
    fn default() -> Self {
        AuthSection {
            users: "passwd-file".to_owned(),
            passwd_file: PathBuf::from("users"),
            failure_delay_secs: 2.0,
            ipv6_prefix: 64,
            trusted_networks: Vec::new(),
            spray_failures_per_minute: 60,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct MailSection {
    store: String,
    maildir: String,
    quota_bytes: Size,
    quota_messages: u64,
    quota_full_tempfail: bool,
}

impl Default for MailSection {
    fn default() -> Self {
        MailSection {
            store: "maildir".into(),
            maildir: "/var/mail/{user}/Maildir".into(),
            quota_bytes: Size::Octets(0),
            quota_messages: 0,
            quota_full_tempfail: false,
        }
    }
}

/// A size in octets, or with Dovecot's units as a string (`"512M"`, `"1G"`).
#[derive(Debug, Deserialize, Clone)]
#[serde(untagged)]
enum Size {
    Octets(u64),
    Text(String),
}

/// 50 MiB, as the `[smtp]` example of the README.
const DEFAULT_MAX_MESSAGE_SIZE: u64 = 52_428_800;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct LmtpSection {
    listen: Vec<String>,
    max_message_size: Size,
    proxy_from: Vec<String>,
}

impl Default for LmtpSection {
    fn default() -> Self {
        LmtpSection {
            listen: Vec::new(),
            max_message_size: Size::Octets(DEFAULT_MAX_MESSAGE_SIZE),
            proxy_from: Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct SmtpSection {
    listen: Vec<String>,
    domains: Vec<String>,
    max_message_size: Size,
    proxy_from: Vec<String>,
}

impl Default for SmtpSection {
    fn default() -> Self {
        SmtpSection {
            listen: Vec::new(),
            domains: Vec::new(),
            max_message_size: Size::Octets(DEFAULT_MAX_MESSAGE_SIZE),
            proxy_from: Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct HttpSection {
    listen: Vec<String>,
    /// Reverse proxies (addresses or networks) whose X-Forwarded-Proto and X-Forwarded-For
    /// the account page believes.
    trusted_proxies: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct AutoconfigSection {
    host: Option<String>,
    domains: Option<Vec<String>>,
    username: Username,
    display_name: Option<String>,
    leave_on_server: bool,
    leave_on_server_days: u32,
    pop3s_port: Option<u16>,
    pop3_port: Option<u16>,
    smtp: Option<String>,
}

impl Default for AutoconfigSection {
    fn default() -> Self {
        AutoconfigSection {
            host: None,
            domains: None,
            username: Username::Localpart,
            display_name: None,
            leave_on_server: false,
            leave_on_server_days: 0,
            pop3s_port: None,
            pop3_port: None,
            smtp: None,
        }
    }
}

#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Username {
    Localpart,
    Address,
}

/// 30 seconds, as systemd's default stop timeout (90 s) leaves room for.
const DEFAULT_SHUTDOWN_GRACE: u64 = 30;

/// The configuration, checked and with paths resolved.
#[derive(Debug)]
pub struct Config {
    pub path: PathBuf,
    pub pop3: Pop3Config,
    /// The certificate and key files, resolved, whether or not they were loaded.
    pub tls_files: Option<(PathBuf, PathBuf)>,
    /// The loaded certificate, which SIGHUP reloads.
    pub cert: Option<Arc<ReloadableCert>>,
    /// `[tls] kernel_tls`: sessions go to the kernel's TLS where it offers it (read at start).
    pub kernel_tls: bool,
    pub user: Option<String>,
    pub shutdown_grace: Duration,
    pub http_listen: Vec<SocketAddr>,
    /// `[http] trusted_proxies`: the reverse proxies the account page believes about HTTPS.
    pub http_trusted_proxies: ProxyNetworks,
    /// What autoconfig and Autodiscover answer; ports still 0 take the bound ones.
    pub autoconfig: MailSettings,
    pub passwd_file: PathBuf,
    /// `state_dir`, resolved: where the server keeps its known networks.
    pub state_dir: PathBuf,
    /// Where the users are (`[auth] users`); opened by `crate::user_source` in the binary.
    pub users: UserSource,
    /// Where mail is kept (`[mail] store`); opened by `crate::store` in the binary.
    pub store: StoreConfig,
    /// `[mail] maildir`, resolved: where the Maildir store keeps each user's mail, and where
    /// `postie store import-maildir --all` finds it.
    pub maildir_template: String,
    /// LMTP and SMTP listeners, and the delivery policy `postie deliver` shares.
    pub intake: IntakeConfig,
}

/// Where the users are, as `[auth] users` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserSource {
    /// The passwd-file `[auth] passwd_file` names.
    PasswdFile,
    /// The `users` table of the mail's database (`[mail] store = "postgres"`).
    Postgres,
}

/// What `postie user` edits.
#[derive(Debug)]
pub enum UserEditing {
    /// The passwd-file, and the server's state folder where app passwords' last uses are
    /// (unknown when only the passwd-file was named).
    PasswdFile {
        passwd_file: PathBuf,
        state_dir: Option<PathBuf>,
    },
    /// The database of a `[mail] store = "postgres"` configuration.
    Postgres(StoreConfig),
}

/// The store `[mail] store` names, with its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// One Maildir per user, at `template` with `{user}` replaced.
    Maildir { template: String },
    /// PostgreSQL, shared by any number of front ends. `database` holds the password read
    /// from `password_file`, if any; its `Debug` does not show it.
    Postgres {
        database: Box<postie_store_pg::Config>,
        pool_size: usize,
        /// How long a `lock_session` lease lasts without renewal: after a front end dies,
        /// its users' maildrops are free again this long after its last renewal.
        lease: Duration,
        /// TLS to the database (`[postgres] ca_file`); None: plain connections.
        tls: Option<DatabaseTls>,
    },
}

/// `[postgres] ca_file`: every connection uses TLS, verified against this CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseTls {
    /// Where the CA was read from, for messages.
    pub ca_file: PathBuf,
    pub trust: postie_store_pg::DbTls,
}

impl Config {
    /// Reads and checks the file; every error names the file, the key and what to do.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "cannot read the configuration file {}: create it, or name another with --config",
                path.display()
            )
        })?;
        Self::parse(path, &text)
    }

    /// For `postie deliver`, SIGHUP and `postie check-config`: everything but the TLS
    /// certificate, which a delivery agent never uses and may not be allowed to read, and
    /// which the others check on their own.
    pub fn load_without_tls(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "cannot read the configuration file {}: name it with --config",
                path.display()
            )
        })?;
        Self::parse_with(path, &text, false)
    }

    /// Where `postie user` edits the users: the passwd-file's location, or with `[auth]
    /// users = "postgres"` the database. Needs no certificate.
    pub fn user_editing(path: &Path) -> Result<UserEditing> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "cannot read the configuration file {}: name it with --config, or the passwd-file with --passwd-file",
                path.display()
            )
        })?;
        let file: File = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.message()))?;
        if user_source(&file.auth.users, &path.display().to_string())? == UserSource::PasswdFile {
            let base = base_dir(path);
            return Ok(UserEditing::PasswdFile {
                passwd_file: base.join(file.auth.passwd_file),
                state_dir: Some(
                    base.join(file.state_dir.as_deref().unwrap_or(Path::new(STATE_DIR))),
                ),
            });
        }
        let config = Self::parse_with(path, &text, false)?;
        Ok(UserEditing::Postgres(config.store))
    }

    pub fn parse(path: &Path, text: &str) -> Result<Config> {
        Self::parse_with(path, text, true)
    }

    /// Everything [`Config::parse`] checks but the TLS files: for the fuzz targets, which
    /// must not read whatever file an input names.
    #[doc(hidden)]
    pub fn parse_without_tls(path: &Path, text: &str) -> Result<Config> {
        Self::parse_reading(path, text, false, false)
    }

    fn parse_with(path: &Path, text: &str, load_tls: bool) -> Result<Config> {
        Self::parse_reading(path, text, load_tls, true)
    }

    /// `read_files` false reads no file the text names (the fuzz targets' case).
    fn parse_reading(path: &Path, text: &str, load_tls: bool, read_files: bool) -> Result<Config> {
        let file: File = toml::from_str(text).map_err(|error| {
            let at = error
                .span()
                .map(|span| line_of(text, span.start))
                .map(|l| format!(" (line {l})"))
                .unwrap_or_default();
            anyhow::anyhow!("{}{at}: {}", path.display(), error.message().trim_end())
        })?;
        let base = base_dir(path);
        let file_name = path.display();
        let mut pop3 = Pop3Config::new(file.hostname.clone().unwrap_or_else(system_hostname));
        let section = file.pop3;
        pop3.listen = addresses(&section.listen, &format!("{file_name}: [pop3] listen"))?;
        pop3.listen_tls = addresses(
            &section.listen_tls,
            &format!("{file_name}: [pop3] listen_tls"),
        )?;
        let tls_files = file
            .tls
            .as_ref()
            .map(|tls| (base.join(&tls.cert), base.join(&tls.key)));
        let mut cert = None;
        match (&file.tls, &tls_files) {
            (Some(_), _) if !load_tls => {}
            (Some(tls), Some((cert_path, key_path))) => {
                let loaded = ReloadableCert::load(cert_path, key_path).with_context(|| {
                    format!("{file_name}: [tls] cert = {:?}, key = {:?}: fix the paths or the files (PEM)", tls.cert, tls.key)
                })?;
                pop3.tls = Some(loaded.server_config()?);
                cert = Some(loaded);
            }
            (None, _) if !pop3.listen_tls.is_empty() && !section_lists_tls_explicitly(text) => {
                // Defaults name port 995; without a certificate there is nothing to serve on it.
                pop3.listen_tls.clear();
            }
            (None, _) if !pop3.listen_tls.is_empty() => {
                bail!("{file_name}: [pop3] listen_tls needs a [tls] section with cert and key, or remove listen_tls")
            }
            _ => {}
        }
        pop3.proxy_from = proxy_networks(
            &section.proxy_from,
            &format!("{file_name}: [pop3] proxy_from"),
        )?;
        pop3.allow_plaintext_auth = section.allow_plaintext_auth;
        pop3.apop = section.apop;
        pop3.lock_session = section.lock_session;
        pop3.deleted = match section.deleted {
            Deleted::Expunge => DeletePolicy::Expunge,
            Deleted::Trash => DeletePolicy::Trash,
            Deleted::Hide => DeletePolicy::Hide,
        };
        if section.idle_timeout_secs == 0
            || section.login_timeout_secs == 0
            || section.tls_handshake_timeout_secs == 0
        {
            bail!("{file_name}: [pop3] timeouts must be at least 1 second");
        }
        pop3.idle_timeout = Duration::from_secs(section.idle_timeout_secs);
        pop3.login_timeout = Duration::from_secs(section.login_timeout_secs);
        pop3.tls_handshake_timeout = Duration::from_secs(section.tls_handshake_timeout_secs);
        if section.max_connections == 0 || section.max_connections_per_ip == 0 {
            bail!(
                "{file_name}: [pop3] max_connections and max_connections_per_ip must be at least 1"
            );
        }
        pop3.max_connections = section.max_connections;
        pop3.max_connections_per_ip = section.max_connections_per_ip;
        pop3.login_delay = section
            .login_delay_secs
            .map(|s| Duration::from_secs(s.into()));
        pop3.expire = match section.expire {
            None => None,
            Some(ExpireSetting::Days(days)) => Some(Expire::Days(days)),
            Some(ExpireSetting::Word(word)) if word.eq_ignore_ascii_case("never") => {
                Some(Expire::Never)
            }
            Some(ExpireSetting::Word(word)) => {
                bail!("{file_name}: [pop3] expire = {word:?}: use \"never\" or a number of days")
            }
        };
        pop3.failure_delay = brake_base(file.auth.failure_delay_secs, &file_name.to_string())?;
        pop3.brake = brake_settings(&file.auth, &file_name.to_string())?;
        if let Some(oauth) = &file.oauth {
            pop3.bearer_tokens =
                crate::oauth::bearer_tokens(oauth, &base, &file_name.to_string(), read_files)?;
        }
        if pop3.listen.is_empty() && pop3.listen_tls.is_empty() {
            bail!("{file_name}: [pop3] listen and listen_tls are both empty: name at least one address");
        }

        let store = match file.mail.store.as_str() {
            "maildir" => None,
            "postgres" => Some(postgres_config(file.postgres.as_ref(), &base, &file_name.to_string())?),
            other => bail!(
                "{file_name}: [mail] store = {other:?} is not a store postie has: use \"maildir\" or \"postgres\""
            ),
        };
        let users = user_source(&file.auth.users, &file_name.to_string())?;
        if users == UserSource::Postgres && store.is_none() {
            bail!("{file_name}: [auth] users = \"postgres\" keeps the users in the mail's database: set [mail] store = \"postgres\" and its [postgres] section too");
        }
        let template = &file.mail.maildir;
        if !template.contains("{user}") {
            bail!("{file_name}: [mail] maildir = {template:?} lacks {{user}}: every user would share one maildrop");
        }
        let maildir_template = if Path::new(template).is_absolute() {
            template.clone()
        } else {
            base.join(template).to_string_lossy().into_owned()
        };
        let intake = intake_config(
            &file.lmtp,
            &file.smtp,
            &file.mail,
            &pop3,
            &base,
            &file_name.to_string(),
        )?;
        let http_listen = addresses(&file.http.listen, &format!("{file_name}: [http] listen"))?;
        let http_trusted_proxies = proxy_networks(
            &file.http.trusted_proxies,
            &format!("{file_name}: [http] trusted_proxies"),
        )?;
        let autoconfig = mail_settings(
            &file.autoconfig,
            &file.smtp,
            &pop3,
            file.tls.is_some(),
            &format!("{file_name}: [autoconfig]"),
        )?;
        let shutdown_grace =
            Duration::from_secs(file.shutdown_grace_secs.unwrap_or(DEFAULT_SHUTDOWN_GRACE));
        if let Some(user) = &file.user {
            if user.is_empty() || user.contains(['/', ':', ' ']) {
                bail!("{file_name}: user = {user:?} is not a user name: name the system user postie runs as, such as \"postie\"");
            }
        }
        Ok(Config {
            path: path.to_owned(),
            kernel_tls: file.tls.as_ref().is_none_or(|tls| tls.kernel_tls),
            tls_files,
            cert,
            user: file.user,
            shutdown_grace,
            http_listen,
            http_trusted_proxies,
            autoconfig,
            pop3,
            passwd_file: base.join(file.auth.passwd_file),
            state_dir: base.join(file.state_dir.as_deref().unwrap_or(Path::new(STATE_DIR))),
            users,
            store: store.unwrap_or(StoreConfig::Maildir {
                template: maildir_template.clone(),
            }),
            maildir_template,
            intake,
        })
    }
}

fn user_source(name: &str, file_name: &str) -> Result<UserSource> {
    match name {
        "passwd-file" => Ok(UserSource::PasswdFile),
        "postgres" => Ok(UserSource::Postgres),
        other => bail!("{file_name}: [auth] users = {other:?} is not a user database postie has: use \"passwd-file\" or \"postgres\""),
    }
}

/// `[postgres]`, for `[mail] store = "postgres"`: the URL (libpq's forms, several hosts and
/// `target_session_attrs` included), the password from its own file (never in a log), the pool.
fn postgres_config(
    section: Option<&PostgresSection>,
    base: &Path,
    file_name: &str,
) -> Result<StoreConfig> {
    let Some(section) = section else {
        bail!("{file_name}: [mail] store = \"postgres\" needs a [postgres] section with url = \"postgresql://USER@HOST/DATABASE\"");
    };
    let mut database: postie_store_pg::Config = section.url.parse().map_err(|error| {
        anyhow::anyhow!("{file_name}: [postgres] url is not a PostgreSQL connection string ({error}): write it as postgresql://USER@HOST:PORT/DATABASE")
    })?;
    if let Some(path) = &section.password_file {
        let path = base.join(path);
        let text = std::fs::read(&path).with_context(|| {
            format!(
                "{file_name}: [postgres] password_file: cannot read {}",
                path.display()
            )
        })?;
        let password = text.strip_suffix(b"\n").unwrap_or(&text);
        let password = password.strip_suffix(b"\r").unwrap_or(password);
        database.password(password);
    }
    let tls = match &section.ca_file {
        Some(path) => Some(database_tls(&base.join(path), &database, file_name)?),
        None => None,
    };
    if section.pool_size == 0 {
        bail!("{file_name}: [postgres] pool_size = 0: a front end needs at least one connection");
    }
    if section.lease_secs == 0 {
        bail!("{file_name}: [postgres] lease_secs = 0: a session's hold on its maildrop must last at least a second (300 is the default)");
    }
    Ok(StoreConfig::Postgres {
        database: Box::new(database),
        pool_size: section.pool_size,
        lease: Duration::from_secs(section.lease_secs),
        tls,
    })
}

/// `[postgres] ca_file`, read and checked now, so that a missing or wrong file stops the
/// configuration rather than every connection later.
fn database_tls(
    ca_file: &Path,
    database: &postie_store_pg::Config,
    file_name: &str,
) -> Result<DatabaseTls> {
    let ca = ca_file.display();
    if database.get_ssl_mode() == postie_store_pg::SslMode::Disable {
        bail!("{file_name}: [postgres] ca_file = {ca:?} asks for TLS, but the url says sslmode=disable: remove one of them");
    }
    let pem = std::fs::read(ca_file).with_context(|| {
        format!("{file_name}: [postgres] ca_file: cannot read {ca}: put the PEM certificate of the CA that signed the database server's certificate there (readable by the user serve runs as), or remove ca_file to connect without TLS")
    })?;
    let trust = postie_store_pg::DbTls::from_pem(&pem).map_err(|error| {
        anyhow::anyhow!("{file_name}: [postgres] ca_file {ca}: {error}: it must hold the PEM certificate (-----BEGIN CERTIFICATE-----) of the CA that signed the database server's certificate")
    })?;
    Ok(DatabaseTls {
        ca_file: ca_file.to_path_buf(),
        trust,
    })
}

/// The `[lmtp]`, `[smtp]` and quota keys of `[mail]`.
fn intake_config(
    lmtp: &LmtpSection,
    smtp: &SmtpSection,
    mail: &MailSection,
    pop3: &Pop3Config,
    base: &Path,
    file_name: &str,
) -> Result<IntakeConfig> {
    let mut intake = IntakeConfig::new(pop3.hostname.clone());
    intake.tls = pop3.tls.clone();
    intake.lmtp_listen = lmtp
        .listen
        .iter()
        .map(|text| match text.strip_prefix("unix:") {
            Some(socket) if !socket.is_empty() => Ok(Listen::Unix(base.join(socket))),
            _ => text.parse().map(Listen::Tcp).with_context(|| {
                format!("{file_name}: [lmtp] listen: {text:?} is not an address with a port or a socket, such as \"127.0.0.1:24\" or \"unix:/run/postie/lmtp.sock\"")
            }),
        })
        .collect::<Result<_>>()?;
    intake.smtp_listen = addresses(&smtp.listen, &format!("{file_name}: [smtp] listen"))?;
    intake.lmtp_max_message_size = message_size(
        &lmtp.max_message_size,
        &format!("{file_name}: [lmtp] max_message_size"),
    )?;
    intake.smtp_max_message_size = message_size(
        &smtp.max_message_size,
        &format!("{file_name}: [smtp] max_message_size"),
    )?;
    for domain in &smtp.domains {
        if domain.is_empty() || domain.contains(['@', ' ', '<', '>']) {
            bail!("{file_name}: [smtp] domains: {domain:?} is not a domain name such as \"example.org\"");
        }
    }
    if !intake.smtp_listen.is_empty() && smtp.domains.is_empty() {
        bail!("{file_name}: [smtp] domains is empty, so SMTP would refuse every recipient: name the local domains, such as domains = [\"example.org\"]");
    }
    intake.policy.domains = smtp
        .domains
        .iter()
        .map(|d| d.to_ascii_lowercase())
        .collect();
    intake.policy.quota = Quota {
        bytes: size(
            &mail.quota_bytes,
            &format!("{file_name}: [mail] quota_bytes"),
        )?,
        messages: mail.quota_messages,
    };
    intake.policy.quota_tempfail = mail.quota_full_tempfail;
    intake.lmtp_proxy_from =
        proxy_networks(&lmtp.proxy_from, &format!("{file_name}: [lmtp] proxy_from"))?;
    intake.smtp_proxy_from =
        proxy_networks(&smtp.proxy_from, &format!("{file_name}: [smtp] proxy_from"))?;
    Ok(intake)
}

/// `[auth] failure_delay_secs`: fractions allowed (tests run on milliseconds), a minute at
/// most (the delay doubles from there, and mail clients give up after a minute).
fn brake_base(secs: f64, file_name: &str) -> Result<Duration> {
    if !(0.0..=60.0).contains(&secs) {
        bail!("{file_name}: [auth] failure_delay_secs = {secs}: use a number of seconds from 0 to 60, such as 2");
    }
    Ok(Duration::from_secs_f64(secs))
}

/// `[auth]`'s `ipv6_prefix`, `trusted_networks` and `spray_failures_per_minute`.
fn brake_settings(auth: &AuthSection, file_name: &str) -> Result<BrakeSettings> {
    if !(1..=128).contains(&auth.ipv6_prefix) {
        bail!("{file_name}: [auth] ipv6_prefix = {}: use a prefix length from 1 to 128, such as 64 (what one subscriber gets)", auth.ipv6_prefix);
    }
    if auth.spray_failures_per_minute == 0 {
        bail!("{file_name}: [auth] spray_failures_per_minute = 0: use at least 1, such as 60");
    }
    let trusted_networks = ProxyNetworks::parse(&auth.trusted_networks).with_context(|| {
        format!("{file_name}: [auth] trusted_networks: name the networks never delayed for others' failures, such as [\"10.0.0.0/8\"]")
    })?;
    Ok(BrakeSettings {
        ipv6_prefix: auth.ipv6_prefix,
        trusted_networks,
        spray_failures_per_minute: auth.spray_failures_per_minute,
    })
}

fn proxy_networks(list: &[String], what: &str) -> Result<ProxyNetworks> {
    ProxyNetworks::parse(list).with_context(|| {
        format!("{what}: name the load balancers' networks, such as [\"10.0.0.0/8\"]")
    })
}

/// The `[autoconfig]` section: what mail clients are told. Ports left unset come from the
/// listeners (0 until they are bound).
fn mail_settings(
    section: &AutoconfigSection,
    smtp: &SmtpSection,
    pop3: &Pop3Config,
    tls: bool,
    what: &str,
) -> Result<MailSettings> {
    let host = section
        .host
        .clone()
        .unwrap_or_else(|| pop3.hostname.clone());
    let smtp_server = match &section.smtp {
        None => None,
        Some(text) => {
            let parsed = text
                .rsplit_once(':')
                .and_then(|(host, port)| Some((host.to_owned(), port.parse::<u16>().ok()?)))
                .filter(|(host, port)| !host.is_empty() && *port != 0);
            match parsed {
                Some(server) => Some(server),
                None => bail!("{what} smtp = {text:?}: name the submission server with its port, such as \"smtp.example.org:587\""),
            }
        }
    };
    Ok(MailSettings {
        display_name: section.display_name.clone().unwrap_or_else(|| host.clone()),
        host,
        pop3s_port: section
            .pop3s_port
            .or_else(|| pop3.listen_tls.first().map(SocketAddr::port)),
        pop3_port: section
            .pop3_port
            .or_else(|| pop3.listen.first().map(SocketAddr::port)),
        starttls: tls,
        username: match section.username {
            Username::Localpart => UsernameForm::LocalPart,
            Username::Address => UsernameForm::Address,
        },
        domains: section
            .domains
            .clone()
            .unwrap_or_else(|| smtp.domains.clone())
            .iter()
            .map(|d| d.to_ascii_lowercase())
            .collect(),
        leave_on_server: section.leave_on_server,
        leave_on_server_days: (section.leave_on_server_days > 0)
            .then_some(section.leave_on_server_days),
        smtp: smtp_server,
    })
}

fn size(value: &Size, what: &str) -> Result<u64> {
    match value {
        Size::Octets(n) => Ok(*n),
        Size::Text(text) => parse_size(text).with_context(|| {
            format!("{what} = {text:?}: use a number of octets, or one with a unit such as \"512M\" or \"1G\"")
        }),
    }
}

fn message_size(value: &Size, what: &str) -> Result<u64> {
    match size(value, what)? {
        0 => bail!("{what} = 0: the limit must be at least 1 octet (52428800 is 50 MiB)"),
        n => Ok(n),
    }
}

fn base_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    }
}

fn section_lists_tls_explicitly(text: &str) -> bool {
    text.lines()
        .any(|line| line.trim_start().starts_with("listen_tls"))
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn addresses(list: &[String], what: &str) -> Result<Vec<SocketAddr>> {
    list.iter()
        .map(|text| {
            text.parse::<SocketAddr>().with_context(|| {
                format!("{what}: {text:?} is not an address with a port, such as \"0.0.0.0:110\" or \"[::]:995\"")
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config> {
        Config::parse(Path::new("/etc/postie/postie.toml"), text)
    }

    #[test]
    fn brake_keys() {
        let config = parse("[auth]\nfailure_delay_secs = 2\n").unwrap();
        assert_eq!(config.pop3.failure_delay, Duration::from_secs(2));
        assert_eq!(config.pop3.brake.ipv6_prefix, 64);
        assert_eq!(config.state_dir, PathBuf::from("/etc/postie/state"));
        let config = parse(
            "state_dir = \"/var/lib/postie\"\n[auth]\nfailure_delay_secs = 0.05\nipv6_prefix = 56\n\
             trusted_networks = [\"10.0.0.0/8\"]\nspray_failures_per_minute = 600\n",
        )
        .unwrap();
        assert_eq!(config.pop3.failure_delay, Duration::from_millis(50));
        assert_eq!(config.pop3.brake.ipv6_prefix, 56);
        assert_eq!(config.pop3.brake.spray_failures_per_minute, 600);
        assert!(config
            .pop3
            .brake
            .trusted_networks
            .contains("10.1.2.3".parse().unwrap()));
        assert_eq!(config.state_dir, PathBuf::from("/var/lib/postie"));
        for (bad, says) in [
            ("ipv6_prefix = 0", "ipv6_prefix = 0"),
            ("trusted_networks = [\"10.0.0.0/33\"]", "trusted_networks"),
            ("failure_delay_secs = -1", "failure_delay_secs"),
            ("spray_failures_per_minute = 0", "spray_failures_per_minute"),
        ] {
            let error = format!("{:#}", parse(&format!("[auth]\n{bad}\n")).unwrap_err());
            assert!(error.contains(says), "{bad}: {error}");
        }
    }

    #[test]
    fn defaults_and_relative_paths() {
        let config =
            parse("hostname = \"mail.example.org\"\n[mail]\nmaildir = \"mail/{user}\"\n").unwrap();
        assert_eq!(config.pop3.hostname, "mail.example.org");
        assert_eq!(config.pop3.listen, vec!["0.0.0.0:110".parse().unwrap()]);
        assert!(
            config.pop3.listen_tls.is_empty(),
            "no [tls], so no port 995"
        );
        assert_eq!(config.pop3.idle_timeout, Duration::from_secs(600));
        assert_eq!(config.passwd_file, PathBuf::from("/etc/postie/users"));
        assert_eq!(
            config.store,
            StoreConfig::Maildir {
                template: "/etc/postie/mail/{user}".into()
            }
        );
    }

    #[test]
    fn postgres_keys() {
        let with = |postgres: &str| {
            parse(&format!(
                "[mail]\nstore = \"postgres\"\n[postgres]\n\
                 url = \"postgresql://postie@db1:5432,db2:5432/postie?target_session_attrs=read-write\"\n{postgres}"
            ))
        };
        let StoreConfig::Postgres {
            database,
            pool_size,
            lease,
            tls,
        } = with("").unwrap().store
        else {
            panic!("a postgres store")
        };
        assert_eq!(database.get_hosts().len(), 2, "both hosts, in order");
        assert_eq!((pool_size, lease), (16, Duration::from_secs(300)));
        assert_eq!(tls, None, "plain connections without ca_file");
        let StoreConfig::Postgres { lease, .. } = with("lease_secs = 3\n").unwrap().store else {
            panic!("a postgres store")
        };
        assert_eq!(lease, Duration::from_secs(3));
        let error = with("lease_secs = 0\n").unwrap_err().to_string();
        assert!(error.contains("[postgres] lease_secs = 0"), "{error}");
    }

    #[test]
    fn a_ca_file_with_sslmode_disable_is_refused() {
        let error = parse(
            "[mail]\nstore = \"postgres\"\n[postgres]\n\
             url = \"postgresql://postie@db1/postie?sslmode=disable\"\nca_file = \"db-ca.pem\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("[postgres] ca_file"), "{error}");
        assert!(error.contains("sslmode=disable"), "{error}");
    }

    #[test]
    fn unknown_keys_are_named() {
        let error = parse("[pop3]\nlisten = []\nlisen_tls = []\n")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("lisen_tls") && error.contains("line 3"),
            "{error}"
        );
        let error = parse("colour = 1\n").unwrap_err().to_string();
        assert!(error.contains("colour"), "{error}");
    }

    #[test]
    fn intake_keys() {
        let config = parse(
            "[lmtp]\nlisten = [\"127.0.0.1:24\", \"unix:lmtp.sock\"]\n\
             [smtp]\nlisten = [\"0.0.0.0:25\"]\ndomains = [\"Example.org\"]\nmax_message_size = \"10M\"\n\
             [mail]\nquota_bytes = \"1G\"\nquota_messages = 5\n",
        )
        .unwrap();
        let intake = config.intake;
        assert_eq!(
            intake.lmtp_listen,
            vec![
                Listen::Tcp("127.0.0.1:24".parse().unwrap()),
                Listen::Unix(PathBuf::from("/etc/postie/lmtp.sock"))
            ]
        );
        assert_eq!(intake.smtp_listen, vec!["0.0.0.0:25".parse().unwrap()]);
        assert_eq!(intake.smtp_max_message_size, 10 << 20);
        assert_eq!(intake.lmtp_max_message_size, 52_428_800);
        assert_eq!(intake.policy.domains, ["example.org"]);
        assert_eq!(intake.policy.quota.bytes, 1 << 30);
        assert_eq!(intake.policy.quota.messages, 5);
        assert!(!parse("").unwrap().intake.is_enabled());
    }

    #[test]
    fn intake_errors_name_file_and_key() {
        for (text, expected) in [
            ("[lmtp]\nlisten = [\"lmtp.sock\"]\n", "[lmtp] listen"),
            ("[smtp]\nlisten = [\"0.0.0.0:25\"]\n", "[smtp] domains"),
            ("[smtp]\nmax_message_size = 0\n", "[smtp] max_message_size"),
            ("[mail]\nquota_bytes = \"lots\"\n", "[mail] quota_bytes"),
            ("[smtp]\nrelay = true\n", "relay"),
            ("[lmtp]\nlisten = []\nsocket = 1\n", "socket"),
        ] {
            let error = format!("{:#}", parse(text).unwrap_err());
            assert!(
                error.contains(expected) && error.contains("postie.toml"),
                "{error}"
            );
        }
    }

    #[test]
    fn bad_values_name_file_and_key() {
        let error = parse("[pop3]\nlisten = [\"localhost\"]\n")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("[pop3] listen") && error.contains("postie.toml"),
            "{error}"
        );
        let error = parse("[pop3]\ndeleted = \"shred\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("shred") || error.contains("deleted"),
            "{error}"
        );
        let error = parse("[mail]\nmaildir = \"/var/mail/shared\"\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("{user}"), "{error}");
        let error = parse("[pop3]\nlisten_tls = [\"127.0.0.1:995\"]\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("[tls]"), "{error}");
        let error =
            parse("[tls]\ncert = \"/nonexistent/cert.pem\"\nkey = \"k.pem\"\n").unwrap_err();
        assert!(
            format!("{error:#}").contains("/nonexistent/cert.pem"),
            "{error:#}"
        );
    }

    #[test]
    fn users_source() {
        assert_eq!(parse("").unwrap().users, UserSource::PasswdFile);
        let config = parse(
            "[auth]\nusers = \"postgres\"\n[mail]\nstore = \"postgres\"\n\
             [postgres]\nurl = \"postgresql://postie@db/postie\"\n",
        )
        .unwrap();
        assert_eq!(config.users, UserSource::Postgres);
        let error = parse("[auth]\nusers = \"postgres\"\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("[mail] store = \"postgres\""), "{error}");
        let error = parse("[auth]\nusers = \"ldap\"\n").unwrap_err().to_string();
        assert!(
            error.contains("[auth] users") && error.contains("passwd-file"),
            "{error}"
        );
    }
}
