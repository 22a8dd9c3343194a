//! The command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub const DEFAULT_CONFIG: &str = "/etc/postie/postie.toml";

/// postie: a complete POP3 mail system.
#[derive(Debug, Parser)]
#[command(name = "postie", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the POP3 server.
    Serve(ServeArgs),
    /// Manage the users: of the passwd-file, or of the database with [auth] users = "postgres".
    User(UserArgs),
    /// Password hashing, like `doveadm pw`.
    Pw(PwArgs),
    /// Download mail from POP3 accounts into Maildir, mbox, an MDA or LMTP, never losing or
    /// duplicating a message.
    Fetch(crate::fetch::FetchArgs),
    /// Test a POP3 server step by step (DNS, TCP, TLS, certificate, CAPA, login) and say what
    /// is wrong.
    Probe(crate::probe::ProbeArgs),
    /// Check the configuration and everything it points to (files, certificate, ports,
    /// maildir, user), printing each finding with its fix. Exit status 1 when any is an error.
    CheckConfig(CheckConfigArgs),
    /// Print the DNS records that let mail clients find this server (RFC 6186 SRV records,
    /// autoconfig and Autodiscover host names).
    DnsRecords(DnsRecordsArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), generated from this command line.
    Man,
    /// Deliver one message from standard input (a local delivery agent, for Postfix's
    /// mailbox_command and scripts). Exit codes follow sysexits: 0 delivered, 67 unknown
    /// user, 73 cannot create (over quota), 75 temporary failure.
    Deliver(DeliverArgs),
    /// The mail store ([mail] store = "postgres"): create or upgrade the schema, check it,
    /// import Maildirs (keeping their UIDLs) and export maildrops back to Maildirs.
    Store(StoreArgs),
}

#[derive(Debug, Args)]
pub struct StoreArgs {
    #[command(subcommand)]
    pub action: StoreAction,
    /// The configuration file naming the store.
    #[arg(long, short = 'c', global = true, default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum StoreAction {
    /// Create the schema, or bring it up to this version of postie. Run it once, from one
    /// place, before front ends of a new version start: they never change the schema.
    Migrate,
    /// Check every maildrop's counters and next uid and every body's references and chunks,
    /// and repair the counters. Safe while front ends serve. Exit status 1 when something
    /// was left unrepaired.
    Check {
        /// Report only; repair nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Import a Maildir (postie's or Dovecot's) as a user's maildrop, each message keeping
    /// its UIDL, so that clients leaving mail on the server download nothing twice. Run it
    /// before mail for the user is delivered to the database; running it again changes
    /// nothing.
    ImportMaildir(ImportArgs),
    /// Write a user's maildrop into a new Maildir, byte for byte, with its UIDLs in
    /// postie-uidlist.
    Export {
        /// The user whose maildrop is written.
        #[arg(long)]
        user: String,
        /// The Maildir to write: new or empty.
        maildir: PathBuf,
    },
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("whom").required(true).args(["user", "all"])))]
pub struct ImportArgs {
    /// The user whose maildrop receives MAILDIR.
    #[arg(long, requires = "maildir")]
    pub user: Option<String>,
    /// The Maildir to import.
    #[arg(requires = "user")]
    pub maildir: Option<PathBuf>,
    /// Import every user of the passwd-file ([auth] passwd_file) from the Maildir that
    /// [mail] maildir names for it; users without one are skipped.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The configuration file.
    #[arg(long, short = 'c', default_value = DEFAULT_CONFIG, conflicts_with = "demo")]
    pub config: PathBuf,
    /// Run a demo server on 127.0.0.1:1110 (STLS) and 127.0.0.1:1995 (TLS) with user demo,
    /// password demo, made in ./postie-demo/ on first use.
    #[arg(long)]
    pub demo: bool,
    /// Where the demo keeps its files.
    #[arg(long, default_value = "postie-demo", requires = "demo")]
    pub demo_dir: PathBuf,
    /// Log format.
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Keep running as root when started as root without `user = ...` in the configuration.
    #[arg(long)]
    pub allow_root: bool,
}

#[derive(Debug, Args)]
pub struct CheckConfigArgs {
    /// The configuration file.
    #[arg(long, short = 'c', default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
}

#[derive(Debug, Args)]
pub struct DnsRecordsArgs {
    /// The mail domain, as in user@DOMAIN.
    pub domain: String,
    /// The configuration file, for the host name and ports.
    #[arg(long, short = 'c', default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// The host name clients connect to, instead of the configuration's.
    #[arg(long)]
    pub host: Option<String>,
    /// The records' time to live, in seconds.
    #[arg(long, default_value_t = 3600)]
    pub ttl: u32,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct UserArgs {
    #[command(subcommand)]
    pub action: UserAction,
    /// The configuration file naming the passwd-file or the database.
    #[arg(long, short = 'c', global = true, default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// The passwd-file to edit, instead of the one the configuration names.
    #[arg(long, global = true)]
    pub passwd_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum UserAction {
    #[command(flatten)]
    Edit(UserEdit),
    /// Show or set a user's POP3 settings, as Gmail has them: which mail POP3 lists, and what
    /// happens to a message once a POP3 client retrieved it. Without options, shows them.
    PopSettings(PopSettingsArgs),
}

/// What is kept with the users (the passwd-file or the users table).
#[derive(Debug, Subcommand)]
pub enum UserEdit {
    /// Add a user (in a passwd-file, or replace its password if it exists; the database
    /// refuses a name taken: use passwd).
    Add(PasswordArgs),
    /// Change a user's password.
    Passwd(PasswordArgs),
    /// Remove a user.
    Del { name: String },
    /// List the users.
    List,
    /// Manage a user's app passwords: generated passwords, one per mail client, each revoked
    /// on its own; once required, the only passwords POP3 takes for that user.
    #[command(subcommand)]
    AppPassword(AppPasswordAction),
}

#[derive(Debug, Args)]
pub struct PopSettingsArgs {
    pub name: String,
    /// all: every message; from-now-on: only mail that arrives from now on (older mail
    /// stays stored, never listed to POP3 again).
    #[arg(long, value_enum)]
    pub window: Option<Window>,
    /// What happens at QUIT to a message a POP3 client retrieved and did not delete: keep
    /// it listed, archive it (kept, no longer listed but to `recent:` logins), move it to
    /// the trash, or delete it.
    #[arg(long, value_enum)]
    pub after_retrieval: Option<AfterRetrievalChoice>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Window {
    All,
    FromNowOn,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum AfterRetrievalChoice {
    Keep,
    Archive,
    Trash,
    Delete,
}

#[derive(Debug, Subcommand)]
pub enum AppPasswordAction {
    /// Make a new app password and print it once: alone on the last line of standard output.
    Add {
        name: String,
        /// What the password is for, e.g. "phone": how `list` and the logs name it.
        #[arg(long)]
        label: String,
    },
    /// Show each app password of a user: created, and last used when, from where, over what.
    List { name: String },
    /// End an app password at once: open sessions keep their messages, the next login fails.
    Revoke { name: String, label: String },
    /// Refuse the user's own password over POP3, so that only app passwords log in.
    Require {
        name: String,
        /// Accept the user's own password again.
        #[arg(long)]
        off: bool,
    },
}

#[derive(Debug, Args)]
pub struct PasswordArgs {
    pub name: String,
    /// Read the password from the first line of standard input instead of a prompt.
    #[arg(long)]
    pub password_stdin: bool,
    /// The hashing scheme.
    #[arg(long, short = 's', default_value = "ARGON2ID")]
    pub scheme: String,
}

#[derive(Debug, Args)]
pub struct PwArgs {
    #[command(subcommand)]
    pub action: PwAction,
}

#[derive(Debug, Subcommand)]
pub enum PwAction {
    /// Print the hash of a password in passwd-file form ({SCHEME}hash).
    Hash {
        /// The hashing scheme (ARGON2ID, ARGON2I, SHA512-CRYPT, SHA256-CRYPT, BLF-CRYPT,
        /// SSHA256, SSHA512, PBKDF2, SCRAM-SHA-256, PLAIN).
        #[arg(long, short = 's', default_value = "ARGON2ID")]
        scheme: String,
        /// Read the password from the first line of standard input instead of a prompt.
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Debug, Args)]
pub struct DeliverArgs {
    /// The configuration file (the same as `serve`'s).
    #[arg(long, short = 'c', default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// The recipient: a login name, or an address (user+tag@domain delivers to user).
    #[arg(short = 'd', long = "destination", value_name = "USER")]
    pub user: String,
    /// The envelope sender, for the Return-Path header (empty for bounces).
    #[arg(short = 'f', long = "from", value_name = "SENDER", default_value = "")]
    pub sender: String,
}
