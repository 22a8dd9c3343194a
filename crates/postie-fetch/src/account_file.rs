//! Adding an account to `fetch.toml` the way a person would: the new `[accounts.NAME]` table
//! goes at the end, and every other byte of the file (comments, other accounts, their
//! layout) stays as it was. toml_edit keeps the document's own formatting, which
//! re-serializing through serde would lose.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use toml_edit::{DocumentMut, Item, Table};

use crate::config::{resolve_path, Retention};
use crate::oauth::{OAuthProvider, SignInSettings};
use crate::target::{Target, TlsMode};

/// Where the new account's password comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSetting {
    Command(String),
    Env(String),
    /// Stored in the file itself (the file is then readable only by its owner).
    Inline(String),
    /// No password: the built-in OAuth sign-in, whose tokens live in the state folder.
    SignIn(SignInSettings),
}

/// An account as `postie fetch add` writes it.
#[derive(Debug, Clone)]
pub struct NewAccount {
    pub name: String,
    pub target: Target,
    pub user: String,
    pub password: PasswordSetting,
    pub retention: Retention,
    pub deliver_to: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AccountFileError {
    #[error("{path}: not valid TOML ({reason}); fix it, or give another file with --config")]
    Parse { path: PathBuf, reason: String },
    #[error("{path}: there is already an account {name:?}; choose another name with --name")]
    Exists { path: PathBuf, name: String },
    #[error("{path}: `accounts` is not a table; fix the file")]
    NotATable { path: PathBuf },
    #[error("cannot {what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The table's TOML text, as it will appear in the file.
pub fn table_text(account: &NewAccount) -> String {
    let mut document = DocumentMut::new();
    let mut accounts = Table::new();
    accounts.set_implicit(true);
    accounts.insert(&account.name, Item::Table(account_table(account)));
    document.insert("accounts", Item::Table(accounts));
    document.to_string()
}

fn account_table(account: &NewAccount) -> Table {
    let mut table = Table::new();
    let server = if account.target.port == account.target.tls.default_port() {
        account.target.host.clone()
    } else {
        account.target.to_string()
    };
    table.insert("server", toml_edit::value(server));
    let tls = match account.target.tls {
        TlsMode::Implicit => "implicit",
        TlsMode::Starttls => "starttls",
        TlsMode::None => "none",
    };
    table.insert("tls", toml_edit::value(tls));
    table.insert("user", toml_edit::value(&account.user));
    match &account.password {
        PasswordSetting::Command(command) => {
            table.insert("password_command", toml_edit::value(command))
        }
        PasswordSetting::Env(var) => table.insert("password_env", toml_edit::value(var)),
        PasswordSetting::Inline(password) => table.insert("password", toml_edit::value(password)),
        PasswordSetting::SignIn(settings) => {
            match &settings.provider {
                OAuthProvider::Google => table.insert("oauth_provider", toml_edit::value("google")),
                OAuthProvider::Microsoft => {
                    table.insert("oauth_provider", toml_edit::value("microsoft"))
                }
                OAuthProvider::Issuer(url) => table.insert("oauth_issuer", toml_edit::value(url)),
            };
            table.insert("oauth_client_id", toml_edit::value(&settings.client_id))
        }
    };
    match account.retention {
        Retention::Delete => {
            table.insert("keep", toml_edit::value(false));
        }
        Retention::Keep => {
            table.insert("keep", toml_edit::value(true));
        }
        Retention::KeepDays(days) => {
            table.insert("keep", toml_edit::value(true));
            table.insert("delete_after_days", toml_edit::value(i64::from(days)));
        }
    }
    table.insert("deliver_to", toml_edit::value(&account.deliver_to));
    table
}

/// `existing` (the file's text, empty for a new file) with `account` added at the end.
pub fn with_account(
    existing: &str,
    path: &Path,
    account: &NewAccount,
) -> Result<String, AccountFileError> {
    let mut document: DocumentMut =
        existing
            .parse()
            .map_err(|e: toml_edit::TomlError| AccountFileError::Parse {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
    let accounts = document
        .entry("accounts")
        .or_insert_with(|| {
            let mut table = Table::new();
            table.set_implicit(true);
            Item::Table(table)
        })
        .as_table_mut()
        .ok_or_else(|| AccountFileError::NotATable {
            path: path.to_owned(),
        })?;
    if accounts.contains_key(&account.name) {
        return Err(AccountFileError::Exists {
            path: path.to_owned(),
            name: account.name.clone(),
        });
    }
    let mut table = account_table(account);
    // After every table already there, whatever its place in the file.
    let last = document
        .as_table()
        .iter()
        .filter_map(|(_, item)| item.as_table())
        .flat_map(|t| {
            std::iter::once(t.position()).chain(
                t.iter()
                    .filter_map(|(_, i)| i.as_table().map(Table::position)),
            )
        })
        .flatten()
        .max()
        .unwrap_or(0);
    table.set_position(last + 1);
    if !existing.is_empty() {
        table.decor_mut().set_prefix("\n");
    }
    let accounts =
        document["accounts"]
            .as_table_mut()
            .ok_or_else(|| AccountFileError::NotATable {
                path: path.to_owned(),
            })?;
    accounts.insert(&account.name, Item::Table(table));
    Ok(document.to_string())
}

/// The state folder the file sets (`state_dir`), resolved as `postie fetch` resolves it.
pub fn state_dir(existing: &str, path: &Path) -> Option<PathBuf> {
    let document: DocumentMut = existing.parse().ok()?;
    let dir = document.get("state_dir")?.as_str()?;
    Some(resolve_path(dir, path.parent().unwrap_or(Path::new("."))))
}

/// Writes `text` to `path` atomically (a temporary file renamed over it), readable only by
/// its owner, as it may hold a password.
pub fn write(path: &Path, text: &str) -> Result<(), AccountFileError> {
    let io = |what: &'static str, path: &Path| {
        let path = path.to_owned();
        move |source| AccountFileError::Io { what, path, source }
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io("create the folder", dir))?;
    let tmp = path.with_extension("toml.tmp");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io("create", &tmp))?;
    file.write_all(text.as_bytes()).map_err(io("write", &tmp))?;
    file.sync_all().map_err(io("fsync", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io("replace", path))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("fsync", dir))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(name: &str) -> NewAccount {
        NewAccount {
            name: name.into(),
            target: Target::parse("pop.example.org", TlsMode::Implicit).unwrap(),
            user: "alice@example.org".into(),
            password: PasswordSetting::Command("pass mail".into()),
            retention: Retention::KeepDays(14),
            deliver_to: "maildir:~/Mail".into(),
        }
    }

    const EXISTING: &str = "# my accounts\nstate_dir = \"state\"   # next to this file\n\n\
        [accounts.work]   # the office\nserver = \"pop.work.example:1995\"\n# tls = \"starttls\"\n\
        user = \"bob\"\npassword_env = \"WORK\"\ndeliver_to = \"mbox:~/work.mbox\"\n\n\
        # trailing remark\n[accounts.work.unused]\n";

    #[test]
    fn other_bytes_stay_as_they_were() {
        let path = Path::new("fetch.toml");
        let text = with_account(EXISTING, path, &account("alice")).unwrap();
        assert!(text.starts_with(EXISTING), "{text}");
        let added = &text[EXISTING.len()..];
        assert_eq!(
            added,
            "\n[accounts.alice]\nserver = \"pop.example.org\"\ntls = \"implicit\"\n\
             user = \"alice@example.org\"\npassword_command = \"pass mail\"\nkeep = true\n\
             delete_after_days = 14\ndeliver_to = \"maildir:~/Mail\"\n"
        );
        let again = with_account(&text, path, &account("carol")).unwrap();
        assert!(again.starts_with(&text), "{again}");
        assert!(matches!(
            with_account(&text, path, &account("work")),
            Err(AccountFileError::Exists { .. })
        ));
    }

    #[test]
    fn a_new_file_and_the_state_dir() {
        let path = Path::new("/home/a/.config/postie/fetch.toml");
        let text = with_account("", path, &account("alice")).unwrap();
        assert!(text.starts_with("[accounts.alice]\n"), "{text}");
        assert_eq!(text, table_text(&account("alice")));
        assert_eq!(state_dir(&text, path), None);
        assert_eq!(
            state_dir(EXISTING, path),
            Some(PathBuf::from("/home/a/.config/postie/state"))
        );
        assert!(matches!(
            with_account("accounts = 1\n", path, &account("a")),
            Err(AccountFileError::NotATable { .. })
        ));
        assert!(matches!(
            with_account("[x\n", path, &account("a")),
            Err(AccountFileError::Parse { .. })
        ));
    }
}
